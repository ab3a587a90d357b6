package resume

import (
	"strconv"

	"github.com/coder/websocket"
)

// The wire format, specified in PROTOCOL.md at the repository root. Every
// frame is one WebSocket message:
//
//	KIND SP *(FIELD SP) [PAYLOAD]
//
// KIND is one ASCII letter and every field is terminated by one space, so
// that a message cut short (which coder/websocket, among others, can
// deliver as if it were whole when the connection dies inside it) never
// parses as a shorter valid frame; a payload's length is a field of its own
// for the same reason. The header is ASCII, so a text message stays valid
// UTF-8.

// Frame kinds.
const (
	kindHello    = 'H' // client → server, the first message of a connection
	kindWelcome  = 'W' // server → client, the answer to H
	kindStart    = 'S' // server → client, right after W: the connection's stream starts
	kindMessage  = 'M' // a reliable message
	kindVolatile = 'V' // a volatile message
	kindAck      = 'A' // a cumulative acknowledgement
	kindEnd      = 'E' // client → server: the session is over
)

// Protocol limits (PROTOCOL.md, "Limits").
const (
	protocolVersion = 1
	maxNumber       = 1<<63 - 1 // sequence numbers, acks, connection numbers
	maxNumberDigits = 19
	maxWindowCount  = 1 << 20 // an announced window, in messages
	maxWindowBytes  = 1 << 30 // an announced window, in payload bytes
	maxMessageLimit = 1 << 30 // an announced largest payload
	maxSessionLen   = 64
	// maxHeader is the longest header of an M or V frame: "M " seq SP len SP.
	maxHeader = 2 + maxNumberDigits + 1 + 10 + 1
	// maxControl bounds H and W frames (the longest is 7 fields).
	maxControl = 256
)

// noSession is the session field of a hello that starts a new session.
const noSession = "-"

// limits are what one end announces in its handshake frame: its window (the
// most it will ever have unacknowledged) and the largest payload it accepts.
type limits struct {
	count   int // window, in messages
	bytes   int // window, in payload bytes
	message int // largest payload accepted
}

// frame is one decoded frame. Only the fields of its kind are set; payload
// aliases the message it was decoded from.
type frame struct {
	kind    byte
	session string // H, W
	resumed bool   // W
	ack     uint64 // H, W: everything up to it is acknowledged
	conn    uint64 // H, S: the client's connection number
	seq     uint64 // M: the message's number; A: the acknowledged number
	limits  limits // H, W
	payload []byte // M, V
	typ     websocket.MessageType
}

// frameError is a frame that breaks the protocol; its text is the close
// reason (short enough for a close frame).
type frameError struct {
	code   websocket.StatusCode
	reason string
}

func (e *frameError) Error() string { return "resume: " + e.reason }

func malformed(reason string) error {
	return &frameError{code: websocket.StatusProtocolError, reason: reason}
}

// fieldReader reads the space-terminated fields of a header.
type fieldReader struct {
	p   []byte
	err error
}

// next returns the next field, without its terminating space.
func (r *fieldReader) next(what string) []byte {
	if r.err != nil {
		return nil
	}
	for i, b := range r.p {
		if b == ' ' {
			if i == 0 {
				r.err = malformed("empty " + what)
				return nil
			}
			f := r.p[:i]
			r.p = r.p[i+1:]
			return f
		}
	}
	r.err = malformed("unterminated " + what)
	return nil
}

// number reads a decimal field in [lo, hi].
func (r *fieldReader) number(what string, lo, hi uint64) uint64 {
	f := r.next(what)
	if r.err != nil {
		return 0
	}
	if len(f) > maxNumberDigits || (len(f) > 1 && f[0] == '0') {
		r.err = malformed("bad " + what)
		return 0
	}
	var n uint64
	for _, b := range f {
		if b < '0' || b > '9' {
			r.err = malformed("bad " + what)
			return 0
		}
		n = n*10 + uint64(b-'0') // 19 digits cannot overflow a uint64
	}
	if n < lo || n > hi {
		r.err = malformed(what + " out of range")
		return 0
	}
	return n
}

// session reads a session field: a token, or "-" if allowNone.
func (r *fieldReader) session(allowNone bool) string {
	f := r.next("session")
	if r.err != nil {
		return ""
	}
	if string(f) == noSession {
		if !allowNone {
			r.err = malformed("bad session")
		}
		return noSession
	}
	if !validSession(f) {
		r.err = malformed("bad session")
		return ""
	}
	return string(f)
}

// validSession reports whether s is a session token: 1 to 64 characters
// of A-Z a-z 0-9 _ -.
func validSession[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > maxSessionLen {
		return false
	}
	for i := range len(s) {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

func (r *fieldReader) limits() limits {
	return limits{
		count:   int(r.number("window count", 1, maxWindowCount)),
		bytes:   int(r.number("window bytes", 1, maxWindowBytes)),
		message: int(r.number("max message", 1, maxMessageLimit)),
	}
}

// end checks that nothing follows the last field.
func (r *fieldReader) end() {
	if r.err == nil && len(r.p) > 0 {
		r.err = malformed("trailing bytes")
	}
}

// parseFrame decodes one WebSocket message. It never panics and allocates
// nothing but the session string of an H or W frame; the payload of an M
// or V frame aliases p.
func parseFrame(typ websocket.MessageType, p []byte) (frame, error) {
	if len(p) < 2 || p[1] != ' ' {
		return frame{}, malformed("malformed frame")
	}
	f := frame{kind: p[0], typ: typ}
	if f.kind != kindMessage && f.kind != kindVolatile {
		if typ != websocket.MessageText {
			return frame{}, malformed("binary control frame")
		}
		if len(p) > maxControl {
			return frame{}, malformed("control frame too long")
		}
	}
	r := fieldReader{p: p[2:]}
	switch f.kind {
	case kindMessage, kindVolatile:
		if f.kind == kindMessage {
			f.seq = r.number("seq", 1, maxNumber)
		}
		n := r.number("length", 0, maxMessageLimit)
		if r.err == nil && uint64(len(r.p)) != n {
			return frame{}, malformed("length mismatch")
		}
		f.payload, r.p = r.p, nil
	case kindHello:
		r.version()
		f.session = r.session(true)
		f.ack = r.number("ack", 0, maxNumber)
		f.conn = r.number("conn", 1, maxNumber)
		f.limits = r.limits()
	case kindWelcome:
		r.version()
		f.session = r.session(false)
		f.resumed = r.number("resumed", 0, 1) == 1
		f.ack = r.number("ack", 0, maxNumber)
		f.limits = r.limits()
	case kindStart:
		f.conn = r.number("conn", 1, maxNumber)
	case kindAck:
		f.seq = r.number("ack", 1, maxNumber)
	case kindEnd:
	default:
		return frame{}, malformed("unknown frame kind")
	}
	r.end()
	if r.err != nil {
		return frame{}, r.err
	}
	return f, nil
}

func (r *fieldReader) version() {
	f := r.next("version")
	if r.err == nil && string(f) != "1" {
		r.err = malformed("unsupported version")
	}
}

// Encoders. Each appends one whole frame to dst.

func appendNumber(dst []byte, n uint64) []byte {
	return append(strconv.AppendUint(dst, n, 10), ' ')
}

func appendLimits(dst []byte, l limits) []byte {
	dst = appendNumber(dst, uint64(l.count))
	dst = appendNumber(dst, uint64(l.bytes))
	return appendNumber(dst, uint64(l.message))
}

func appendHello(dst []byte, session string, ack, conn uint64, l limits) []byte {
	dst = append(dst, kindHello, ' ', '1', ' ')
	dst = append(append(dst, session...), ' ')
	dst = appendNumber(dst, ack)
	dst = appendNumber(dst, conn)
	return appendLimits(dst, l)
}

func appendWelcome(dst []byte, session string, resumed bool, ack uint64, l limits) []byte {
	dst = append(dst, kindWelcome, ' ', '1', ' ')
	dst = append(append(dst, session...), ' ')
	r := byte('0')
	if resumed {
		r = '1'
	}
	dst = append(dst, r, ' ')
	dst = appendNumber(dst, ack)
	return appendLimits(dst, l)
}

func appendStart(dst []byte, conn uint64) []byte {
	return appendNumber(append(dst, kindStart, ' '), conn)
}

func appendAck(dst []byte, n uint64) []byte {
	return appendNumber(append(dst, kindAck, ' '), n)
}

func appendEnd(dst []byte) []byte { return append(dst, kindEnd, ' ') }

// headerLen returns the length of the header of an M frame numbered seq
// (or of a V frame, seq 0) for a payload of n bytes.
func headerLen(seq uint64, n int) int {
	l := 2 + digits(uint64(n)) + 1
	if seq > 0 {
		l += digits(seq) + 1
	}
	return l
}

func digits(n uint64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// encodeData returns a new M frame numbered seq (a V frame for seq 0)
// carrying a copy of p: one allocation, the header written in front.
func encodeData(seq uint64, p []byte) []byte {
	h := headerLen(seq, len(p))
	b := make([]byte, h, h+len(p))
	if seq > 0 {
		b = appendNumber(append(b[:0], kindMessage, ' '), seq)
	} else {
		b = append(b[:0], kindVolatile, ' ')
	}
	b = appendNumber(b, uint64(len(p)))
	return append(b, p...)
}
