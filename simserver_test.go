//go:build !js

package wsreconnect

// The simulator's server (see sim_test.go). It speaks the WebSocket
// protocol itself, frame by frame, so that it can do what a well-behaved
// library would not: cut a frame off where a read begins, trickle a large
// frame in, never answer a ping, ping the client instead, stop reading.
// Everything it does is recorded in its ledger, with the world's sequence
// numbers, for the invariants to check afterwards.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// simEnd is how the server ends a connection.
type simEnd uint8

const (
	simEndNone       simEnd = iota // serve until the client closes
	simEndClose                    // send a close frame with plan.code, then close the socket
	simEndEmptyClose               // send an empty close frame (1005), then close the socket
	simEndDrop                     // close the socket between frames
	simEndCut                      // write the start of a frame, then close the socket
)

func (e simEnd) String() string {
	return [...]string{"none", "close", "empty close", "drop", "cut"}[e]
}

// simPlan is what the server does with one handshake.
type simPlan struct {
	reject     int // answer the handshake with this status instead
	retryAfter string
	hang       bool // never answer the handshake
	greet      bool // send a greeting first
	ack        bool // answer each message with an ack instead of its echo
	noPong     bool // never answer a ping
	pingEvery  time.Duration
	sends      int // messages of its own, one every sendEvery
	sendEvery  time.Duration
	sendMax    int  // the largest of them, in bytes
	trickle    bool // write messages over 1 KiB in pieces, one every 10 ms
	stallAfter time.Duration
	stall      time.Duration // stop reading for this long, stallAfter into the connection
	readLimit  int           // a client message over it is answered with 1009
	end        simEnd
	endAfter   time.Duration
	code       websocket.StatusCode // for simEndClose
	cutAt      int                  // payload bytes of the cut frame that are sent
}

func (p simPlan) String() string {
	switch {
	case p.reject != 0:
		return fmt.Sprintf("reject %d (Retry-After %q)", p.reject, p.retryAfter)
	case p.hang:
		return "hang"
	}
	s := fmt.Sprintf("accept: greet=%v ack=%v noPong=%v pingEvery=%v sends=%d/%v max=%d trickle=%v stall=%v@%v end=%v",
		p.greet, p.ack, p.noPong, p.pingEvery, p.sends, p.sendEvery, p.sendMax, p.trickle, p.stall, p.stallAfter, p.end)
	if p.end != simEndNone {
		s += fmt.Sprintf(" after %v", p.endAfter)
	}
	switch p.end {
	case simEndClose:
		s += fmt.Sprintf(" code %d", p.code)
	case simEndCut:
		s += fmt.Sprintf(" at %d", p.cutAt)
	}
	return s
}

// simConnLog is the server's record of one handshake and its connection.
type simConnLog struct {
	dial     int // the client's dial number (its X-Sim-Dial header)
	plan     simPlan
	accepted bool

	sent      int       // messages fully written: indexes 0..sent-1
	lastWrite time.Time // when a frame was last fully written (evidence for the client)
	prevWrite time.Time // when the one before was
	lastWSeq  int64

	sentClose    websocket.StatusCode // our close frame, fully written (0: none)
	sentCloseSeq int64
	gotClose     bool // the client's close frame
	gotCode      websocket.StatusCode
	gotReason    string
	gotCloseSeq  int64
	closedSeq    int64
	endedSeq     int64    // when the server began to end the connection (its plan's end)
	peerGoneSeq  int64    // when the reader found the client gone (EOF, or its close frame)
	received     []string // ids of client messages received whole, in order
}

// simServer serves the simulation's connections. Its handler runs on the
// pipe transport's goroutine (or net/http's), and each accepted connection
// on two goroutines of its own (reader and script), which Close waits for.
type simServer struct {
	w    *simWorld
	plan func(dial int) simPlan

	mu     sync.Mutex
	logs   []*simConnLog
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	quit   chan struct{}
}

func newSimServer(w *simWorld, plan func(int) simPlan) *simServer {
	return &simServer{w: w, plan: plan, conns: map[net.Conn]struct{}{}, quit: make(chan struct{})}
}

func (s *simServer) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	dial, _ := strconv.Atoi(r.Header.Get("X-Sim-Dial"))
	p := s.plan(dial)
	s.w.ev("server %d: %v", dial, p)
	l := &simConnLog{dial: dial, plan: p}
	s.mu.Lock()
	s.logs = append(s.logs, l)
	closed := s.closed
	s.mu.Unlock()
	switch {
	case closed:
		rw.WriteHeader(http.StatusServiceUnavailable)
		return
	case p.hang:
		select {
		case <-r.Context().Done():
		case <-s.quit:
		}
		return
	case p.reject != 0:
		if p.retryAfter != "" {
			rw.Header().Set("Retry-After", p.retryAfter)
		}
		rw.WriteHeader(p.reject)
		return
	}
	conn, err := wstest.Upgrade(rw, r)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	l.accepted = true
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		sc := &simConn{s: s, l: l, conn: conn, br: bufio.NewReader(conn), done: make(chan struct{}), wmu: make(chanMutex, 1),
			rng: rand.New(rand.NewPCG(uint64(dial), s.w.seed)), wrng: rand.New(rand.NewPCG(uint64(dial), s.w.seed+1))}
		sc.serve()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
}

// Close ends every connection and waits for their goroutines.
func (s *simServer) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// simConn is one accepted connection.
type simConn struct {
	s    *simServer
	l    *simConnLog
	conn net.Conn
	br   *bufio.Reader
	rng  *rand.Rand // the script's own: its decisions do not depend on the reader's timing
	wrng *rand.Rand // the trickle's, under wmu

	wmu       chanMutex // one frame at a time (a channel: a writer blocked on it blocks durably in a bubble)
	closeSent bool      // a close frame went out (under wmu): the first is the server's word
	closeOnce sync.Once
	done      chan struct{} // closed when the socket is closed
	start     time.Time
}

func (c *simConn) serve() {
	c.start = time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.script()
	}()
	c.read()
	c.close()
	wg.Wait()
}

func (c *simConn) close() {
	c.closeOnce.Do(func() {
		c.s.mu.Lock()
		c.l.closedSeq = c.s.w.ev("server %d: socket closed", c.l.dial)
		c.s.mu.Unlock()
		c.conn.Close()
		close(c.done)
	})
}

// sleep waits d, or until the connection is closed; it reports whether
// the connection is still open.
func (c *simConn) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

// frame writes one whole frame; it records the time of the write (the
// client has it once net.Pipe's Write returns).
func (c *simConn) frame(fin bool, op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.frameLocked(fin, op, p)
}

func (c *simConn) frameLocked(fin bool, op byte, p []byte) error {
	if _, err := c.conn.Write(serverFrame(fin, op, p)); err != nil {
		return err
	}
	c.wrote()
	return nil
}

func (c *simConn) wrote() {
	c.s.mu.Lock()
	c.l.prevWrite, c.l.lastWrite = c.l.lastWrite, time.Now()
	c.l.lastWSeq = c.s.w.next()
	c.s.mu.Unlock()
}

// send writes message body as the connection's next message, whole or in
// pieces (trickle). It records the message as sent once all of it is
// written.
func (c *simConn) send(typ websocket.MessageType, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.s.mu.Lock()
	k := c.l.sent
	c.s.mu.Unlock()
	msg := simServerMessage(c.l.dial, k, body)
	op := byte(typ)
	if c.l.plan.trickle && len(msg) > 1024 {
		// One frame, written in pieces: the client reads it as it arrives.
		if _, err := c.conn.Write(serverFrameHeader(true, op, len(msg))); err != nil {
			return err
		}
		for rest := msg; len(rest) > 0; {
			n := min(len(rest), 512+c.wrng.IntN(4096))
			if _, err := c.conn.Write(rest[:n]); err != nil {
				return err
			}
			c.wrote()
			rest = rest[n:]
			if len(rest) > 0 && !c.sleep(10*time.Millisecond) {
				return net.ErrClosed
			}
		}
	} else if err := c.frameLocked(true, op, msg); err != nil {
		return err
	}
	c.s.mu.Lock()
	c.l.sent++
	c.s.mu.Unlock()
	c.s.w.ev("server %d: sent s%d.%d (%d bytes)", c.l.dial, c.l.dial, k, len(msg))
	return nil
}

// script is the server's side of the plan: its own messages, pings, and
// the end.
func (c *simConn) script() {
	p := c.l.plan
	if p.greet && c.send(websocket.MessageText, []byte("g")) != nil {
		return
	}
	endAt := c.start.Add(p.endAfter)
	nextSend, sent := c.start.Add(p.sendEvery), 0
	nextPing := c.start.Add(p.pingEvery)
	for {
		now := time.Now()
		wake := time.Time{}
		consider := func(t time.Time) {
			if wake.IsZero() || t.Before(wake) {
				wake = t
			}
		}
		if p.end != simEndNone {
			consider(endAt)
		}
		if sent < p.sends {
			consider(nextSend)
		}
		if p.pingEvery > 0 {
			consider(nextPing)
		}
		if wake.IsZero() {
			<-c.done
			return
		}
		if wake.After(now) && !c.sleep(wake.Sub(now)) {
			return
		}
		now = time.Now()
		switch {
		case p.end != simEndNone && !now.Before(endAt):
			c.end()
			return
		case sent < p.sends && !now.Before(nextSend):
			sent++
			nextSend = now.Add(p.sendEvery)
			typ := websocket.MessageBinary
			if c.rng.IntN(2) == 0 {
				typ = websocket.MessageText
			}
			body := simPayload(c.rng, 1+c.rng.IntN(max(p.sendMax, 1)), typ)
			if c.send(typ, append([]byte("d"), body...)) != nil {
				return
			}
		case p.pingEvery > 0 && !now.Before(nextPing):
			nextPing = now.Add(p.pingEvery)
			if c.frame(true, 0x9, []byte("sim")) != nil {
				return
			}
		}
	}
}

// end ends the connection as the plan says.
func (c *simConn) end() {
	p := c.l.plan
	c.s.mu.Lock()
	c.l.endedSeq = c.s.w.ev("server %d: ends (%v)", c.l.dial, p.end)
	c.s.mu.Unlock()
	switch p.end {
	case simEndClose, simEndEmptyClose:
		var payload []byte
		code := websocket.StatusNoStatusRcvd
		if p.end == simEndClose {
			code = p.code
			payload = binary.BigEndian.AppendUint16(nil, uint16(code))
		}
		if c.closeFrame(code, payload) {
			// Wait a moment for the client's answer, as a server does.
			c.sleep(time.Second)
		}
	case simEndCut:
		c.wmu.Lock()
		c.s.mu.Lock()
		k := c.l.sent
		c.s.mu.Unlock()
		msg := simServerMessage(c.l.dial, k, append([]byte("d"), simPayload(c.rng, p.cutAt+1+c.rng.IntN(8<<10), websocket.MessageBinary)...))
		cut := min(p.cutAt, len(msg)-1)
		_, err := c.conn.Write(serverFrameHeader(true, byte(websocket.MessageBinary), len(msg)))
		if err == nil && cut > 0 {
			_, _ = c.conn.Write(msg[:cut])
		}
		c.wmu.Unlock()
	}
	c.close()
}

// read reads the client's frames until the connection ends: it records
// each whole message and answers it, answers pings, and answers a close
// frame.
func (c *simConn) read() {
	p := c.l.plan
	var (
		msg      []byte
		typ      byte
		stalled  bool
		stallEnd time.Time
		closing  bool // the server refused a message with its close frame
	)
	if p.stall > 0 {
		stallEnd = c.start.Add(p.stallAfter + p.stall)
	}
	for {
		if !stalled && p.stall > 0 && time.Since(c.start) >= p.stallAfter {
			stalled = true
			if d := time.Until(stallEnd); d > 0 {
				// Once the socket is closed, what the read buffer holds is
				// still read: it had reached the server.
				c.sleep(d)
			}
		}
		fin, op, payload, err := readClientFrame(c.br)
		if err != nil {
			c.s.mu.Lock()
			c.l.peerGoneSeq = c.s.w.ev("server %d: read %v", c.l.dial, err)
			c.s.mu.Unlock()
			return
		}
		switch op {
		case 0x1, 0x2, 0x0:
			if op != 0x0 {
				msg, typ = nil, op
			}
			msg = append(msg, payload...)
			if !fin {
				continue
			}
			// The limit is checked on whole messages only: a Write that
			// returned nil handed all of its message to the server (its
			// last frame may sit in the server's read buffer).
			tooBig := p.readLimit > 0 && len(msg) > p.readLimit
			// A whole message reached the server, even one it refuses.
			id := c.s.w.clientMessageID(msg, websocket.MessageType(typ))
			c.s.mu.Lock()
			c.l.received = append(c.l.received, id)
			c.s.mu.Unlock()
			c.s.w.ev("server %d: received %s (%d bytes)", c.l.dial, id, len(msg))
			if closing {
				continue // what follows the refused message is not answered
			}
			if tooBig {
				// As a server does, it reads on (a moment) for the answer:
				// a socket closed with unread data is reset, and a reset
				// may destroy the close frame before the client reads it.
				c.closeWith(websocket.StatusMessageTooBig)
				closing = true
				_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
				continue
			}
			var answer []byte
			if p.ack {
				answer = append([]byte("a"), id...)
			} else {
				answer = append([]byte("e"), msg...)
			}
			if c.send(websocket.MessageType(typ), answer) != nil {
				return
			}
		case 0x8:
			code, reason := websocket.StatusNoStatusRcvd, ""
			if len(payload) >= 2 {
				code, reason = websocket.StatusCode(binary.BigEndian.Uint16(payload)), string(payload[2:])
			}
			c.s.mu.Lock()
			c.l.gotClose, c.l.gotCode, c.l.gotReason, c.l.gotCloseSeq = true, code, reason, c.s.w.ev("server %d: got close %d %q", c.l.dial, code, reason)
			c.s.mu.Unlock()
			c.wmu.Lock()
			if !c.closeSent { // echo the code, as coder/websocket does
				c.closeSent = c.frameLocked(true, 0x8, payload) == nil
			}
			c.wmu.Unlock()
			return
		case 0x9:
			if !p.noPong && c.frame(true, 0xA, payload) != nil {
				return
			}
		}
	}
}

// closeWith sends a close frame with code and closes the connection.
func (c *simConn) closeWith(code websocket.StatusCode) {
	c.closeFrame(code, binary.BigEndian.AppendUint16(nil, uint16(code)))
}

// closeFrame sends a close frame, unless one went out already (the
// script's end and a refused message may both want to), and records it
// in the order the frames went out; it reports whether it sent one.
func (c *simConn) closeFrame(code websocket.StatusCode, payload []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent || c.frameLocked(true, 0x8, payload) != nil {
		return false
	}
	c.closeSent = true
	c.s.mu.Lock()
	c.l.sentClose, c.l.sentCloseSeq = code, c.s.w.ev("server %d: sent close %d", c.l.dial, code)
	c.s.mu.Unlock()
	return true
}

// chanMutex is a mutex that may be held while blocking: waiting for it is
// a durable block inside a testing/synctest bubble, as waiting for a
// sync.Mutex is not.
type chanMutex chan struct{}

func (m chanMutex) Lock()   { m <- struct{}{} }
func (m chanMutex) Unlock() { <-m }

// serverFrame returns one unmasked frame.
func serverFrame(fin bool, op byte, p []byte) []byte {
	return append(serverFrameHeader(fin, op, len(p)), p...)
}

func serverFrameHeader(fin bool, op byte, n int) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0}
	switch {
	case n < 126:
		h = append(h, byte(n))
	case n <= 0xffff:
		h = binary.BigEndian.AppendUint16(append(h, 126), uint16(n))
	default:
		h = binary.BigEndian.AppendUint64(append(h, 127), uint64(n))
	}
	return h
}

// Messages check themselves: "s<dial>.<k>.<len>.<crc>|" + body for the
// server's, where body is "g" (greeting), "d"+payload (its own), "e"+the
// client's message (echo) or "a"+the client message's id (ack); and
// "c<writer>.<n>.<type>.<len>.<crc>|" + payload for the client's. A cut,
// spliced or corrupt message can never pass for a whole one.

func simServerMessage(dial, k int, body []byte) []byte {
	h := fmt.Sprintf("s%d.%d.%d.%08x|", dial, k, len(body), crc32.ChecksumIEEE(body))
	return append([]byte(h), body...)
}

func simClientMessage(writer, n int, typ websocket.MessageType, payload []byte) []byte {
	h := fmt.Sprintf("c%d.%d.%d.%d.%08x|", writer, n, int(typ), len(payload), crc32.ChecksumIEEE(payload))
	return append([]byte(h), payload...)
}

// simPayload returns n bytes: ASCII for text (which must be UTF-8), any
// bytes for binary; cut from a random place in a table, which is cheaper
// than drawing each byte (the checksum makes every message check itself).
func simPayload(r *rand.Rand, n int, typ websocket.MessageType) []byte {
	table := simBinary
	if typ == websocket.MessageText {
		table = simText
	}
	b := make([]byte, n)
	for i := 0; i < n; {
		i += copy(b[i:], table[r.IntN(len(table)/2):])
	}
	return b
}

var simText, simBinary = func() ([]byte, []byte) {
	r := rand.New(rand.NewPCG(1, 2))
	text, bin := make([]byte, 256<<10), make([]byte, 256<<10)
	for i := range text {
		text[i] = 'a' + byte(r.IntN(26))
		bin[i] = byte(r.Uint32())
	}
	return text, bin
}()

// parseSimMessage checks a message's header against its body; it returns
// the header's fields and the body.
func parseSimMessage(m []byte) (prefix byte, fields []int, body []byte, err error) {
	i := bytes.IndexByte(m, '|')
	if len(m) == 0 || i < 0 {
		return 0, nil, nil, fmt.Errorf("no header in %d bytes %q", len(m), clip(m))
	}
	prefix = m[0]
	parts := strings.Split(string(m[1:i]), ".")
	body = m[i+1:]
	if len(parts) < 3 {
		return 0, nil, nil, fmt.Errorf("bad header %q", m[:i])
	}
	for _, f := range parts[:len(parts)-1] {
		v, err := strconv.Atoi(f)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("bad header %q", m[:i])
		}
		fields = append(fields, v)
	}
	crc, err := strconv.ParseUint(parts[len(parts)-1], 16, 32)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("bad header %q", m[:i])
	}
	if n := fields[len(fields)-1]; n != len(body) {
		return 0, nil, nil, fmt.Errorf("header %q says %d bytes, %d came", m[:i], n, len(body))
	}
	if uint32(crc) != crc32.ChecksumIEEE(body) {
		return 0, nil, nil, fmt.Errorf("header %q: bad checksum", m[:i])
	}
	return prefix, fields[:len(fields)-1], body, nil
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// clientMessageID checks a client message the server received and
// returns its id, "<writer>.<n>"; a message that does not check out is
// recorded as a violation.
func (w *simWorld) clientMessageID(m []byte, typ websocket.MessageType) string {
	prefix, f, _, err := parseSimMessage(m)
	switch {
	case err != nil:
		w.violate("the server received a corrupt message: %v", err)
		return "corrupt"
	case prefix != 'c' || len(f) != 3:
		w.violate("the server received a message that is not the client's: %q", clip(m))
		return "corrupt"
	case websocket.MessageType(f[2]) != typ:
		w.violate("the server received message c%d.%d as type %v, written as %v", f[0], f[1], typ, websocket.MessageType(f[2]))
	}
	return fmt.Sprintf("%d.%d", f[0], f[1])
}
