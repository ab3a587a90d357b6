//go:build !js

package resume

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coder/websocket"
)

var (
	text   = websocket.MessageText
	binary = websocket.MessageBinary
)

// The frames of PROTOCOL.md's examples, byte for byte.
func TestFrameEncoding(t *testing.T) {
	l := limits{count: 1024, bytes: 1048576, message: 32768}
	for _, tc := range []struct {
		got, want string
	}{
		{string(appendHello(nil, noSession, 0, 1, l)), "H 1 - 0 1 1024 1048576 32768 "},
		{string(appendHello(nil, "Xk3J9", 7, 12, l)), "H 1 Xk3J9 7 12 1024 1048576 32768 "},
		{string(appendWelcome(nil, "Xk3J9", true, 5, l)), "W 1 Xk3J9 1 5 1024 1048576 32768 "},
		{string(appendWelcome(nil, "Xk3J9", false, 0, l)), "W 1 Xk3J9 0 0 1024 1048576 32768 "},
		{string(appendStart(nil, 12)), "S 12 "},
		{string(appendAck(nil, 41)), "A 41 "},
		{string(appendEnd(nil)), "E "},
		{string(encodeData(3, []byte("hello"))), "M 3 5 hello"},
		{string(encodeData(3, nil)), "M 3 0 "},
		{string(encodeData(0, []byte("héllo"))), "V 6 héllo"},
	} {
		if tc.got != tc.want {
			t.Errorf("encoded %q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseFrame(t *testing.T) {
	ok := []struct {
		typ  websocket.MessageType
		in   string
		want frame
	}{
		{text, "H 1 - 0 1 1024 1048576 32768 ", frame{kind: 'H', session: "-", conn: 1, limits: limits{1024, 1048576, 32768}}},
		{text, "H 1 a-b_C9 7 3 1 1 1 ", frame{kind: 'H', session: "a-b_C9", ack: 7, conn: 3, limits: limits{1, 1, 1}}},
		{text, "W 1 s 1 9223372036854775807 1048576 1073741824 1073741824 ", frame{kind: 'W', session: "s", resumed: true, ack: 1<<63 - 1, limits: limits{1 << 20, 1 << 30, 1 << 30}}},
		{text, "S 5 ", frame{kind: 'S', conn: 5}},
		{text, "A 1 ", frame{kind: 'A', seq: 1}},
		{text, "E ", frame{kind: 'E'}},
		{binary, "M 9 3 \x00\xff ", frame{kind: 'M', seq: 9, payload: []byte("\x00\xff ")}},
		{text, "M 1 0 ", frame{kind: 'M', seq: 1, payload: []byte{}}},
		{text, "V 2 M ", frame{kind: 'V', payload: []byte("M ")}},
	}
	for _, tc := range ok {
		f, err := parseFrame(tc.typ, []byte(tc.in))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		tc.want.typ = tc.typ
		if f.kind != tc.want.kind || f.session != tc.want.session || f.resumed != tc.want.resumed ||
			f.ack != tc.want.ack || f.conn != tc.want.conn || f.seq != tc.want.seq || f.limits != tc.want.limits ||
			!bytes.Equal(f.payload, tc.want.payload) || f.typ != tc.want.typ {
			t.Errorf("%q: got %+v, want %+v", tc.in, f, tc.want)
		}
	}

	bad := []struct {
		typ    websocket.MessageType
		in     string
		reason string
	}{
		{text, "", "malformed frame"},
		{text, "A", "malformed frame"},
		{text, "A1 ", "malformed frame"},
		{text, "A 1", "unterminated ack"},  // cut short
		{text, "A 0 ", "ack out of range"}, // acknowledges nothing
		{text, "A  1 ", "empty ack"},       // two spaces
		{text, "A 01 ", "bad ack"},         // leading zero
		{text, "A +1 ", "bad ack"},         // sign
		{text, "A 1 2 ", "trailing bytes"}, // one field too many
		{text, "A 9223372036854775808 ", "ack out of range"},
		{text, "A 99999999999999999999 ", "bad ack"}, // 20 digits
		{binary, "A 1 ", "binary control frame"},
		{text, "Z 1 ", "unknown frame kind"},
		{text, "a 1 ", "unknown frame kind"},
		{text, "M 1 5 hell", "length mismatch"},   // cut short
		{text, "M 1 5 hello!", "length mismatch"}, // too long
		{text, "M 1 5", "unterminated length"},
		{text, "M 0 1 x", "seq out of range"},
		{text, "M 1 1073741825 x", "length out of range"},
		{text, "V 1", "unterminated length"},
		{text, "H 2 - 0 1 1 1 1 ", "unsupported version"},
		{text, "H 1 - 0 0 1 1 1 ", "conn out of range"},
		{text, "H 1 - 0 1 0 1 1 ", "window count out of range"},
		{text, "H 1 - 0 1 1048577 1 1 ", "window count out of range"},
		{text, "H 1 - 0 1 1 1073741825 1 ", "window bytes out of range"},
		{text, "H 1 - 0 1 1 1 0 ", "max message out of range"},
		{text, "H 1 a.b 0 1 1 1 1 ", "bad session"},
		{text, "H 1 " + strings.Repeat("x", 65) + " 0 1 1 1 1 ", "bad session"},
		{text, "H 1 - 0 1 1 1 ", "unterminated max message"},
		{text, "W 1 - 0 0 1 1 1 ", "bad session"}, // a welcome names a session
		{text, "W 1 s 2 0 1 1 1 ", "resumed out of range"},
		{text, "S 1 " + strings.Repeat("x", 300), "control frame too long"},
		{text, "E x", "trailing bytes"},
	}
	for _, tc := range bad {
		_, err := parseFrame(tc.typ, []byte(tc.in))
		fe, ok := err.(*frameError)
		if !ok {
			t.Errorf("%q: got %v, want a frameError %q", tc.in, err, tc.reason)
			continue
		}
		if fe.reason != tc.reason || fe.code != websocket.StatusProtocolError {
			t.Errorf("%q: got %d %q, want 1002 %q", tc.in, fe.code, fe.reason, tc.reason)
		}
	}
}

// Every prefix of a valid frame is malformed: a frame cut short by the
// end of its connection never passes for a shorter one.
func TestFramePrefixesAreMalformed(t *testing.T) {
	l := limits{count: 1024, bytes: 1048576, message: 32768}
	for _, full := range [][]byte{
		appendHello(nil, "session_1", 12345, 678, l),
		appendWelcome(nil, "session_1", true, 12345, l),
		appendStart(nil, 678),
		appendAck(nil, 12345),
		appendEnd(nil),
		encodeData(12345, []byte("payload")),
		encodeData(0, []byte("payload")),
		encodeData(7, nil),
	} {
		if _, err := parseFrame(text, full); err != nil {
			t.Fatalf("%q: %v", full, err)
		}
		for n := range len(full) {
			if f, err := parseFrame(text, full[:n]); err == nil {
				t.Errorf("%q cut to %q parses as %+v", full, full[:n], f)
			}
		}
	}
}

// A text message's frame is valid UTF-8: the header is ASCII.
func TestTextFrameIsUTF8(t *testing.T) {
	for _, p := range []string{"", "plain", "é€😀", "M 1 2 x"} {
		for _, seq := range []uint64{0, 1, 1<<63 - 1} {
			if f := encodeData(seq, []byte(p)); !utf8.Valid(f) {
				t.Errorf("frame %q is not UTF-8", f)
			}
		}
	}
}

// FuzzParseFrame: the decoder never panics, and whatever it accepts,
// encoded again, is the same bytes (one encoding per frame: no two
// readings of a message).
func FuzzParseFrame(f *testing.F) {
	l := limits{count: 1024, bytes: 1048576, message: 32768}
	for _, seed := range [][]byte{
		appendHello(nil, noSession, 0, 1, l),
		appendHello(nil, "Xk3J9", 7, 12, l),
		appendWelcome(nil, "Xk3J9", true, 5, l),
		appendStart(nil, 1),
		appendAck(nil, 41),
		appendEnd(nil),
		encodeData(3, []byte("hello")),
		encodeData(0, []byte("héllo")),
		[]byte("M 1 5 hell"),
		[]byte("A 01 "),
	} {
		f.Add(true, seed)
	}
	f.Fuzz(func(t *testing.T, isText bool, p []byte) {
		typ := binary
		if isText {
			typ = text
		}
		fr, err := parseFrame(typ, p)
		if err != nil {
			if _, ok := err.(*frameError); !ok {
				t.Fatalf("%q: error %T, want *frameError", p, err)
			}
			return
		}
		var again []byte
		switch fr.kind {
		case kindHello:
			again = appendHello(nil, fr.session, fr.ack, fr.conn, fr.limits)
		case kindWelcome:
			again = appendWelcome(nil, fr.session, fr.resumed, fr.ack, fr.limits)
		case kindStart:
			again = appendStart(nil, fr.conn)
		case kindAck:
			again = appendAck(nil, fr.seq)
		case kindEnd:
			again = appendEnd(nil)
		case kindMessage:
			again = encodeData(fr.seq, fr.payload)
		case kindVolatile:
			again = encodeData(0, fr.payload)
		default:
			t.Fatalf("%q: parsed as kind %q", p, fr.kind)
		}
		if !bytes.Equal(again, p) {
			t.Fatalf("%q parsed as %+v, which encodes as %q", p, fr, again)
		}
	})
}
