//go:build !js

package wsreconnect

// Scenarios on a fake clock: the client and a scripted server talk over
// net.Pipe inside a testing/synctest bubble, so schedules of seconds and
// minutes run in no real time and delays are exact.

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// recorder collects the Disconnects a Conn reports.
type recorder struct {
	mu sync.Mutex
	ds []Disconnect
}

func (r *recorder) add(d Disconnect) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ds = append(r.ds, d)
}

func (r *recorder) all() []Disconnect {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Disconnect(nil), r.ds...)
}

func (r *recorder) option() Option { return WithOnDisconnect(r.add) }

func mustDial(t *testing.T, dial DialFunc, opts ...Option) *Conn {
	t.Helper()
	c, err := Dial(t.Context(), dial, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func readString(t *testing.T, c *Conn) string {
	t.Helper()
	// A fake hour: a read that hangs fails the test instead of running the
	// fake clock forever.
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	_, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return string(p)
}

func TestReadAcrossReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drop := func(context.Context, *websocket.Conn) {}
		srv := wstest.NewServer(wstest.Send(3, drop), wstest.Send(3, drop), wstest.Send(3, nil))
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option())
		var got []string
		for range 9 {
			got = append(got, readString(t, c))
		}
		want := []string{"0", "1", "2", "0", "1", "2", "0", "1", "2"}
		if strconv.Quote(joined(got)) != strconv.Quote(joined(want)) {
			t.Fatalf("messages %v, want %v", got, want)
		}
		ds := rec.all()
		if len(ds) != 2 {
			t.Fatalf("%d disconnects, want 2: %v", len(ds), ds)
		}
		for _, d := range ds {
			if d.Code != websocket.StatusAbnormalClosure || d.Decision != Retry || !d.Reconnect {
				t.Errorf("disconnect %v: want 1006, retry", d)
			}
		}
	})
}

func joined(ss []string) string {
	out := ""
	for _, s := range ss {
		out += s + ","
	}
	return out
}

// A server that accepts and drops at once must see growing delays and
// rising attempt counts: a bare connect never resets the backoff.
func TestFlappingServerBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop())
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option())
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		c.CloseNow()

		ds := rec.all()
		if len(ds) < 6 {
			t.Fatalf("only %d disconnects in 2 minutes", len(ds))
		}
		// Windows of the standard schedule: [0,1s], [1,2], [2,4], [4,8],
		// [8,16], [15,30], then [15,30] at the 30 s cap.
		for i, d := range ds {
			if d.Attempt != i+1 {
				t.Errorf("disconnect %d: attempt %d", i, d.Attempt)
			}
			lo, hi := time.Duration(0), time.Second
			if i > 0 {
				hi = min(time.Second<<i, 30*time.Second)
				lo = hi / 2
			}
			if d.Delay < lo || d.Delay > hi {
				t.Errorf("attempt %d: delay %v outside [%v, %v]", d.Attempt, d.Delay, lo, hi)
			}
		}
		// The server saw one attempt per delay, no more: no hot loop.
		times := srv.AttemptTimes()
		if len(times) != len(ds)+1 && len(times) != len(ds) {
			t.Fatalf("%d attempts for %d disconnects", len(times), len(ds))
		}
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap != ds[i-1].Delay {
				t.Errorf("gap before attempt %d: %v, announced delay %v", i+1, gap, ds[i-1].Delay)
			}
		}
	})
}

// A connection that stays up for the stable-uptime period resets the
// attempt count; a shorter one does not.
func TestStableUptimeResetsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hold := func(d time.Duration) wstest.Step {
			return wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
				ws.CloseRead(ctx)
				time.Sleep(d)
			}}
		}
		srv := wstest.NewServer(wstest.Drop(), wstest.Drop(), hold(5*time.Second), hold(11*time.Second), wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		mustDial(t, srv.PipeDial(), rec.option(), WithStableUptime(10*time.Second))
		time.Sleep(time.Minute)
		ds := rec.all()
		if len(ds) != 4 {
			t.Fatalf("%d disconnects, want 4: %v", len(ds), ds)
		}
		want := []int{1, 2, 3, 1}
		for i, d := range ds {
			if d.Attempt != want[i] {
				t.Errorf("disconnect %d (uptime %v): attempt %d, want %d", i, d.Uptime, d.Attempt, want[i])
			}
		}
	})
}

func TestTryAgainLaterUsesOverloadSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(
			wstest.CloseWith(websocket.StatusTryAgainLater, "busy"),
			wstest.CloseWith(websocket.StatusTryAgainLater, "busy"),
			wstest.CloseWith(websocket.StatusTryAgainLater, "busy"),
			wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithInitialDelay(10*time.Millisecond))
		time.Sleep(30 * time.Second) // three overloads: at most 4+8+16 s
		if err := c.Write(t.Context(), websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, c); got != "hi" {
			t.Fatalf("echo %q", got)
		}
		ds := rec.all()
		if len(ds) != 3 {
			t.Fatalf("%d disconnects, want 3", len(ds))
		}
		times := srv.AttemptTimes()
		for i, d := range ds {
			floor := time.Second << i
			if d.Code != websocket.StatusTryAgainLater || d.Reason != "busy" || d.Decision != RetryOverload {
				t.Errorf("disconnect %d: %v", i, d)
			}
			if d.Delay < floor || d.Delay >= 4*floor {
				t.Errorf("disconnect %d: delay %v, want in [%v, %v)", i, d.Delay, floor, 4*floor)
			}
			if gap := times[i+1].Sub(times[i]); gap < floor {
				t.Errorf("gap %d: %v < %v", i, gap, floor)
			}
		}
	})
}

func TestPolicyViolationStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Send(1, func(_ context.Context, ws *websocket.Conn) {
			ws.Close(websocket.StatusPolicyViolation, "go away")
		}))
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option())
		if got := readString(t, c); got != "0" {
			t.Fatalf("first message %q", got)
		}
		_, _, err := c.Read(t.Context())
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("Read error %v: CloseStatus %d, want 1008", err, websocket.CloseStatus(err))
		}
		var se *StopError
		if !errors.As(err, &se) || se.Disconnect.Reason != "go away" {
			t.Fatalf("Read error %v is not a StopError with the reason", err)
		}
		werr := c.Write(t.Context(), websocket.MessageText, []byte("x"))
		if websocket.CloseStatus(werr) != websocket.StatusPolicyViolation {
			t.Fatalf("Write error %v, want CloseStatus 1008", werr)
		}
		if c.State() != StateClosed {
			t.Fatalf("state %v", c.State())
		}
		time.Sleep(time.Minute)
		if n := srv.Attempts.Load(); n != 1 {
			t.Fatalf("%d attempts, want 1", n)
		}
		if ds := rec.all(); len(ds) != 1 || ds[0].Reconnect {
			t.Fatalf("disconnects %v", ds)
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatalf("Close after stop: %v", err)
		}
	})
}

// An empty close frame (1005: what Node's ws.close() without a code sends,
// common in server shutdown code) says only that no code was present: it
// is retried, not taken for an end on purpose; 1000 still stops.
func TestEmptyCloseFrameIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.CloseWith(websocket.StatusNoStatusRcvd, ""), wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option())
		time.Sleep(time.Second) // the close, then the first retry's delay
		synctest.Wait()
		if err := c.Write(t.Context(), websocket.MessageText, []byte("back")); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, c); got != "back" {
			t.Fatalf("echo %q", got)
		}
		ds := rec.all()
		if len(ds) != 1 || ds[0].Code != websocket.StatusNoStatusRcvd || ds[0].Decision != Retry || !ds[0].Reconnect {
			t.Fatalf("disconnects %v, want one 1005, retried", ds)
		}
	})
}

func TestUnauthorizedFailsDialAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Reject(401, ""))
		defer srv.Close()
		start := time.Now()
		c, err := Dial(t.Context(), srv.PipeDial())
		if err == nil {
			c.CloseNow()
			t.Fatal("Dial succeeded")
		}
		var se *StopError
		if !errors.As(err, &se) || se.Disconnect.HTTPStatus != 401 || se.Disconnect.Attempt != 1 {
			t.Fatalf("Dial error %v, want a StopError with status 401", err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("Dial took %v", d)
		}
		if n := srv.Attempts.Load(); n != 1 {
			t.Fatalf("%d attempts", n)
		}
	})
}

func TestServiceUnavailableHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Reject(503, "7"), wstest.Reject(503, "garbage"), wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		start := time.Now()
		mustDial(t, srv.PipeDial(), rec.option())
		ds := rec.all()
		if len(ds) != 2 {
			t.Fatalf("%d disconnects", len(ds))
		}
		if ds[0].HTTPStatus != 503 || ds[0].RetryAfter != 7*time.Second || ds[0].Decision != RetryOverload {
			t.Fatalf("first: %+v", ds[0])
		}
		if ds[0].Delay < 7*time.Second || ds[0].Delay > 7*time.Second+700*time.Millisecond {
			t.Fatalf("delay %v, want 7 s plus at most a tenth", ds[0].Delay)
		}
		if ds[1].RetryAfter != 0 || ds[1].Delay < 2*time.Second {
			t.Fatalf("second (garbage Retry-After): %+v", ds[1])
		}
		times := srv.AttemptTimes()
		if gap := times[1].Sub(times[0]); gap < 7*time.Second {
			t.Fatalf("retried after %v despite Retry-After: 7", gap)
		}
		if el := time.Since(start); el != ds[0].Delay+ds[1].Delay {
			t.Fatalf("Dial took %v, want %v", el, ds[0].Delay+ds[1].Delay)
		}
	})
}

func TestAbsurdRetryAfterIsClamped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Reject(429, "1000000000000"), wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		mustDial(t, srv.PipeDial(), rec.option(), WithMaxRetryAfter(time.Minute))
		if ds := rec.all(); len(ds) != 1 || ds[0].RetryAfter != time.Minute || ds[0].Delay != time.Minute {
			t.Fatalf("disconnects %+v", ds)
		}
	})
}

func TestCloseDuringBackoffWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Reject(503, "100"))
		defer srv.Close()
		calls := 0
		var mu sync.Mutex
		c := mustDial(t, srv.PipeDial(), WithOnDisconnect(func(Disconnect) { mu.Lock(); calls++; mu.Unlock() }))
		time.Sleep(5 * time.Second) // now waiting out Retry-After: 100
		synctest.Wait()
		if c.State() != StateConnecting {
			t.Fatalf("state %v", c.State())
		}
		start := time.Now()
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("Close took %v", d)
		}
		mu.Lock()
		before := calls
		mu.Unlock()
		time.Sleep(10 * time.Minute)
		mu.Lock()
		defer mu.Unlock()
		if calls != before {
			t.Fatalf("callback fired after Close")
		}
		if n := srv.Attempts.Load(); n != 2 {
			t.Fatalf("%d attempts", n)
		}
	})
}

func TestCloseDuringHangingHandshake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Hang())
		defer srv.Close()
		c := mustDial(t, srv.PipeDial(), WithInitialDelay(time.Millisecond), WithDialTimeout(time.Hour))
		time.Sleep(time.Second)
		synctest.Wait()
		if srv.Attempts.Load() != 2 {
			t.Fatalf("attempts %d", srv.Attempts.Load())
		}
		start := time.Now()
		c.CloseNow()
		if d := time.Since(start); d != 0 {
			t.Fatalf("CloseNow took %v", d)
		}
		if _, _, err := c.Read(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	})
}

func TestDialTimeoutPerAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Hang(), wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		start := time.Now()
		mustDial(t, srv.PipeDial(), rec.option(), WithDialTimeout(3*time.Second))
		ds := rec.all()
		if len(ds) != 1 || ds[0].Code != 0 || !errors.Is(ds[0].Err, context.DeadlineExceeded) || ds[0].Decision != Retry {
			t.Fatalf("disconnects %+v", ds)
		}
		if el := time.Since(start); el != 3*time.Second+ds[0].Delay {
			t.Fatalf("connected after %v", el)
		}
	})
}

func TestDialContextBoundsFirstConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Reject(502, ""))
		defer srv.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		c, err := Dial(ctx, srv.PipeDial())
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			c.CloseNow()
			t.Fatalf("Dial: %v", err)
		}
		n := srv.Attempts.Load()
		time.Sleep(time.Minute)
		if srv.Attempts.Load() != n {
			t.Fatal("attempts went on after Dial gave up")
		}
	})
}

func TestWriteWhileReconnecting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Reject(503, "5"), wstest.Echo())
		defer srv.Close()
		c := mustDial(t, srv.PipeDial())
		synctest.Wait() // the drop is seen; the 503 follows after at most 1 s
		time.Sleep(time.Second)
		synctest.Wait()
		if c.State() != StateConnecting {
			t.Fatalf("state %v", c.State())
		}
		short, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err := c.Write(short, websocket.MessageText, []byte("lost"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("short Write: %v", err)
		}
		long, cancel2 := context.WithTimeout(t.Context(), time.Minute)
		defer cancel2()
		if err := c.Write(long, websocket.MessageText, []byte("kept")); err != nil {
			t.Fatalf("long Write: %v", err)
		}
		if got := readString(t, c); got != "kept" {
			t.Fatalf("echo %q", got)
		}
	})
}

// A Read context that ends costs only that call.
func TestReadContextDoesNotCostConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		c := mustDial(t, srv.PipeDial())
		for range 3 {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			_, _, err := c.Read(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Read: %v", err)
			}
		}
		if err := c.Write(t.Context(), websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		typ, p, err := c.Read(t.Context())
		if err != nil || typ != websocket.MessageBinary || string(p) != "\x01\x02\x03" {
			t.Fatalf("echo %v %q %v", typ, p, err)
		}
		if n := srv.Accepted.Load(); n != 1 {
			t.Fatalf("%d connections, want 1", n)
		}
	})
}

func TestOnConnectRunsBeforeReadWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The server drops the first session after "hello", then echoes.
		first := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			ws.Read(ctx)
		}}
		srv := wstest.NewServer(first, wstest.Echo())
		defer srv.Close()
		var connects int
		c := mustDial(t, srv.PipeDial(), WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
			connects++
			return ws.Write(ctx, websocket.MessageText, []byte("hello "+strconv.Itoa(connects)))
		}))
		// The first connection ends after hello 1; the second echoes
		// hello 2, which must come before anything the application wrote.
		if err := c.Write(t.Context(), websocket.MessageText, []byte("app")); err != nil {
			// The write may race with the first connection's end.
			if err := c.Write(t.Context(), websocket.MessageText, []byte("app")); err != nil {
				t.Fatal(err)
			}
		}
		if got := readString(t, c); got != "hello 2" {
			t.Fatalf("first echo %q, want hello 2", got)
		}
	})
}

func TestOnConnectErrorIsFailedAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		n := 0
		mustDial(t, srv.PipeDial(), rec.option(), WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
			n++
			if n < 3 {
				return errors.New("auth backend down")
			}
			return nil
		}))
		ds := rec.all()
		if len(ds) != 2 || ds[1].Attempt != 2 || ds[0].Decision != Retry || ds[0].Code != 0 {
			t.Fatalf("disconnects %+v", ds)
		}
		// An OnConnect error carrying a close code is classified by it.
		c, err := Dial(t.Context(), srv.PipeDial(), WithOnConnect(func(context.Context, *websocket.Conn) error {
			return websocket.CloseError{Code: websocket.StatusPolicyViolation, Reason: "bad token"}
		}))
		if err == nil {
			c.CloseNow()
			t.Fatal("Dial succeeded")
		}
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("Dial: %v", err)
		}
	})
}

func TestCloseFromOnDisconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop())
		defer srv.Close()
		var c *Conn
		ready := make(chan struct{})
		c = mustDial(t, srv.PipeDial(), WithOnDisconnect(func(Disconnect) {
			<-ready
			if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
				t.Errorf("Close: %v", err)
			}
		}))
		close(ready)
		synctest.Wait()
		if c.State() != StateClosed {
			t.Fatalf("state %v", c.State())
		}
		if n := srv.Attempts.Load(); n != 1 {
			t.Fatalf("%d attempts", n)
		}
	})
}

func TestCloseSendsCloseFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan error, 1)
		srv := wstest.NewServer(wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			_, _, err := ws.Read(ctx)
			got <- err
		}})
		defer srv.Close()
		c := mustDial(t, srv.PipeDial())
		blocked := make(chan error, 1)
		go func() {
			_, _, err := c.Read(context.Background())
			blocked <- err
		}()
		if err := c.Close(websocket.StatusGoingAway, "bye"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-got; websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("server saw %v", err)
		}
		if err := <-blocked; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Read: %v", err)
		}
		if err := c.Write(t.Context(), websocket.MessageText, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Write after Close: %v", err)
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func TestCloseRejectsUnsendableCodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		c := mustDial(t, srv.PipeDial())
		if err := c.Close(websocket.StatusAbnormalClosure, ""); err == nil {
			t.Fatal("Close(1006) returned nil")
		}
		if c.State() != StateClosed {
			t.Fatalf("state %v after Close(1006)", c.State())
		}
	})
}
