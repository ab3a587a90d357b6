//go:build !js

package resume

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// refuse answers every handshake with 503: the client retries.
var refuse = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusServiceUnavailable)
})

// readN returns a serve function that writes first (reliably), reads n
// messages into got, then waits for the session's end, and reports it.
func readN(n int, first []string, got chan<- string, ended chan<- error) func(context.Context, *Session) {
	return func(ctx context.Context, s *Session) {
		for _, m := range first {
			if err := s.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
				return
			}
		}
		for range n {
			_, p, err := s.Read(ctx)
			if err != nil {
				break
			}
			got <- string(p)
		}
		<-ctx.Done()
		if ended != nil {
			ended <- s.Err()
		}
	}
}

func wantUnconfirmed(t *testing.T, got []Message, want ...Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("unconfirmed: %d messages %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Type != want[i].Type || string(got[i].Data) != string(want[i].Data) {
			t.Errorf("unconfirmed[%d] = {%d %v %q}, want {%d %v %q}", i,
				got[i].Seq, got[i].Type, got[i].Data, want[i].Seq, want[i].Type, want[i].Data)
		}
	}
}

// The server restarts without a shared Store: it has forgotten the
// session. The client is told, at the point where the old session's
// messages end, with exactly the messages the server never acknowledged;
// then the new session works.
func TestNotRecoveredAfterServerRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan string, 10)
		a := newTestServer(t, readN(2, []string{"from A"}, got, nil))
		b := newTestServer(t, echo)
		w := newWorld(t, a)
		defer w.close()
		defer b.Close()
		ctx := timeout(t, time.Minute)

		if _, m := read(t, ctx, w.c); m != "from A" {
			t.Fatalf("got %q", m)
		}
		for i := 1; i <= 5; i++ {
			typ := websocket.MessageText
			if i == 3 {
				typ = websocket.MessageBinary
			}
			if err := w.c.Write(ctx, typ, fmt.Appendf(nil, "m%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second) // A reads m1 and m2 and acknowledges them
		if st := w.c.Stats(); st.Unacked != 3 {
			t.Fatalf("%d unacknowledged, want 3", st.Unacked)
		}
		old := w.c.Stats().Session

		w.net.setHandler(b) // the restarted server: a new process, a new MemoryStore
		a.Close()           // 1001 going away: the client reconnects, to b

		_, _, err := w.c.Read(ctx)
		var nr *NotRecoveredError
		if !errors.As(err, &nr) || !errors.Is(err, ErrNotRecovered) {
			t.Fatalf("Read: %v, want a NotRecoveredError", err)
		}
		wantUnconfirmed(t, nr.Unconfirmed,
			Message{3, websocket.MessageBinary, []byte("m3")},
			Message{4, websocket.MessageText, []byte("m4")},
			Message{5, websocket.MessageText, []byte("m5")})
		if nr.OldSession != old || nr.NewSession == old || nr.NewSession != w.c.Stats().Session {
			t.Errorf("sessions %q → %q, want %q → the current one (%q)", nr.OldSession, nr.NewSession, old, w.c.Stats().Session)
		}
		if err := w.c.Write(ctx, websocket.MessageText, []byte("again")); err != nil {
			t.Fatal(err)
		}
		if _, m := read(t, ctx, w.c); m != "again" {
			t.Fatalf("got %q after the new session started", m)
		}
		if st := w.c.Stats(); st.Sessions != 2 || st.Unacked != 0 && st.Unacked != 1 {
			t.Errorf("stats %+v: want 2 sessions", st)
		}
	})
}

// The client stays away longer than the resume window: the server forgets
// the session (its serve function ends with ErrSessionExpired), and the
// client is told when it comes back.
func TestNotRecoveredAfterTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ended := make(chan error, 2)
		srv := newTestServer(t, readN(0, nil, nil, ended), WithResumeWindow(2*time.Second))
		w := newWorld(t, srv)
		defer w.close()
		ctx := timeout(t, time.Minute)

		if err := w.c.Write(ctx, websocket.MessageText, []byte("lost?")); err != nil {
			t.Fatal(err)
		}
		w.net.setHandler(refuse)
		w.net.last().cut()
		time.Sleep(5 * time.Second) // the client retries, refused, for longer than the window
		if err := <-ended; !errors.Is(err, ErrSessionExpired) {
			t.Errorf("the session ended with %v, want ErrSessionExpired", err)
		}
		if srv.Stats().Sessions != 0 || srv.store.(*MemoryStore).Len() != 0 {
			t.Errorf("%d sessions held, %d stored after the window", srv.Stats().Sessions, srv.store.(*MemoryStore).Len())
		}
		w.net.setHandler(srv)

		_, _, err := w.c.Read(ctx)
		var nr *NotRecoveredError
		if !errors.As(err, &nr) {
			t.Fatalf("Read: %v, want a NotRecoveredError", err)
		}
		wantUnconfirmed(t, nr.Unconfirmed, Message{1, websocket.MessageText, []byte("lost?")})
		if st := srv.Stats(); st.NotFound != 1 || st.Started != 2 || st.Resumed != 0 {
			t.Errorf("server stats %+v: want 2 sessions started, 1 not found", st)
		}
	})
}

// A client that comes back within the window resumes, however long it
// was away: the messages written meanwhile wait for it.
func TestResumedWithinTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		written := make(chan struct{})
		srv := newTestServer(t, func(ctx context.Context, s *Session) {
			<-written
			for i := range 3 {
				if err := s.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "while away %d", i)); err != nil {
					t.Errorf("Write while the client is away: %v", err)
				}
			}
			<-ctx.Done()
		}, WithResumeWindow(10*time.Second))
		w := newWorld(t, srv)
		defer w.close()
		ctx := timeout(t, time.Minute)
		w.net.setHandler(refuse)
		w.net.last().cut()
		close(written)
		time.Sleep(8 * time.Second)
		w.net.setHandler(srv)
		for i := range 3 {
			if _, m := read(t, ctx, w.c); m != fmt.Sprintf("while away %d", i) {
				t.Fatalf("got %q", m)
			}
		}
		if st := w.c.Stats(); st.Sessions != 1 || st.Resumes != 1 {
			t.Errorf("stats %+v: want the session resumed once", st)
		}
	})
}

// Backpressure: a full outbox makes Write wait, bounded by its ctx, until
// the server acknowledges; WithOutboxFullError makes it fail at once.
func TestBackpressure(t *testing.T) {
	for _, failFast := range []bool{false, true} {
		t.Run(fmt.Sprintf("failFast=%v", failFast), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				srv := newTestServer(t, func(ctx context.Context, s *Session) {
					select {
					case <-release: // the application reads only from now
					case <-ctx.Done():
						return
					}
					for {
						if _, _, err := s.Read(ctx); err != nil {
							return
						}
					}
				})
				opts := []Option{WithOutbox(3, 1<<20)}
				if failFast {
					opts = append(opts, WithOutboxFullError())
				}
				w := newWorld(t, srv, opts...)
				defer w.close()
				ctx := timeout(t, time.Minute)
				for i := range 3 {
					if err := w.c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "%d", i)); err != nil {
						t.Fatal(err)
					}
				}
				start := time.Now()
				err := w.c.Write(timeout(t, time.Second), websocket.MessageText, []byte("3"))
				switch {
				case failFast && !errors.Is(err, ErrOutboxFull):
					t.Fatalf("Write: %v, want ErrOutboxFull", err)
				case failFast && time.Since(start) != 0:
					t.Fatalf("Write failed after %v, want at once", time.Since(start))
				case !failFast && !errors.Is(err, context.DeadlineExceeded):
					t.Fatalf("Write: %v, want the ctx's deadline", err)
				case !failFast && time.Since(start) != time.Second:
					t.Fatalf("Write returned after %v, want 1s", time.Since(start))
				}
				if st := w.c.Stats(); st.Unacked != 3 {
					t.Fatalf("%d unacknowledged, want 3: the refused message is not in the outbox", st.Unacked)
				}
				if failFast {
					close(release)
					if err := w.c.Flush(ctx); err != nil {
						t.Fatal(err)
					}
					if err := w.c.Write(ctx, websocket.MessageText, []byte("3")); err != nil {
						t.Fatal(err)
					}
					return
				}
				done := make(chan error, 1)
				go func() { done <- w.c.Write(ctx, websocket.MessageText, []byte("3")) }()
				synctest.Wait()
				select {
				case err := <-done:
					t.Fatalf("Write returned %v with the outbox full", err)
				default:
				}
				close(release)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if err := w.c.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if st := w.c.Stats(); st.Unacked != 0 || st.UnackedBytes != 0 {
					t.Errorf("stats %+v after Flush", st)
				}
			})
		})
	}
}

// The server's Write waits the same way for a client that does not read.
func TestServerBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		results := make(chan error, 10)
		srv := newTestServer(t, func(ctx context.Context, s *Session) {
			for i := range 4 {
				wctx, cancel := context.WithTimeout(ctx, time.Second)
				results <- s.Write(wctx, websocket.MessageText, fmt.Appendf(nil, "%d", i))
				cancel()
			}
			results <- s.Write(ctx, websocket.MessageText, []byte("last"))
			<-ctx.Done()
		}, WithOutbox(3, 1<<20))
		w := newWorld(t, srv)
		defer w.close()
		for i := range 3 {
			if err := <-results; err != nil {
				t.Fatalf("Write %d: %v", i, err)
			}
		}
		if err := <-results; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Write 3: %v, want the ctx's deadline", err)
		}
		synctest.Wait()
		select {
		case err := <-results:
			t.Fatalf("Write returned %v, the client reading nothing", err)
		default:
		}
		ctx := timeout(t, time.Minute)
		for _, want := range []string{"0", "1", "2", "last"} {
			if _, m := read(t, ctx, w.c); m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		}
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	})
}

// A message larger than the peer accepts, or than the outbox holds, is
// refused at once.
func TestTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		serverErr := make(chan error, 1)
		srv := newTestServer(t, func(ctx context.Context, s *Session) {
			serverErr <- s.Write(ctx, websocket.MessageText, make([]byte, 51))
			<-ctx.Done()
		}, WithMaxMessage(100))
		w := newWorld(t, srv, WithMaxMessage(50), WithOutbox(10, 80))
		defer w.close()
		ctx := timeout(t, time.Minute)
		for _, n := range []int{101, 81} {
			if err := w.c.Write(ctx, websocket.MessageBinary, make([]byte, n)); !errors.Is(err, ErrTooLarge) {
				t.Errorf("Write of %d bytes: %v, want ErrTooLarge", n, err)
			}
		}
		if err := w.c.WriteVolatile(ctx, websocket.MessageBinary, make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("WriteVolatile: %v, want ErrTooLarge", err)
		}
		if err := w.c.Write(ctx, websocket.MessageBinary, make([]byte, 80)); err != nil {
			t.Errorf("Write of 80 bytes: %v", err)
		}
		if err := <-serverErr; !errors.Is(err, ErrTooLarge) {
			t.Errorf("server Write of 51 bytes: %v, want ErrTooLarge", err)
		}
	})
}

// A peer that never acknowledges cannot make either end hold more than
// its outbox: Writes wait, and memory stays bounded.
func TestBoundedMemoryWhenThePeerNeverAcks(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := newPipeNet(rawServer(func(k int, ws *websocket.Conn) {
				if _, err := welcome(ws, "greedy"); err != nil {
					return
				}
				for { // reads everything, acknowledges nothing
					if _, _, err := ws.Read(context.Background()); err != nil {
						return
					}
				}
			}))
			defer n.close()
			c, err := Dial(context.Background(), n.dial(), fastConn(), WithOutbox(100, 64<<10))
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			ctx := timeout(t, 10*time.Second)
			p := make([]byte, 1024)
			written := 0
			for ; written < 10000; written++ {
				if err := c.Write(ctx, websocket.MessageBinary, p); err != nil {
					break
				}
			}
			st := c.Stats()
			if written != 64 || st.Unacked != 64 || st.UnackedBytes != 64<<10 {
				t.Errorf("%d written, stats %+v: want 64 messages of 1 KiB held", written, st)
			}
		})
	})
	t.Run("server", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			written := make(chan int, 1)
			store := NewMemoryStore(0, 0)
			srv := newTestServer(t, func(ctx context.Context, s *Session) {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				i := 0
				for ; i < 10000; i++ {
					if s.Write(wctx, websocket.MessageBinary, make([]byte, 1024)) != nil {
						break
					}
				}
				written <- i
				<-ctx.Done()
			}, WithOutbox(100, 64<<10), WithStore(store))
			defer srv.Close()
			n := newPipeNet(srv)
			defer n.close()
			ws := rawDial(t, n)
			defer ws.CloseNow()
			send(ws, "H 1 - 0 1 10 10000 1048576 ")
			go func() { // reads everything, acknowledges nothing
				for {
					if _, _, err := ws.Read(context.Background()); err != nil {
						return
					}
				}
			}()
			if got := <-written; got != 64 {
				t.Errorf("the server wrote %d messages, want 64 (its outbox)", got)
			}
			store.mu.Lock()
			held := store.bytes
			store.mu.Unlock()
			if held != 64<<10 {
				t.Errorf("the store holds %d bytes, want 64 KiB", held)
			}
		})
	})
	t.Run("client that does not read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			written := make(chan int, 1)
			srv := newTestServer(t, func(ctx context.Context, s *Session) {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				i := 0
				for ; i < 10000; i++ {
					if s.Write(wctx, websocket.MessageBinary, make([]byte, 100)) != nil {
						break
					}
				}
				written <- i
				<-ctx.Done()
			}, WithOutbox(50, 1<<20))
			w := newWorld(t, srv)
			defer w.close()
			// The client acknowledges only what its application read: what
			// waits for Read is bounded by the server's window.
			if got := <-written; got != 50 {
				t.Errorf("the server wrote %d messages, want 50 (its outbox)", got)
			}
			w.c.mu.Lock()
			queued := len(w.c.queue) - w.c.qhead
			w.c.mu.Unlock()
			if queued != 50 {
				t.Errorf("%d messages wait for Read, want 50", queued)
			}
		})
	})
}

// Volatile messages go out only on the live connection: a connection cut
// before they were sent loses them, and the next one does not resend
// them, while it does resend the reliable ones.
func TestVolatileNeverReplayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n *pipeNet
		written := make(chan struct{})
		second := make(chan []string, 1)
		n = newPipeNet(rawServer(func(k int, ws *websocket.Conn) {
			switch k {
			case 1:
				if _, err := welcome(ws, "vol"); err != nil {
					return
				}
				<-written      // the client's writer is blocked: the pipe does not buffer
				n.last().cut() // nothing was read
			case 2:
				hello, err := recv(ws)
				if err != nil {
					return
				}
				send(ws, "W 1 vol 1 0 1024 1048576 32768 ")
				send(ws, fmt.Sprintf("S %d ", hello.conn))
				var frames []string
				for {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					_, p, err := ws.Read(ctx)
					cancel()
					if err != nil {
						break
					}
					frames = append(frames, string(p))
				}
				second <- frames
			}
		}))
		defer n.close()
		c, err := Dial(context.Background(), n.dial(), fastConn())
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		ctx := timeout(t, time.Minute)
		if err := c.WriteVolatile(ctx, websocket.MessageText, []byte("v1")); err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("r1")); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteVolatile(ctx, websocket.MessageText, []byte("v2")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		close(written)
		if got, want := <-second, []string{"M 1 2 r1"}; !slices.Equal(got, want) {
			t.Errorf("the second connection carried %q, want %q", got, want)
		}
	})
}

// Volatile and reliable messages arrive in the order written, each with
// its type; volatile ones beyond the backlog are dropped and counted, and
// WriteVolatile without a connection fails at once.
func TestVolatileAndReliableInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		go1 := make(chan struct{})
		srv := newTestServer(t, func(ctx context.Context, s *Session) {
			<-go1
			s.WriteVolatile(ctx, websocket.MessageText, []byte("v1"))
			s.Write(ctx, websocket.MessageBinary, []byte("r1"))
			for i := range 4 {
				s.WriteVolatile(ctx, websocket.MessageBinary, fmt.Appendf(nil, "v%d", i+2))
			}
			s.Write(ctx, websocket.MessageText, []byte("r2"))
			<-ctx.Done()
		})
		w := newWorld(t, srv, WithVolatileBacklog(3))
		defer w.close()
		close(go1)
		synctest.Wait() // all arrived before the first Read: the backlog overflows
		ctx := timeout(t, time.Minute)
		var got []string
		for range 5 {
			typ, m := read(t, ctx, w.c)
			got = append(got, fmt.Sprintf("%s:%v", m, typ))
		}
		want := []string{"v1:MessageText", "r1:MessageBinary", "v2:MessageBinary", "v3:MessageBinary", "r2:MessageText"}
		if !slices.Equal(got, want) {
			t.Errorf("read %q, want %q", got, want)
		}
		if st := w.c.Stats(); st.VolatileDropped != 2 {
			t.Errorf("%d volatile messages dropped, want 2", st.VolatileDropped)
		}
		w.net.setHandler(refuse)
		w.net.cutAll()
		time.Sleep(time.Second)
		if err := w.c.WriteVolatile(ctx, websocket.MessageText, []byte("x")); !errors.Is(err, ErrNotConnected) {
			t.Errorf("WriteVolatile while disconnected: %v, want ErrNotConnected", err)
		}
		if err := w.c.Write(ctx, websocket.MessageText, []byte("queued")); err != nil {
			t.Errorf("Write while disconnected: %v, want it kept for the next connection", err)
		}
	})
}

// Servers that share a Store are one server to the client: a session
// resumes on another one, which resends what the first wrote and the
// client had not acknowledged, and expects what follows what the first
// read. The first server, still running, finds the session gone from it.
func TestResumeOnAnotherServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore(0, 0)
		aGot, bGot := make(chan string, 10), make(chan string, 10)
		aWrite, aErr := make(chan struct{}), make(chan error, 1)
		a := newTestServer(t, func(ctx context.Context, s *Session) {
			for _, m := range []string{"a1", "a2", "a3"} {
				s.Write(ctx, websocket.MessageText, []byte(m))
			}
			_, p, _ := s.Read(ctx)
			aGot <- string(p)
			<-aWrite
			aErr <- s.Write(ctx, websocket.MessageText, []byte("too late"))
		}, WithStore(store))
		bResumed := make(chan bool, 1)
		b := newTestServer(t, func(ctx context.Context, s *Session) {
			bResumed <- s.Resumed()
			for {
				_, p, err := s.Read(ctx)
				if err != nil {
					return
				}
				bGot <- string(p)
			}
		}, WithStore(store))
		defer a.Close()
		defer b.Close()
		w := newWorld(t, a)
		defer w.close()
		ctx := timeout(t, time.Minute)

		if err := w.c.Write(ctx, websocket.MessageText, []byte("c1")); err != nil {
			t.Fatal(err)
		}
		if m := <-aGot; m != "c1" {
			t.Fatalf("a read %q", m)
		}
		time.Sleep(time.Second) // a acknowledges c1; the client has read nothing yet

		w.net.setHandler(b)
		w.net.cutAll()
		if !<-bResumed {
			t.Error("b's session: Resumed() is false")
		}
		synctest.Wait() // b has resent a1-a3, which the client had received unread
		for _, want := range []string{"a1", "a2", "a3"} {
			if _, m := read(t, ctx, w.c); m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		}

		if err := w.c.Write(ctx, websocket.MessageText, []byte("c2")); err != nil {
			t.Fatal(err)
		}
		if m := <-bGot; m != "c2" {
			t.Fatalf("b read %q, want c2 (c1 was a's)", m)
		}
		close(aWrite)
		if err := <-aErr; !errors.Is(err, ErrSessionMoved) {
			t.Errorf("a's Write after the takeover: %v, want ErrSessionMoved", err)
		}
		if st := w.c.Stats(); st.Sessions != 1 || st.Duplicates != 3 {
			t.Errorf("stats %+v: want one session, and b's 3 copies dropped", st)
		}
		synctest.Wait()
		if st := b.Stats(); st.Resumed != 1 || st.Started != 0 || st.Replayed != 3 {
			t.Errorf("b's stats %+v: want 1 resumed, 3 replayed", st)
		}
		select {
		case m := <-bGot:
			t.Errorf("b read %q more", m)
		default:
		}
	})
}

// A second connection resuming a session that a live connection serves
// takes it over: the first is closed with 1008.
func TestTakeoverOnTheSameServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newTestServer(t, func(ctx context.Context, s *Session) { <-ctx.Done() })
		defer srv.Close()
		n := newPipeNet(srv)
		defer n.close()
		ws1 := rawDial(t, n)
		defer ws1.CloseNow()
		send(ws1, "H 1 - 0 1 4 1000 1000 ")
		w1, _ := recv(ws1)
		recv(ws1) // S
		code := make(chan websocket.StatusCode, 1)
		go func() { code <- closeCode(ws1) }()

		ws2 := rawDial(t, n)
		defer ws2.CloseNow()
		send(ws2, "H 1 "+w1.session+" 0 2 4 1000 1000 ")
		w2, err := recv(ws2)
		if err != nil || !w2.resumed || w2.session != w1.session {
			t.Fatalf("second welcome %+v %v: want the session resumed", w2, err)
		}
		if c := <-code; c != websocket.StatusPolicyViolation {
			t.Errorf("the first connection closed with %d, want 1008", c)
		}
		if srv.Stats().Sessions != 1 {
			t.Errorf("%d sessions", srv.Stats().Sessions)
		}
	})
}

// Close tells the server, which forgets the session at once, and reports
// the messages it never acknowledged.
func TestCloseEndsTheSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ended := make(chan error, 1)
		srv := newTestServer(t, readN(1, nil, make(chan string, 1), ended))
		w := newWorld(t, srv)
		defer w.close()
		ctx := timeout(t, time.Minute)
		for _, m := range []string{"read", "unread"} {
			if err := w.c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		err := w.c.Close()
		var ue *UnconfirmedError
		if !errors.As(err, &ue) || !errors.Is(err, ErrUnconfirmed) {
			t.Fatalf("Close: %v, want an UnconfirmedError", err)
		}
		wantUnconfirmed(t, ue.Messages, Message{2, websocket.MessageText, []byte("unread")})
		if err := <-ended; !errors.Is(err, ErrSessionClosed) {
			t.Errorf("the session ended with %v, want ErrSessionClosed", err)
		}
		synctest.Wait()
		if srv.Stats().Sessions != 0 || srv.store.(*MemoryStore).Len() != 0 {
			t.Errorf("%d sessions held, %d stored after Close", srv.Stats().Sessions, srv.store.(*MemoryStore).Len())
		}
		if _, _, err := w.c.Read(ctx); !errors.Is(err, wsreconnect.ErrClosed) {
			t.Errorf("Read after Close: %v", err)
		}
		if err := w.c.Write(ctx, websocket.MessageText, nil); !errors.Is(err, wsreconnect.ErrClosed) {
			t.Errorf("Write after Close: %v", err)
		}
		if err := w.c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

// When the serve function returns, the session is over: what it wrote
// last still arrives, then the client stops (1000).
func TestServeReturnEndsTheSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newTestServer(t, func(ctx context.Context, s *Session) {
			for i := range 50 {
				s.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "%d", i))
			}
		})
		w := newWorld(t, srv)
		defer w.close()
		ctx := timeout(t, time.Minute)
		for i := range 50 {
			if _, m := read(t, ctx, w.c); m != fmt.Sprint(i) {
				t.Fatalf("got %q, want %d", m, i)
			}
		}
		_, _, err := w.c.Read(ctx)
		var se *wsreconnect.StopError
		if !errors.As(err, &se) || websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Fatalf("Read: %v, want the Conn stopped by 1000", err)
		}
		<-w.c.Done()
	})
}

// Session.Close with a code the client's policy retries: the client comes
// back, finds the session gone, and is told.
func TestSessionCloseForcesANewSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := true
		srv := newTestServer(t, func(ctx context.Context, s *Session) {
			if first {
				first = false
				if _, _, err := s.Read(ctx); err != nil { // the client is attached
					return
				}
				s.Write(ctx, websocket.MessageText, []byte("before"))
				if err := s.Close(websocket.StatusServiceRestart, "reset"); err != nil {
					t.Error(err)
				}
				if err := s.Close(websocket.StatusNormalClosure, ""); !errors.Is(err, ErrSessionClosed) {
					t.Errorf("second Close: %v", err)
				}
				return
			}
			s.Write(ctx, websocket.MessageText, []byte("after"))
			<-ctx.Done()
		})
		w := newWorld(t, srv)
		defer w.close()
		ctx := timeout(t, time.Minute)
		if err := w.c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, m := read(t, ctx, w.c); m != "before" {
			t.Fatalf("got %q", m)
		}
		if _, _, err := w.c.Read(ctx); !errors.Is(err, ErrNotRecovered) {
			t.Fatalf("Read: %v, want ErrNotRecovered", err)
		}
		if _, m := read(t, ctx, w.c); m != "after" {
			t.Fatalf("got %q", m)
		}
	})
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server bool
		opts   []Option
		want   []string
	}{
		{"out of range", false, []Option{WithOutbox(0, 1<<31), WithAck(0, 0), WithMaxMessage(0), WithVolatileBacklog(0)},
			[]string{"outbox messages 0", "outbox bytes 2147483648", "ack every 0", "ack delay 0s", "max message 0", "volatile backlog 0"}},
		{"server option to Dial", false, []Option{WithResumeWindow(time.Second), WithStore(NewMemoryStore(0, 0))},
			[]string{"WithResumeWindow is a server option", "WithStore is a server option"}},
		{"client option to NewServer", true, []Option{WithConnOptions(), WithOnConnect(nil)},
			[]string{"WithConnOptions is a client option", "WithOnConnect is a client option"}},
		{"server ranges", true, []Option{WithResumeWindow(0), WithMaxSessions(0), WithHandshakeTimeout(0), WithPeerWindowLimit(0, 0), nil},
			[]string{"resume window 0s", "max sessions 0", "handshake timeout 0s", "peer window messages 0", "peer window bytes 0", "nil Option"}},
		{"nil store", true, []Option{WithStore(nil)}, []string{"WithStore: nil Store"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.server {
				_, err = NewServer(echo, tc.opts...)
			} else {
				_, err = Dial(context.Background(), func(context.Context) (*websocket.Conn, *http.Response, error) {
					t.Fatal("dialled despite invalid options")
					return nil, nil, nil
				}, tc.opts...)
			}
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("got %v, want ErrInvalidOption", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := NewServer(nil); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("NewServer(nil): %v", err)
	}
}

// wsreconnect.WithOnConnect among the Conn's options would replace the
// handshake: Dial says so instead of running without it.
func TestConnOptionsMustNotReplaceTheHandshake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newTestServer(t, echo)
		defer srv.Close()
		n := newPipeNet(srv)
		defer n.close()
		_, err := Dial(context.Background(), n.dial(), fastConn(
			wsreconnect.WithOnConnect(func(context.Context, *websocket.Conn) error { return nil })))
		if !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("Dial: %v, want ErrInvalidOption", err)
		}
	})
}

// The application's own OnConnect runs first, on every connection: it may
// exchange messages with the server before the hello.
func TestOnConnectRunsBeforeTheHandshake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newTestServer(t, echo)
		defer srv.Close()
		tokens := make(chan string, 4)
		n := newPipeNet(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			_, p, err := ws.Read(r.Context()) // the application's own first message
			if err != nil {
				return
			}
			tokens <- string(p)
			ws.Write(r.Context(), websocket.MessageText, []byte("welcome, "+string(p)))
			srv.ServeConn(r.Context(), ws)
		}))
		defer n.close()
		c, err := Dial(context.Background(), n.dial(), fastConn(), WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
			if err := ws.Write(ctx, websocket.MessageText, []byte("token")); err != nil {
				return err
			}
			_, p, err := wsreconnect.ReadOnConnect(ctx)
			if err == nil && string(p) != "welcome, token" {
				err = fmt.Errorf("got %q", p)
			}
			return err
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		ctx := timeout(t, time.Minute)
		n.cutAll()
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, m := read(t, ctx, c); m != "hi" {
			t.Fatalf("got %q", m)
		}
		if len(tokens) != 2 {
			t.Errorf("OnConnect ran %d times, want 2", len(tokens))
		}
	})
}

// The first connection is cut after the welcome, before its S frame: the
// client never read from that session. When the server then starts a new
// one, the first session's unconfirmed messages are still reported.
func TestNotRecoveredBeforeTheFirstStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n *pipeNet
		written := make(chan struct{})
		n = newPipeNet(rawServer(func(k int, ws *websocket.Conn) {
			hello, err := recv(ws)
			if err != nil {
				return
			}
			switch k {
			case 1:
				send(ws, "W 1 first 0 0 1024 1048576 32768 ")
				<-written
				n.last().cut()
			default:
				if hello.session != "first" {
					t.Errorf("hello for %q, want first", hello.session)
				}
				send(ws, "W 1 second 0 0 1024 1048576 32768 ")
				send(ws, fmt.Sprintf("S %d ", hello.conn))
				closeCode(ws)
			}
		}))
		defer n.close()
		c, err := Dial(context.Background(), n.dial(), fastConn())
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		ctx := timeout(t, time.Minute)
		if err := c.Write(ctx, websocket.MessageText, []byte("m")); err != nil {
			t.Fatal(err)
		}
		close(written)
		_, _, err = c.Read(ctx)
		var nr *NotRecoveredError
		if !errors.As(err, &nr) || nr.OldSession != "first" || nr.NewSession != "second" {
			t.Fatalf("Read: %v, want first not recovered", err)
		}
		wantUnconfirmed(t, nr.Unconfirmed, Message{1, websocket.MessageText, []byte("m")})
	})
}

// Close does not wait for a client that has not said hello yet.
func TestServerCloseCutsHandshakesShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newTestServer(t, echo)
		n := newPipeNet(srv)
		defer n.close()
		ws := rawDial(t, n)
		defer ws.CloseNow()
		synctest.Wait() // the server waits for the hello
		start := time.Now()
		srv.Close()
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v with a handshake under way, want at once", d)
		}
	})
}

// However often a client reconnects, its session has one entry in the
// expiry queue, and it expires one window after its last connection.
func TestExpiryAfterManyReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ended := make(chan error, 1)
		srv := newTestServer(t, readN(0, nil, nil, ended), WithResumeWindow(10*time.Second))
		defer srv.Close()
		n := newPipeNet(srv)
		defer n.close()
		session := "-"
		for i := range 100 {
			ws := rawDial(t, n)
			send(ws, fmt.Sprintf("H 1 %s 0 %d 4 1000 1000 ", session, i+1))
			w, err := recv(ws)
			if err != nil || i > 0 && !w.resumed {
				t.Fatalf("connection %d: %+v %v", i, w, err)
			}
			session = w.session
			recv(ws) // S
			ws.CloseNow()
			synctest.Wait()
			time.Sleep(time.Second) // each one within the window of the last
		}
		srv.mu.Lock()
		queued := len(srv.expiries)
		srv.mu.Unlock()
		if queued != 1 {
			t.Errorf("%d expiry entries for one session, want 1", queued)
		}
		lastEnd := time.Now().Add(-time.Second)
		if err := <-ended; !errors.Is(err, ErrSessionExpired) {
			t.Fatalf("the session ended with %v", err)
		}
		if d := time.Since(lastEnd); d != 10*time.Second {
			t.Errorf("expired %v after its last connection, want 10s", d)
		}
	})
}

// The Conn's Close does not wait for OnConnect (the application's code);
// the Client's does wait for its own handshake, which runs there: Close
// returns only once the handshake of a connection being set up has
// returned, so nothing of the Client outlives it.
func TestCloseWaitsForTheHandshake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newPipeNet(rawServer(func(k int, ws *websocket.Conn) {
			if k == 1 {
				if _, err := welcome(ws, "s1"); err != nil {
					return
				}
			}
			closeCode(ws)
		}))
		defer n.close()
		var shakes atomic.Int32
		inside, release := make(chan struct{}), make(chan struct{})
		c, err := Dial(context.Background(), n.dial(), fastConn(), withHandshakeHook(func() {
			if shakes.Add(1) == 2 {
				close(inside)
				<-release
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		n.cutAll()
		<-inside
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			c.CloseNow()
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Error("CloseNow returned while the handshake ran")
		default:
		}
		close(release)
		<-closed
	})
}

// withHandshakeHook runs f inside each handshake, where Close waits for it.
func withHandshakeHook(f func()) Option {
	return option{name: "withHandshakeHook", side: clientSide, fn: func(c *config) { c.handshakeHook = f }}
}

// pausingStore pauses the next Take after it has moved the generation on,
// and reports an Update refused as moved.
type pausingStore struct {
	Store
	taken, release chan struct{}
	refused        chan struct{} // (cap 1)
	once           sync.Once
}

func (p *pausingStore) Take(ctx context.Context, id string, exp time.Time) (Record, error) {
	r, err := p.Store.Take(ctx, id, exp)
	p.once.Do(func() {
		close(p.taken)
		<-p.release
	})
	return r, err
}

func (p *pausingStore) Update(ctx context.Context, id string, gen uint64, u Update) error {
	err := p.Store.Update(ctx, id, gen, u)
	if errors.Is(err, ErrSessionMoved) {
		select {
		case p.refused <- struct{}{}:
		default:
		}
	}
	return err
}

// A Write that reaches the Store while a takeover on the same server is
// between its Take and the Session learning the new generation is refused
// as moved by the Store. That is no other server's takeover: the Write
// waits for it and succeeds, and the session goes on in the same serve
// function (it used to end, and the serve function ran again).
func TestWriteDuringATakeoverOnTheSameServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &pausingStore{Store: NewMemoryStore(0, 0), taken: make(chan struct{}), release: make(chan struct{}), refused: make(chan struct{}, 1)}
		var serves atomic.Int32
		write := make(chan struct{})
		wrote := make(chan error, 1)
		srv := newTestServer(t, func(ctx context.Context, s *Session) {
			serves.Add(1)
			<-write
			wrote <- s.Write(ctx, websocket.MessageText, []byte("during the takeover"))
			<-ctx.Done()
		}, WithStore(store))
		defer srv.Close()
		n := newPipeNet(srv)
		defer n.close()
		ws1 := rawDial(t, n)
		defer ws1.CloseNow()
		send(ws1, "H 1 - 0 1 4 1000 1000 ")
		w1, _ := recv(ws1)
		recv(ws1) // S

		ws2 := rawDial(t, n)
		defer ws2.CloseNow()
		go send(ws2, "H 1 "+w1.session+" 0 2 4 1000 1000 ")
		<-store.taken // the generation moved on; the Session does not know yet
		close(write)
		<-store.refused // the Write's append, with the old generation
		close(store.release)
		if err := <-wrote; err != nil {
			t.Fatalf("Write during the takeover: %v", err)
		}
		w2, err := recv(ws2)
		if err != nil || !w2.resumed {
			t.Fatalf("second welcome %+v %v: want the session resumed", w2, err)
		}
		recv(ws2) // S
		if m, err := recv(ws2); err != nil || string(m.payload) != "during the takeover" {
			t.Fatalf("got %+v %v, want the message written during the takeover", m, err)
		}
		if n := serves.Load(); n != 1 {
			t.Errorf("the serve function ran %d times, want once", n)
		}
	})
}
