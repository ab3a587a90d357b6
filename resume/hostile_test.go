//go:build !js

package resume

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// A server that breaks the protocol after the handshake ends the client
// with a *ProtocolError carrying the close code PROTOCOL.md names, and
// receives that code in a close frame. Nothing panics, spins, or grows.
func TestHostileServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames []string // sent after W and S
		code   websocket.StatusCode
		reason string
	}{
		{"gap in the numbers", []string{"M 1 1 a", "M 3 1 c"}, 1002, "message 3 after 1: a gap"},
		{"ack for a message never sent", []string{"A 5 "}, 1002, "ack for a message never sent"},
		{"window exceeded in messages", []string{"M 1 1 a", "M 2 1 b", "M 3 1 c"}, 1008, "window exceeded"},
		{"window exceeded in bytes", []string{"M 1 6 abcdef", "M 2 6 abcdef"}, 1008, "window exceeded"},
		{"malformed frame, then another", []string{"M 1 9 short", "A 1 "}, 1002, "length mismatch"},
		{"two malformed frames", []string{"Q ", "Q "}, 1002, "unknown frame kind"},
		{"an unexpected frame kind", []string{"H 1 - 0 1 1 1 1 "}, 1002, "unexpected H frame"},
		{"a second welcome", []string{"W 1 s 0 0 1 1 1 "}, 1002, "unexpected W frame"},
		{"a start for an unknown connection", []string{"S 99 "}, 1002, "S frame for an unknown connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gotCode := make(chan websocket.StatusCode, 1)
				n := newPipeNet(rawServer(func(k int, ws *websocket.Conn) {
					hello, err := recv(ws)
					if err != nil || k > 1 {
						gotCode <- -2
						return
					}
					// A window of 2 messages and 10 bytes.
					send(ws, "W 1 hostile 0 0 2 10 32768 ")
					send(ws, fmt.Sprintf("S %d ", hello.conn))
					for _, f := range tc.frames {
						send(ws, f)
					}
					gotCode <- closeCode(ws)
				}))
				defer n.close()
				c, err := Dial(context.Background(), n.dial(), fastConn())
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				<-c.Done()
				var pe *ProtocolError
				err = c.Err()
				if !errors.As(err, &pe) || pe.Code != tc.code || pe.Reason != tc.reason {
					t.Fatalf("client ended with %v, want a ProtocolError %d %q", err, tc.code, tc.reason)
				}
				if websocket.CloseStatus(err) != tc.code {
					t.Errorf("CloseStatus %d, want %d", websocket.CloseStatus(err), tc.code)
				}
				for {
					// What arrived before the violation, then the error.
					_, _, err := c.Read(context.Background())
					if err != nil {
						if !errors.As(err, &pe) {
							t.Errorf("Read: %v, want the ProtocolError", err)
						}
						break
					}
				}
				if got := <-gotCode; got != tc.code {
					t.Errorf("the server saw close code %d, want %d", got, tc.code)
				}
			})
		})
	}
}

// A welcome that breaks the protocol stops the client in Dial: a protocol
// error is no reason to retry.
func TestHostileWelcome(t *testing.T) {
	for _, tc := range []struct {
		name    string
		welcome string
		code    websocket.StatusCode
	}{
		{"resumes a session not asked for", "W 1 s 1 0 1 1 1 ", 1002},
		{"not a welcome", "A 1 ", 1002},
		{"bad version", "W 2 s 0 0 1 1 1 ", 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gotCode := make(chan websocket.StatusCode, 1)
				n := newPipeNet(rawServer(func(k int, ws *websocket.Conn) {
					if _, err := recv(ws); err != nil || k > 1 {
						return
					}
					go func() { // net.Pipe does not buffer: write while closeCode reads
						send(ws, tc.welcome)
						send(ws, "S 1 ") // a frame follows: the welcome was not cut short
					}()
					gotCode <- closeCode(ws)
				}))
				defer n.close()
				c, err := Dial(context.Background(), n.dial(), fastConn())
				if err == nil {
					c.CloseNow()
					t.Fatal("Dial succeeded")
				}
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Code != tc.code {
					t.Fatalf("Dial: %v, want a ProtocolError %d", err, tc.code)
				}
				var se *wsreconnect.StopError
				if !errors.As(err, &se) {
					t.Errorf("Dial: %v, want the Conn stopped", err)
				}
				if got := <-gotCode; got != tc.code {
					t.Errorf("the server saw close code %d, want %d", got, tc.code)
				}
			})
		})
	}
}

// A message larger than the client accepts ends the connection with 1009
// (coder/websocket's read limit, set from WithMaxMessage), which stops
// the client: the read limit bounds what a server can make it hold.
func TestServerMessageTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newPipeNet(rawServer(func(k int, ws *websocket.Conn) {
			if _, err := welcome(ws, "big"); err != nil || k > 1 {
				return
			}
			send(ws, "M 1 2000 "+strings.Repeat("x", 2000))
			closeCode(ws)
		}))
		defer n.close()
		c, err := Dial(context.Background(), n.dial(), fastConn(), WithMaxMessage(1000))
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		<-c.Done()
		if got := websocket.CloseStatus(c.Err()); got != websocket.StatusMessageTooBig {
			t.Fatalf("client ended with %v (code %d), want 1009", c.Err(), got)
		}
	})
}

// A client that breaks the protocol gets the close code PROTOCOL.md names,
// and its session is forgotten (a session whose numbers broke cannot be
// resumed).
func TestHostileClient(t *testing.T) {
	const hello = "H 1 - 0 1 2 10 32768 " // a window of 2 messages and 10 bytes
	for _, tc := range []struct {
		name   string
		frames []string // after the hello
		code   websocket.StatusCode
		unread bool // the application reads nothing: nothing is acknowledged
	}{
		{"gap in the numbers", []string{"M 1 1 a", "M 3 1 c"}, 1002, false},
		{"ack for a message never sent", []string{"A 1 "}, 1002, false},
		{"window exceeded in messages", []string{"M 1 1 a", "M 2 1 b", "M 3 1 c"}, 1008, true},
		{"window exceeded in bytes", []string{"M 1 6 abcdef", "M 2 6 abcdef"}, 1008, true},
		{"malformed frame, then another", []string{"M 1 9 short", "A 1 "}, 1002, false},
		{"a welcome from the client", []string{"W 1 s 0 0 1 1 1 "}, 1002, false},
		{"a second hello", []string{hello}, 1002, false},
		{"binary control frame", []string{"\x00binary"}, 1002, false},
		{"message too large", []string{"M 1 40000 " + strings.Repeat("x", 40000)}, 1009, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ended := make(chan error, 1)
				srv := newTestServer(t, func(ctx context.Context, s *Session) {
					if tc.unread {
						<-ctx.Done()
						ended <- s.Err()
						return
					}
					for {
						if _, _, err := s.Read(ctx); err != nil {
							ended <- err
							return
						}
					}
				})
				defer srv.Close()
				n := newPipeNet(srv)
				defer n.close()
				ws := rawDial(t, n)
				defer ws.CloseNow()
				send(ws, hello)
				if f, err := recv(ws); err != nil || f.kind != kindWelcome {
					t.Fatalf("welcome: %+v %v", f, err)
				}
				if f, err := recv(ws); err != nil || f.kind != kindStart {
					t.Fatalf("start: %+v %v", f, err)
				}
				go func() { // net.Pipe does not buffer: write while closeCode reads
					for _, f := range tc.frames {
						if f == "\x00binary" {
							ws.Write(context.Background(), websocket.MessageBinary, []byte("A 1 "))
							ws.Write(context.Background(), websocket.MessageBinary, []byte("A 1 "))
							continue
						}
						send(ws, f)
					}
				}()
				if got := closeCode(ws); got != tc.code {
					t.Errorf("closed with %d, want %d", got, tc.code)
				}
				if tc.code == websocket.StatusMessageTooBig {
					// coder/websocket closed the connection itself: the
					// session waits for its client, as after any drop.
					synctest.Wait()
					if srv.Stats().Sessions != 1 {
						t.Errorf("%d sessions held, want 1", srv.Stats().Sessions)
					}
					return
				}
				err := <-ended
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Code != tc.code {
					t.Errorf("the session ended with %v, want a ProtocolError %d", err, tc.code)
				}
				if st := srv.Stats(); st.ProtocolErrors != 1 {
					t.Errorf("server stats %+v: want 1 protocol error", st)
				}
				synctest.Wait()
				if srv.Stats().Sessions != 0 || srv.store.(*MemoryStore).Len() != 0 {
					t.Errorf("%d sessions held, %d stored: want the session forgotten", srv.Stats().Sessions, srv.store.(*MemoryStore).Len())
				}
			})
		})
	}
}

// A hello that cannot be served is refused with the code PROTOCOL.md
// names, and leaves no session behind.
func TestHostileHello(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames []string
		code   websocket.StatusCode
	}{
		{"garbage, then more", []string{"hello?", "hello?"}, 1002},
		{"not a hello", []string{"M 1 1 a"}, 1002}, // a whole frame: refused at once
		{"window beyond the server's limit", []string{"H 1 - 0 1 1048576 1073741824 32768 "}, 1008},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := newTestServer(t, func(ctx context.Context, s *Session) { <-ctx.Done() })
				defer srv.Close()
				n := newPipeNet(srv)
				defer n.close()
				ws := rawDial(t, n)
				defer ws.CloseNow()
				for _, f := range tc.frames {
					send(ws, f)
				}
				if got := closeCode(ws); got != tc.code {
					t.Errorf("closed with %d, want %d", got, tc.code)
				}
				if srv.Stats().Sessions != 0 {
					t.Errorf("%d sessions held", srv.Stats().Sessions)
				}
			})
		})
	}
}

// A client that says nothing is cut off after the handshake timeout.
func TestSilentClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newTestServer(t, func(ctx context.Context, s *Session) { <-ctx.Done() }, WithHandshakeTimeout(3*time.Second))
		defer srv.Close()
		n := newPipeNet(srv)
		defer n.close()
		ws := rawDial(t, n)
		defer ws.CloseNow()
		start := time.Now()
		closeCode(ws)
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("cut off after %v, want 3s", d)
		}
	})
}

// A message cut short by the end of its connection, which coder/websocket
// delivers as if it were whole, is no violation: the client drops it, and
// the next connection resends it.
func TestFrameCutShortByTheServersEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n *pipeNet
		second := make(chan frame, 1)
		n = newPipeNet(rawServer(func(k int, ws *websocket.Conn) {
			switch k {
			case 1:
				if _, err := welcome(ws, "sess1"); err != nil {
					return
				}
				// The frame's 2-byte header gets through, its payload does
				// not: coder/websocket delivers an empty "whole" message.
				n.last().cutAfter(-1, 2)
				send(ws, "M 1 11 hello world")
			case 2:
				hello, err := recv(ws)
				if err != nil {
					return
				}
				second <- hello
				send(ws, "W 1 sess1 1 0 1024 1048576 32768 ")
				send(ws, fmt.Sprintf("S %d ", hello.conn))
				send(ws, "M 1 11 hello world")
				closeCode(ws)
			}
		}))
		defer n.close()
		c, err := Dial(context.Background(), n.dial(), fastConn())
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		ctx := timeout(t, 10*time.Second)
		if _, got := read(t, ctx, c); got != "hello world" {
			t.Fatalf("got %q", got)
		}
		if h := <-second; h.session != "sess1" || h.ack != 0 {
			t.Errorf("second hello %+v: want session sess1, ack 0", h)
		}
		if err := c.Err(); err != nil {
			t.Errorf("client ended: %v", err)
		}
	})
}

// The same, the other way: the server drops the cut frame, keeps the
// session, and the client resumes it.
func TestFrameCutShortByTheClientsEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan string, 2)
		srv := newTestServer(t, func(ctx context.Context, s *Session) {
			for {
				_, p, err := s.Read(ctx)
				if err != nil {
					return
				}
				got <- string(p)
			}
		})
		defer srv.Close()
		n := newPipeNet(srv)
		defer n.close()

		ws := rawDial(t, n)
		send(ws, "H 1 - 0 1 4 1000 32768 ")
		w, err := recv(ws)
		if err != nil || w.kind != kindWelcome {
			t.Fatalf("welcome %+v %v", w, err)
		}
		recv(ws) // S
		// The frame's header (2 bytes, and the 4-byte mask) gets through,
		// its payload does not: the server reads an empty "whole" message.
		synctest.Wait()
		n.last().cutAfter(6, -1)
		send(ws, "M 1 11 hello world")
		synctest.Wait()
		ws.CloseNow()
		if srv.Stats().Sessions != 1 {
			t.Fatalf("%d sessions held, want the session kept", srv.Stats().Sessions)
		}

		ws = rawDial(t, n)
		defer ws.CloseNow()
		send(ws, "H 1 "+w.session+" 0 2 4 1000 32768 ")
		w2, err := recv(ws)
		if err != nil || w2.kind != kindWelcome || !w2.resumed || w2.ack != 0 {
			t.Fatalf("second welcome %+v %v: want the session resumed at 0", w2, err)
		}
		recv(ws) // S
		send(ws, "M 1 11 hello world")
		if m := <-got; m != "hello world" {
			t.Fatalf("server read %q", m)
		}
	})
}

// A hello that resumes a session with an ack the session cannot match is
// refused (1002), and the session, whose numbers broke, is forgotten: an
// ack beyond what the server sent, or below what the client had already
// acknowledged (the client lost messages it had confirmed).
func TestHostileResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		ack  string
	}{
		{"ack beyond what was sent", "3"},
		{"ack below what was acknowledged", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := newTestServer(t, func(ctx context.Context, s *Session) {
					s.Write(ctx, websocket.MessageText, []byte("one"))
					s.Write(ctx, websocket.MessageText, []byte("two"))
					<-ctx.Done()
				})
				defer srv.Close()
				n := newPipeNet(srv)
				defer n.close()
				ws := rawDial(t, n)
				defer ws.CloseNow()
				send(ws, "H 1 - 0 1 4 1000 1000 ")
				w, _ := recv(ws)
				for range 3 { // S, and the two messages
					recv(ws)
				}
				send(ws, "A 2 ")
				synctest.Wait()
				ws.CloseNow()
				synctest.Wait()

				ws2 := rawDial(t, n)
				defer ws2.CloseNow()
				send(ws2, "H 1 "+w.session+" "+tc.ack+" 2 4 1000 1000 ")
				if got := closeCode(ws2); got != websocket.StatusProtocolError {
					t.Errorf("closed with %d, want 1002", got)
				}
				synctest.Wait()
				if st := srv.Stats(); st.Sessions != 0 || st.ProtocolErrors != 1 {
					t.Errorf("server stats %+v: want the session forgotten", st)
				}
			})
		})
	}
}
