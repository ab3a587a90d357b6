//go:build !js

package wsreconnect

// Lifecycle: reading and writing around Close, callbacks that call Close,
// and sessions that end while the application is busy.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// After Close or CloseNow, Read returns ErrClosed, even when messages were
// still buffered (a select that offered both would pick one at random).
func TestReadAfterCloseReturnsErrClosed(t *testing.T) {
	for round := range 10 {
		synctest.Test(t, func(t *testing.T) {
			srv := wstest.NewServer(wstest.Send(5, nil))
			defer srv.Close()
			c := mustDial(t, srv.PipeDial(), WithHeartbeat(0, 0))
			synctest.Wait() // the five messages sit in the read-ahead buffer
			if err := c.CloseNow(); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				_, p, err := c.Read(t.Context())
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("round %d: Read %d after CloseNow returned %q, %v; want ErrClosed", round, i, p, err)
				}
			}
		})
	}
}

// A Write whose ctx ends while it waits for coder/websocket's write lock
// leaves the connection healthy, and the heartbeat working: a peer that
// dies later is still found.
func TestHeartbeatWorksAfterTimedOutWrite(t *testing.T) {
	// control: the same peer without the timed-out Write is found.
	for _, timedOutWrite := range []bool{false, true} {
		name := "control"
		if timedOutWrite {
			name = "after a timed-out Write"
		}
		t.Run(name, func(t *testing.T) { heartbeatAfterTimedOutWrite(t, timedOutWrite) })
	}
}

func heartbeatAfterTimedOutWrite(t *testing.T, timedOutWrite bool) {
	synctest.Test(t, func(t *testing.T) {
		const interval, timeout = 10 * time.Second, 2 * time.Second
		// Reads nothing for 3 s (so that a big write holds the write lock),
		// then reads everything and answers no ping: a peer that hung.
		slowThenDead := wstest.Step{NoPong: true, Serve: func(ctx context.Context, ws *websocket.Conn) {
			time.Sleep(3 * time.Second)
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
		}}
		srv := wstest.NewServer(slowThenDead, wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(interval, timeout))

		big := make(chan error, 1)
		go func() { big <- c.Write(context.Background(), websocket.MessageBinary, make([]byte, 16<<10)) }()
		synctest.Wait() // the big write holds the write lock until the server reads

		if timedOutWrite {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			err := c.Write(ctx, websocket.MessageText, []byte("small"))
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("small Write: %v, want DeadlineExceeded", err)
			}
		}
		if err := <-big; err != nil {
			t.Fatalf("big Write: %v (the connection is healthy)", err)
		}
		// From now on the peer answers no ping: found by interval + timeout.
		time.Sleep(10 * (interval + timeout))
		for _, d := range rec.all() {
			if errors.Is(d.Err, ErrHeartbeatTimeout) {
				return
			}
		}
		t.Fatalf("no heartbeat timeout in %v against a peer that answers no ping; disconnects %v, pings %d",
			10*(interval+timeout), rec.all(), srv.Pings.Load())
	})
}

// While the pump is parked (messages wait for Read), a Write may be the
// first to find the connection dropped. The session must end then, not when
// the application reads again: an application that answers each message
// before reading the next (Read, Write, Read, ...) would otherwise wait for
// a reconnect that cannot start.
func TestWriteFindingDropWhileParkedReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drop := func(context.Context, *websocket.Conn) {}
		// readAhead messages fill the buffer, one more parks the pump; then
		// the server drops the TCP connection. The next step echoes.
		srv := wstest.NewServer(wstest.Send(readAhead+1, drop), wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(0, 0))
		synctest.Wait() // pump parked; connection dropped by the server

		// The reply to message 0 meets the dropped connection: an error is
		// fine.
		if err := c.Write(t.Context(), websocket.MessageText, []byte("reply 0")); err == nil {
			t.Fatal("Write to a dropped connection returned nil")
		}
		// The next reply should wait for the reconnect (at most 1 s away,
		// and the server accepts at once) and succeed.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		err := c.Write(ctx, websocket.MessageText, []byte("reply 0, again"))
		if err != nil {
			t.Errorf("Write after the drop: %v after %v (state %v, %d disconnects, %d connections)",
				err, time.Since(start), c.State(), len(rec.all()), srv.Accepted.Load())
		}
		// Reading unblocks the pump, which then finds the dead connection.
		for i := range readAhead + 1 {
			if got := readString(t, c); got != strconv.Itoa(i) {
				t.Fatalf("message %d: %q", i, got)
			}
		}
	})
}

// Close reports how many queued messages were never sent, also when it is
// called from a callback (where it does not wait): the count must not be
// lost, for that call or a later one.
func TestCloseFromCallbackReportsUnsentMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Reject(503, "100"))
		defer srv.Close()
		var c *Conn
		ready := make(chan struct{})
		fromCallback := make(chan error, 1)
		c = mustDial(t, srv.PipeDial(), WithSendQueue(4), WithOnDisconnect(func(d Disconnect) {
			<-ready
			if d.HTTPStatus == 503 { // give up once the server says it is overloaded
				fromCallback <- c.Close(websocket.StatusNormalClosure, "")
			}
		}))
		close(ready)
		synctest.Wait() // dropped; the supervisor waits out the first delay
		if err := c.Write(t.Context(), websocket.MessageText, []byte("queued")); err != nil {
			t.Fatalf("queued Write: %v", err)
		}
		time.Sleep(2 * time.Second) // the 503 arrives; OnDisconnect closes
		synctest.Wait()
		errCallback := <-fromCallback
		errLater := c.CloseNow()
		var ue *UnsentError
		if !errors.As(errCallback, &ue) && !errors.As(errLater, &ue) {
			t.Fatalf("Close from OnDisconnect: %v; CloseNow afterwards: %v; neither reports the queued message (Stats().Queued = %d)",
				errCallback, errLater, c.Stats().Queued)
		}
	})
}

// CloseNow cuts short a close handshake that Close started against a peer
// that never answers (coder/websocket would wait 5 s for the write and 5 s
// for the answer): both return at once, and the Conn is closed.
func TestCloseNowCutsCloseHandshakeShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		deafPeer := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) { <-ctx.Done() }}
		srv := wstest.NewServer(deafPeer)
		defer srv.Close()
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(0, 0))
		graceful := make(chan error, 1)
		go func() { graceful <- c.Close(websocket.StatusGoingAway, "bye") }()
		time.Sleep(100 * time.Millisecond) // the handshake is under way
		start := time.Now()
		if err := c.CloseNow(); err != nil {
			t.Errorf("CloseNow: %v", err)
		}
		<-graceful
		if d := time.Since(start); d != 0 {
			t.Errorf("CloseNow during a Close handshake took %v, want it cut short at once", d)
		}
		if c.State() != StateClosed {
			t.Fatalf("state %v", c.State())
		}
	})
}

// CloseNow called from inside the DialFunc (which runs on a goroutine of
// its own) returns: Close never waits for the application's code. A
// deadlock would hang the test binary, so the scenario runs in a child
// process, where testing/synctest reports it.
func TestCloseFromDialFuncReturns(t *testing.T) {
	if os.Getenv("WSRECONNECT_TEST_CHILD") == "1" {
		closeFromDialFunc(t)
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCloseFromDialFuncReturns$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "WSRECONNECT_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "lifecycle_test.go:") && strings.Contains(l, ": ") && !strings.Contains(l, "+0x") || strings.HasPrefix(l, "panic:") {
				t.Logf("child: %s", strings.TrimSpace(l))
			}
		}
		t.Fatalf("CloseNow called from the DialFunc: child process failed (%v)", err)
	}
}

func closeFromDialFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Echo())
		defer srv.Close()
		pipe := srv.PipeDial()
		conns := make(chan *Conn, 1)
		calls := 0
		entered := make(chan struct{})
		closed := make(chan error, 1)
		dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			calls++
			if calls == 2 { // e.g. the token can no longer be refreshed: give up
				close(entered)
				closed <- (<-conns).CloseNow()
				return nil, nil, errors.New("giving up")
			}
			return pipe(ctx)
		}
		c, err := Dial(t.Context(), dial, WithHeartbeat(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		conns <- c
		<-entered // the drop is seen and the DialFunc called again
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("CloseNow from the DialFunc: %v", err)
			}
		case <-time.After(time.Hour):
			t.Fatal("CloseNow called inside the DialFunc never returned")
		}
		c.CloseNow()
	})
}

// The policy may call Close: it returns, and nothing more happens (no
// OnDisconnect, no other attempt).
func TestCloseFromPolicyReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Echo())
		defer srv.Close()
		var c *Conn
		ready := make(chan struct{})
		fromPolicy := make(chan error, 1)
		rec := &recorder{}
		c = mustDial(t, srv.PipeDial(), rec.option(), WithPolicy(func(d Disconnect) Decision {
			<-ready
			fromPolicy <- c.Close(websocket.StatusNormalClosure, "")
			return DefaultPolicy(d)
		}))
		close(ready)
		if err := <-fromPolicy; err != nil {
			t.Fatalf("Close from the policy: %v", err)
		}
		synctest.Wait()
		if c.State() != StateClosed || srv.Attempts.Load() != 1 || len(rec.all()) != 0 {
			t.Fatalf("state %v, %d attempts, disconnects %v", c.State(), srv.Attempts.Load(), rec.all())
		}
	})
}

// Close made while a dial is under way (the DialFunc, another goroutine's
// callback, waits on its ctx) returns the messages that were never sent,
// with Done closed: a callback running elsewhere is no reason to return
// early. (It used to return nil at once, the unsent count lost.)
func TestCloseDuringDialReportsUnsentMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Echo())
		defer srv.Close()
		pipe := srv.PipeDial()
		dialing := make(chan struct{})
		var calls atomic.Int32
		dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			if calls.Add(1) == 2 {
				close(dialing)
				<-ctx.Done()
				return nil, nil, ctx.Err()
			}
			return pipe(ctx)
		}
		c := mustDial(t, dial, WithSendQueue(4), WithHeartbeat(0, 0))
		synctest.Wait() // dropped; the Conn waits before the next dial
		for range 2 {
			if err := c.Write(t.Context(), websocket.MessageText, []byte("queued")); err != nil {
				t.Fatalf("queued Write: %v", err)
			}
		}
		<-dialing
		err := c.Close(websocket.StatusNormalClosure, "")
		var ue *UnsentError
		if !errors.As(err, &ue) || ue.Count != 2 {
			t.Fatalf("Close during a dial: %v, want an *UnsentError of 2", err)
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Close returned before Done was closed")
		}
	})
}

// A Write waiting for a connection returns ErrClosed as soon as Close is
// called, even while a callback runs: here OnDisconnect waits for that
// very Write. (Only the end of the supervisor woke it, after the callback
// had returned: the callback waited for ever.)
func TestBlockedWriteReturnsAtCloseWhileCallbackRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Echo())
		defer srv.Close()
		inCallback := make(chan struct{})
		wrote := make(chan error, 1)
		var once sync.Once
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(0, 0), WithOnDisconnect(func(Disconnect) {
			once.Do(func() {
				close(inCallback)
				select {
				case err := <-wrote: // the application's writer must be done first
					wrote <- err
				case <-time.After(time.Minute):
				}
			})
		}))
		<-inCallback
		go func() { wrote <- c.Write(context.Background(), websocket.MessageText, []byte("blocked")) }()
		synctest.Wait() // the Write waits for a connection
		start := time.Now()
		c.CloseNow()
		select {
		case err := <-wrote:
			if !errors.Is(err, ErrClosed) || time.Since(start) != 0 {
				t.Fatalf("the blocked Write returned %v after %v, want ErrClosed at once", err, time.Since(start))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the blocked Write did not return at Close")
		}
	})
}

// After Close has returned, a Write is ErrClosed and nothing reaches the
// server, also when Close was made while the ping function ran. (Close
// returned early then, and the live connection still took Writes.)
func TestWriteAfterCloseFailsWhilePingFuncRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got atomic.Int32
		counter := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
				got.Add(1)
			}
		}}
		srv := wstest.NewServer(counter)
		defer srv.Close()
		pinging, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(time.Second, time.Second),
			WithPingFunc(func(ctx context.Context, ws *websocket.Conn) error {
				once.Do(func() { close(pinging) })
				<-release // the application's ping takes its time, whatever ctx says
				return nil
			}))
		defer close(release)
		<-pinging
		if err := c.CloseNow(); err != nil {
			t.Fatalf("CloseNow: %v", err)
		}
		if err := c.Write(t.Context(), websocket.MessageText, []byte("after")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Write after CloseNow: %v, want ErrClosed", err)
		}
		synctest.Wait()
		if n := got.Load(); n != 0 {
			t.Fatalf("the server received %d messages after CloseNow", n)
		}
	})
}

// Dial returns when its ctx ends, whatever the application's callbacks are
// doing: OnDisconnect taking its time, or a DialFunc that ignores its ctx.
// (Dial used to wait for them: 30 s for a 1 s ctx, or for ever.)
func TestDialReturnsWhenItsContextEnds(t *testing.T) {
	t.Run("OnDisconnect runs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wstest.NewServer(wstest.Reject(503, ""))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			c, err := Dial(ctx, srv.PipeDial(), WithOnDisconnect(func(Disconnect) { time.Sleep(30 * time.Second) }))
			if c != nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
				t.Fatalf("Dial: %v after %v, want DeadlineExceeded after 1s", err, time.Since(start))
			}
			time.Sleep(time.Minute) // OnDisconnect, left to itself, returns
		})
	})
	t.Run("DialFunc ignores its ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			dial := func(context.Context) (*websocket.Conn, *http.Response, error) {
				<-release
				return nil, nil, errors.New("late")
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				_, err := Dial(ctx, dial)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
					t.Fatalf("Dial: %v after %v, want DeadlineExceeded after 1s", err, time.Since(start))
				}
			case <-time.After(time.Minute):
				t.Fatal("Dial did not return when its ctx ended")
			}
		})
	})
}

// Close right after Reconnect: the connection Reconnect drops keeps its
// close frame, 1000 "reconnecting"; Close sends none of its own, waits for
// that handshake, and dials nothing.
func TestCloseRightAfterReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &closeRecorder{}
		srv := wstest.NewServer(rec.step())
		defer srv.Close()
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(0, 0))
		c.Reconnect()
		if err := c.Close(4000, "bye"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		codes, reasons := rec.closes()
		if len(codes) != 1 || codes[0] != websocket.StatusNormalClosure || reasons[0] != "reconnecting" {
			t.Fatalf("the server heard %v %q, want one 1000 \"reconnecting\"", codes, reasons)
		}
		if a := srv.Attempts.Load(); a != 1 {
			t.Fatalf("%d dials", a)
		}
	})
}

// Once the policy has stopped the Conn, Err, Read and Write keep saying
// why, also after a later Close or CloseNow (defer c.CloseNow() is the
// common pattern): the *StopError, not ErrClosed.
func TestStopErrorOutlivesLaterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.CloseWith(websocket.StatusPolicyViolation, "no"))
		defer srv.Close()
		c := mustDial(t, srv.PipeDial())
		<-c.Done()
		if err := c.CloseNow(); err != nil {
			t.Fatalf("CloseNow after the stop: %v", err)
		}
		var se *StopError
		if err := c.Err(); !errors.As(err, &se) || websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("Err after the stop and CloseNow: %v", err)
		}
		if _, _, err := c.Read(t.Context()); !errors.As(err, &se) {
			t.Fatalf("Read: %v", err)
		}
		if err := c.Write(t.Context(), websocket.MessageText, nil); !errors.As(err, &se) {
			t.Fatalf("Write: %v", err)
		}
	})
}

// What a connection's end is reported as, when several things saw it: a
// Write whose ctx ended while it waited for the lock (the connection stays
// healthy) is not reported for a later, unrelated end; the write error
// that broke the connection is.
func TestEndCauseRanking(t *testing.T) {
	stale := fmt.Errorf("failed to acquire lock: %w", context.DeadlineExceeded)
	broken := fmt.Errorf("write: %w", syscall.EPIPE)
	peer := websocket.CloseError{Code: websocket.StatusPolicyViolation}
	for _, tt := range []struct {
		name string
		s    *session
		want error
	}{
		{"a later broken write over a stale ctx", &session{writeCtxErr: stale, writeErr: broken, readErr: net.ErrClosed}, broken},
		{"a stale ctx alone explains a closed connection", &session{writeCtxErr: stale, readErr: net.ErrClosed}, stale},
		{"the peer's close frame over a write error", &session{writeErr: broken, readErr: peer}, peer},
		{"a requested reconnect over the peer's answer", &session{requested: true, readErr: peer}, ErrReconnectRequested},
		{"OnConnect's error, which sent its close frame, over the answer", &session{setup: &setupState{err: stale, ended: true}, readErr: peer}, stale},
		{"the peer's close frame over OnConnect's error once the connection was gone", &session{setup: &setupState{err: stale}, readErr: peer}, peer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.cause(); !errors.Is(got, tt.want) {
				t.Fatalf("cause %v, want %v", got, tt.want)
			}
		})
	}
}

// A server that closes the connection while OnConnect writes: OnConnect
// fails because the connection is gone, and the Disconnect says what the
// server said (1012, the service restarts), not the write that failed
// because of it, which the policy would count as a failed attempt.
func TestServerCloseDuringOnConnectReportedAsTheServersCode(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			srv := wstest.NewServer(wstest.CloseWith(websocket.StatusServiceRestart, "restart"), wstest.Echo())
			defer srv.Close()
			rec := &recorder{}
			var calls atomic.Int64
			c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(0, 0), WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
				if calls.Add(1) > 1 {
					return nil
				}
				for {
					if err := ws.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
						return err
					}
				}
			}))
			if err := c.WaitConnected(t.Context()); err != nil {
				t.Fatalf("WaitConnected: %v", err)
			}
			ds := rec.all()
			if len(ds) != 1 || ds[0].Code != websocket.StatusServiceRestart {
				t.Fatalf("disconnects %v, want one with the server's 1012", ds)
			}
		})
	}
}
