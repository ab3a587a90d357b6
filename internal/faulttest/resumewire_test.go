package faulttest

// PROTOCOL.md on the wire, byte for byte, against both servers: a raw
// client (coder/websocket, no resume package) plays the worked example of
// §15 and breaks the protocol in each way §11 lists, and expects the
// frames and close codes the document names.

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// rawConn is one raw connection to a server under test.
type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, srv resumeServer) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+srv.addr()+"/", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &rawConn{t: t, ws: ws}
}

func (r *rawConn) send(typ websocket.MessageType, s string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := r.ws.Write(ctx, typ, []byte(s)); err != nil {
		r.t.Fatalf("write %.40q: %v", s, err)
	}
}

// recv reads one frame as "text:…" or "binary:…".
func (r *rawConn) recv() string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	typ, p, err := r.ws.Read(ctx)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return strings.ToLower(typ.String()[len("Message"):]) + ":" + string(p)
}

// expect reads one frame and checks it against the pattern (anchored).
func (r *rawConn) expect(pattern string) []string {
	r.t.Helper()
	got := r.recv()
	m := regexp.MustCompile(`^` + pattern + `$`).FindStringSubmatch(got)
	if m == nil {
		r.t.Fatalf("got %q, want %s", got, pattern)
	}
	return m
}

// closeCode reads until the server closes, and returns its close code
// (-1: no close frame).
func (r *rawConn) closeCode() websocket.StatusCode {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		if _, _, err := r.ws.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

const (
	rawHello = "H 1 - 0 1 1024 1048576 32768 "
	// welcomeNew is a new session's welcome with the defaults both servers
	// share (PROTOCOL.md §12); group 1 is the session id.
	welcomeNew = `text:W 1 ([A-Za-z0-9_-]{22}) 0 0 1024 1048576 32768 `
)

// start opens a new session on a new raw connection; it returns the id.
func (r *rawConn) start(hello string) string {
	r.t.Helper()
	r.send(websocket.MessageText, hello)
	id := r.expect(welcomeNew)[1]
	r.expect(`text:S 1 `)
	return id
}

// TestResumeProtocolExample plays PROTOCOL.md §15, the worked example,
// with both servers (whose application echoes, where the example's
// answers "re: …").
func TestResumeProtocolExample(t *testing.T) {
	for _, kind := range serverKinds {
		t.Run(kind, func(t *testing.T) {
			noLeaks(t)
			srv := startKind(t, kind, make(chan error, 1))
			c1 := dialRaw(t, srv)
			id := c1.start(rawHello)
			c1.send(websocket.MessageText, "M 1 5 hello")
			c1.expect(`text:M 1 5 hello`)
			c1.expect(`text:A 1 `) // after the server's quiet time
			c1.send(websocket.MessageText, "A 1 ")
			// The client writes "M 2 6 second", which never arrives: the
			// connection dies.
			_ = c1.ws.CloseNow()

			c2 := dialRaw(t, srv)
			c2.send(websocket.MessageText, "H 1 "+id+" 1 2 1024 1048576 32768 ")
			c2.expect(`text:W 1 ` + id + ` 1 1 1024 1048576 32768 `)
			c2.expect(`text:S 2 `)
			c2.send(websocket.MessageBinary, "M 2 6 second")
			c2.expect(`binary:M 2 6 second`)
			c2.expect(`text:A 2 `)
			c2.send(websocket.MessageText, "A 2 ")
			c2.send(websocket.MessageText, "E ")
			if code := c2.closeCode(); code != websocket.StatusNormalClosure {
				t.Errorf("after E: close code %d, want 1000", code)
			}
			// E made the server forget the session at once.
			c3 := dialRaw(t, srv)
			c3.send(websocket.MessageText, "H 1 "+id+" 2 3 1024 1048576 32768 ")
			if got := c3.expect(welcomeNew)[1]; got == id {
				t.Errorf("a new session with the old id %s", id)
			}
		})
	}
}

// TestResumeProtocolViolations: a client that breaks the protocol gets the
// close code of PROTOCOL.md §11.1, from both servers.
func TestResumeProtocolViolations(t *testing.T) {
	text, binary := websocket.MessageText, websocket.MessageBinary
	type frame struct {
		typ websocket.MessageType
		s   string
	}
	for _, tc := range []struct {
		name   string
		hello  string  // "" : the frames come first
		frames []frame // after the handshake, if hello is set
		code   websocket.StatusCode
	}{
		{"a frame before the hello", "", []frame{{text, "A 1 "}}, 1002},
		{"a malformed hello, then a frame", "", []frame{{text, "H 1 - 0 1 1024 1048576 32768"}, {text, "E "}}, 1002},
		{"a hello sent as binary, then a frame", "", []frame{{binary, rawHello}, {text, "E "}}, 1002},
		{"an unsupported version, then a frame", "", []frame{{text, "H 2 - 0 1 1024 1048576 32768 "}, {text, "E "}}, 1002},
		{"a window larger than the server accepts", "", []frame{{text, "H 1 - 0 1 1048576 1048576 32768 "}}, 1008},
		{"a gap", rawHello, []frame{{text, "M 2 1 x"}}, 1002},
		{"an ack of a message never sent", rawHello, []frame{{text, "A 1 "}}, 1002},
		{"the window exceeded", "H 1 - 0 1 1024 4 32768 ", []frame{{text, "M 1 5 hello"}}, 1008},
		{"a second hello", rawHello, []frame{{text, "H 1 - 0 2 1024 1048576 32768 "}}, 1002},
		{"a welcome from the client", rawHello, []frame{{text, "W 1 abc 0 0 1 1 1 "}}, 1002},
		{"a start from the client", rawHello, []frame{{text, "S 1 "}}, 1002},
		{"a length mismatch, then a frame", rawHello, []frame{{text, "M 1 5 hell"}, {text, "M 1 1 x"}}, 1002},
		{"a leading zero, then a frame", rawHello, []frame{{text, "M 01 1 x"}, {text, "M 1 1 x"}}, 1002},
		{"no final space, then a frame", rawHello, []frame{{text, "A 1"}, {text, "M 1 1 x"}}, 1002},
		{"an ack sent as binary, then a frame", rawHello, []frame{{binary, "A 1 "}, {text, "M 1 1 x"}}, 1002},
		{"a message over maxmsg plus the header", rawHello, []frame{{binary, "M 1 32802 " + strings.Repeat("x", 32802)}}, 1009},
		{"the end of the session", rawHello, []frame{{text, "M 1 1 x"}, {text, "E "}}, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range serverKinds {
				t.Run(kind, func(t *testing.T) {
					noLeaks(t)
					srv := startKind(t, kind, make(chan error, 1))
					c := dialRaw(t, srv)
					if tc.hello != "" {
						c.start(tc.hello)
					}
					for _, f := range tc.frames {
						// A server may close before it has read them all.
						_ = c.ws.Write(context.Background(), f.typ, []byte(f.s))
					}
					if code := c.closeCode(); code != tc.code {
						t.Errorf("close code %d, want %d", code, tc.code)
					}
				})
			}
		})
	}
}

// TestResumeProtocolSessions: resuming, taking over, and the frame cut
// short by the connection's end (§11.2), against both servers.
func TestResumeProtocolSessions(t *testing.T) {
	for _, kind := range serverKinds {
		t.Run(kind, func(t *testing.T) {
			noLeaks(t)
			srv := startKind(t, kind, make(chan error, 1))

			// A frame cut short, then the connection's end: discarded, and
			// the session resumes (§11.2).
			c1 := dialRaw(t, srv)
			id := c1.start(rawHello)
			c1.send(websocket.MessageText, "M 1 5 hel")
			_ = c1.ws.CloseNow()
			c2 := dialRaw(t, srv)
			c2.send(websocket.MessageText, "H 1 "+id+" 0 2 1024 1048576 32768 ")
			c2.expect(`text:W 1 ` + id + ` 1 0 1024 1048576 32768 `)
			c2.expect(`text:S 2 `)
			c2.send(websocket.MessageText, "M 1 5 hello")
			c2.expect(`text:M 1 5 hello`)

			// A newer connection takes the session over: the older one is
			// closed with 1008, and the server's unacknowledged message is
			// sent again on the newer one (§6.2.3, §7).
			c3 := dialRaw(t, srv)
			c3.send(websocket.MessageText, "H 1 "+id+" 0 3 1024 1048576 32768 ")
			c3.expect(`text:W 1 ` + id + ` 1 1 1024 1048576 32768 `)
			c3.expect(`text:S 3 `)
			c3.expect(`text:M 1 5 hello`)
			if code := c2.closeCode(); code != websocket.StatusPolicyViolation {
				t.Errorf("the older connection: close code %d, want 1008", code)
			}

			// A hello acknowledging a message the server never sent: 1002,
			// and the session is forgotten (§6.2.3).
			c4 := dialRaw(t, srv)
			c4.send(websocket.MessageText, "H 1 "+id+" 5 4 1024 1048576 32768 ")
			if code := c4.closeCode(); code != websocket.StatusProtocolError {
				t.Errorf("a hello acking message 5 of 1: close code %d, want 1002", code)
			}
			c5 := dialRaw(t, srv)
			c5.send(websocket.MessageText, "H 1 "+id+" 1 5 1024 1048576 32768 ")
			if got := c5.expect(welcomeNew)[1]; got == id {
				t.Errorf("session %s still held after the violation", id)
			}
		})
	}
}
