//go:build !js

package wsreconnect

// Lifecycle: reading and writing around Close, callbacks that call Close,
// and sessions that end while the application is busy.

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
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
