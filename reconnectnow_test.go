//go:build !js

package wsreconnect

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// closeRecorder is a server step that echoes until the connection ends,
// and records the close frames the client sent, and when. It reads the
// frames itself, so that it records a close frame as it arrives, before it
// answers: a client that waits for the answer cannot dial again before
// the close frame is recorded, however the server's goroutines are
// scheduled.
type closeRecorder struct {
	mu      sync.Mutex
	codes   []websocket.StatusCode
	reasons []string
	at      []time.Time
	served  []time.Time // when each connection's handshake was answered
}

func (r *closeRecorder) step() wstest.Step {
	return wstest.Step{Raw: func(ctx context.Context, conn net.Conn) {
		r.mu.Lock()
		r.served = append(r.served, time.Now())
		r.mu.Unlock()
		br := bufio.NewReader(conn)
		for {
			_, op, p, err := readClientFrame(br)
			if err != nil {
				return
			}
			switch op {
			case 0x1, 0x2: // the tests' messages are small: one frame each
				err = writeServerFrame(conn, op, p)
			case 0x8:
				at := time.Now()
				code := websocket.StatusNoStatusRcvd
				if len(p) >= 2 {
					code = websocket.StatusCode(binary.BigEndian.Uint16(p))
					p = p[2:]
				}
				r.mu.Lock()
				r.codes = append(r.codes, code)
				r.reasons = append(r.reasons, string(p))
				r.at = append(r.at, at)
				r.mu.Unlock()
				_ = writeServerFrame(conn, 0x8, binary.BigEndian.AppendUint16(nil, uint16(code)))
				return
			case 0x9:
				err = writeServerFrame(conn, 0xA, p)
			}
			if err != nil {
				return
			}
		}
	}}
}

// writeServerFrame writes one unmasked frame with FIN set.
func writeServerFrame(w io.Writer, opcode byte, p []byte) error {
	_, err := w.Write(serverFrame(true, opcode, p))
	return err
}

func (r *closeRecorder) closes() ([]websocket.StatusCode, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]websocket.StatusCode(nil), r.codes...), append([]string(nil), r.reasons...)
}

func (r *closeRecorder) closedAt(i int) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at[i]
}

func (r *closeRecorder) servedAt(i int) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.served[i]
}

// isRequested reports a Disconnect of a reconnect the application asked for.
func isRequested(d Disconnect) bool {
	return errors.Is(d.Err, ErrReconnectRequested) && d.Reconnect && d.Delay == 0 && d.Decision == Retry
}

// Reconnect on a live connection closes it with 1000 "reconnecting" and
// dials at once; it returns at once; its end is reported once; there are
// never two live connections: the new dial starts only after the server
// has the old one's close frame.
func TestReconnectLiveConnection(t *testing.T) {
	noLeaks(t)
	rec := &closeRecorder{}
	srv, dial := netListen(t, rec.step())
	w := newNetWatcher()
	c := mustDial(t, dial, w.option())
	netEcho(t, c, "before")

	if d := netTimed(t, "Reconnect", c.Reconnect); d > 100*time.Millisecond {
		t.Errorf("Reconnect took %v, want it to return at once", d)
	}
	got := w.next(t, 5*time.Second)
	if d := got.d; !isRequested(d) || d.Code != websocket.StatusNormalClosure || d.Uptime <= 0 {
		t.Fatalf("disconnect %v (Err %v), want one wrapping ErrReconnectRequested, retry at once", d, d.Err)
	}
	netWaitUntil(t, 5*time.Second, "the second connection", func() bool { return srv.Accepted.Load() == 2 })
	netEcho(t, c, "after")
	if codes, reasons := rec.closes(); len(codes) != 1 || codes[0] != websocket.StatusNormalClosure || reasons[0] != "reconnecting" {
		t.Fatalf("the server saw close frames %v %q, want one 1000 \"reconnecting\"", codes, reasons)
	}
	if closed, next := rec.closedAt(0), rec.servedAt(1); !closed.Before(next) {
		t.Fatalf("the second connection was served %v before the first one's close frame arrived (handshakes at %v, disconnects %v)",
			closed.Sub(next), srv.AttemptTimes(), w.all())
	}
	if n := w.count(); n != 1 {
		t.Fatalf("%d disconnects, want only the requested one: %v", n, w.all())
	}
}

// Reconnect against a peer that never answers the close frame still dials
// within about a second (the grace for the answer), not after
// coder/websocket's 5 + 5 s.
func TestReconnectDeafPeer(t *testing.T) {
	noLeaks(t)
	deaf := wstest.Step{NoPong: true, Serve: func(ctx context.Context, ws *websocket.Conn) { <-ctx.Done() }}
	srv, dial := netListen(t, deaf, wstest.Echo())
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithHeartbeat(0, 0))
	start := time.Now()
	c.Reconnect()
	netWaitUntil(t, 5*time.Second, "the second connection", func() bool { return srv.Accepted.Load() == 2 })
	if d := time.Since(start); d > reconnectGrace+netPromptly {
		t.Fatalf("redialled %v after Reconnect, want within the %v grace", d, reconnectGrace)
	}
	if d := w.next(t, time.Second).d; !isRequested(d) {
		t.Fatalf("disconnect %v", d)
	}
	netEcho(t, c, "after")
}

// Called from OnDisconnect, Reconnect cuts short the wait that the
// Disconnect announces (here a Retry-After of a minute).
func TestReconnectFromOnDisconnect(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, wstest.Drop(), wstest.Reject(503, "60"), wstest.Echo())
	var c atomic.Pointer[Conn]
	var announced atomic.Int64
	w := newNetWatcher()
	cn := mustDial(t, dial, w.option(), WithOnDisconnect(func(d Disconnect) {
		if d.HTTPStatus == 503 {
			announced.Store(int64(d.Delay))
			c.Load().Reconnect()
		}
	}))
	c.Store(cn)
	netWaitUntil(t, 5*time.Second, "the attempt after the 503", func() bool { return srv.Accepted.Load() == 2 })
	if d := time.Duration(announced.Load()); d < 60*time.Second {
		t.Fatalf("the 503 announced %v, want at least the Retry-After", d)
	}
	netEcho(t, cn, "after")
}

// Called from OnConnect, Reconnect drops the connection being set up (with
// a close frame) once OnConnect returns, and dials again at once.
func TestReconnectFromOnConnect(t *testing.T) {
	noLeaks(t)
	rec := &closeRecorder{}
	srv, dial := netListen(t, wstest.Echo(), wstest.Drop(), rec.step(), wstest.Echo())
	var c atomic.Pointer[Conn]
	var calls atomic.Int64
	w := newNetWatcher()
	cn := mustDial(t, dial, w.option(), WithInitialDelay(time.Millisecond), WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
		if calls.Add(1) == 3 { // the server says "go elsewhere", say
			c.Load().Reconnect()
		}
		return nil
	}))
	c.Store(cn)
	netEcho(t, cn, "first")
	// End the first connection: the second drops, the third is reconnected
	// from its OnConnect, the fourth stays.
	cn.Reconnect()
	netWaitUntil(t, 5*time.Second, "the fourth connection", func() bool { return srv.Accepted.Load() == 4 })
	netEcho(t, cn, "after")
	var requested int
	for _, d := range w.all() {
		if isRequested(d) {
			requested++
		}
	}
	if requested != 2 {
		t.Fatalf("disconnects %v: want two requested reconnects (one from OnConnect)", w.all())
	}
	if codes, _ := rec.closes(); len(codes) != 1 || codes[0] != websocket.StatusNormalClosure {
		t.Fatalf("the connection dropped from OnConnect closed with %v, want 1000", codes)
	}
}

// During a backoff wait, Reconnect dials at once.
func TestReconnectDuringBackoffWait(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, wstest.Drop(), wstest.Reject(503, "60"), wstest.Echo())
	w := newNetWatcher()
	c := mustDial(t, dial, w.option())
	w.next(t, 5*time.Second) // the drop
	if d := w.next(t, 5*time.Second).d; d.HTTPStatus != 503 || d.Delay < 60*time.Second {
		t.Fatalf("disconnect %v, want the 503 and a minute's wait", d)
	}
	c.Reconnect()
	netWaitUntil(t, netPromptly, "the attempt after Reconnect", func() bool { return srv.Attempts.Load() == 3 })
	netEcho(t, c, "after")
}

// While a handshake hangs, Reconnect starts no other dial: that dial is the
// new connection.
func TestReconnectDuringHangingHandshake(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, wstest.Drop(), wstest.Hang(), wstest.Echo())
	spy := newNetDialSpy(dial)
	c := mustDial(t, spy.Dial, WithInitialDelay(time.Millisecond), WithDialTimeout(time.Second))
	netWaitUntil(t, 5*time.Second, "the hanging handshake", func() bool { return srv.Attempts.Load() == 2 })
	for range 10 {
		c.Reconnect()
	}
	time.Sleep(300 * time.Millisecond)
	if n := srv.Attempts.Load(); n != 2 {
		t.Fatalf("%d attempts while the handshake hung, want 2", n)
	}
	// The hanging dial times out and the schedule redials.
	netWaitUntil(t, 10*time.Second, "the third attempt", func() bool { return srv.Attempts.Load() == 3 })
	netEcho(t, c, "after")
}

// 50 goroutines calling Reconnect at once make exactly one new dial. The
// new dial waits until every call has returned (a call after the new
// connection is up would rightly ask for another), and the fake clock
// shows that no other dial follows.
func TestReconnectConcurrentCallsDialOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		calls := make(chan struct{})
		var dials atomic.Int32
		pipe := srv.PipeDial()
		dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			if dials.Add(1) == 2 {
				select {
				case <-calls:
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				}
			}
			return pipe(ctx)
		}
		c := mustDial(t, dial, rec.option())
		var start, wg sync.WaitGroup
		start.Add(1)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				c.Reconnect()
			}()
		}
		start.Done()
		wg.Wait()
		close(calls)
		if err := c.Write(t.Context(), websocket.MessageText, []byte("after")); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if got := readString(t, c); got != "after" {
			t.Fatalf("read %q, want the echo", got)
		}
		synctest.Wait()
		if n, a := dials.Load(), srv.Attempts.Load(); n != 2 || a != 2 {
			t.Fatalf("%d dials, %d handshakes; want 2 (one new)", n, a)
		}
		if ds := rec.all(); len(ds) != 1 || !isRequested(ds[0]) {
			t.Fatalf("disconnects %v, want one requested reconnect", ds)
		}
	})
}

// A Reconnect made while a connection is being dropped cuts short the wait
// after that connection, and no other: a later drop still waits its
// scheduled delay.
func TestReconnectWhileEndingLeavesNoWakeForLaterDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drop := make(chan struct{})
		srv := wstest.NewServer(deaf(), wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			select {
			case <-drop:
			case <-ctx.Done():
			}
		}}, wstest.Echo())
		defer srv.Close()
		const delay = 10 * time.Second
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(0, 0), rec.option(),
			WithBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(delay) }))
		// The first Reconnect drops the connection; the peer is deaf, so
		// the close frame's grace keeps it ending for a second, during
		// which the second Reconnect is made.
		c.Reconnect()
		if s := c.State(); s != StateConnecting {
			t.Fatalf("state %v after Reconnect, want connecting", s)
		}
		c.Reconnect()
		time.Sleep(reconnectGrace) // the grace ends, and the next dial is at once
		synctest.Wait()
		if n := c.Stats().Connects; n != 2 {
			t.Fatalf("%d connects, want 2", n)
		}
		close(drop)
		synctest.Wait()
		dropped := time.Now()
		for srv.Attempts.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		if got := srv.AttemptTimes()[2].Sub(dropped); got != delay {
			t.Fatalf("the dial after the drop came %v after it, want the scheduled %v", got, delay)
		}
		if ds := rec.all(); len(ds) != 2 || !isRequested(ds[0]) || isRequested(ds[1]) {
			t.Fatalf("disconnects %v, want one requested reconnect, then the drop", ds)
		}
	})
}

// After Close, Reconnect does nothing, at once.
func TestReconnectAfterCloseIsNoop(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, wstest.Echo())
	c := mustDial(t, dial)
	c.CloseNow()
	netTimed(t, "Reconnect after CloseNow", c.Reconnect)
	time.Sleep(100 * time.Millisecond)
	if n := srv.Attempts.Load(); n != 1 || c.State() != StateClosed || !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("%d attempts, state %v, Err %v", n, c.State(), c.Err())
	}
}
