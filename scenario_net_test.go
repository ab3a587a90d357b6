//go:build !js

package wsreconnect

// Scenarios against a real loopback server: the client dials a scripted
// wstest.Server on 127.0.0.1 over real TCP sockets, so drops, resets,
// handshake statuses and dead peers are the kernel's, not a simulation.
// Delays here are real seconds: the schedules are kept short, timing bounds
// are generous for a loaded machine, and every wait for an event is a
// channel, a callback or a polled condition with a deadline. The only
// sleeps model a slow application or an observation window.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// netPromptly bounds calls that must not hang: Close, CloseNow, a final Dial.
// The calls themselves take milliseconds; the bound only separates "returns"
// from "hangs" on a loaded machine.
const netPromptly = 2 * time.Second

// netListen starts srv on a real loopback listener and registers its cleanup,
// which also cancels dials still in progress. Call it after noLeaks so that
// the cleanup runs before the leak check.
func netListen(t *testing.T, script ...wstest.Step) (*wstest.Server, DialFunc) {
	t.Helper()
	srv, _, dial := netListenURL(t, script...)
	return srv, dial
}

// netListenURL is netListen that also returns the server's ws:// URL.
func netListenURL(t *testing.T, script ...wstest.Step) (*wstest.Server, string, DialFunc) {
	t.Helper()
	srv := wstest.NewServer(script...)
	url, dial, cleanup := srv.Listen()
	t.Cleanup(cleanup)
	return srv, url, dial
}

// netWatcher records Disconnects like recorder and also hands them, stamped
// with the time they were reported, to a channel a test can wait on.
type netWatcher struct {
	recorder
	ch chan netStamped
}

type netStamped struct {
	d  Disconnect
	at time.Time
}

func newNetWatcher() *netWatcher { return &netWatcher{ch: make(chan netStamped, 256)} }

func (w *netWatcher) option() Option {
	return WithOnDisconnect(func(d Disconnect) {
		w.add(d)
		select {
		case w.ch <- netStamped{d, time.Now()}:
		default:
		}
	})
}

func (w *netWatcher) count() int { return len(w.all()) }

// next waits for the next Disconnect.
func (w *netWatcher) next(t *testing.T, within time.Duration) netStamped {
	t.Helper()
	select {
	case s := <-w.ch:
		return s
	case <-time.After(within):
		t.Fatalf("no Disconnect within %v (so far: %v)", within, w.all())
		panic("unreachable")
	}
}

// netRead reads one message, failing the test if none comes in time.
func netRead(t *testing.T, c *Conn, within time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	_, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return string(p)
}

// netEcho writes msg and expects it back.
func netEcho(t *testing.T, c *Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("Write %q: %v", msg, err)
	}
	if got := netRead(t, c, 10*time.Second); got != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

// netExpectNoMessage checks that nothing more is waiting to be read.
func netExpectNoMessage(t *testing.T, c *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, p, err := c.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unexpected Read: %q, %v", p, err)
	}
}

// netWaitUntil polls cond until it holds, failing the test after within. For
// conditions the server exposes only as counters.
func netWaitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// netTimed runs f and fails the test if it takes longer than netPromptly.
func netTimed(t *testing.T, what string, f func()) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(netPromptly):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s did not return within %v; goroutines:\n%s", what, netPromptly, buf)
	}
	d := time.Since(start)
	t.Logf("%s returned in %v", what, d)
	return d
}

// netSendRange accepts and writes the numbers from, from+1, … to-1, then
// returns at once: the server closes the TCP connection without a close
// frame.
func netSendRange(from, to int) wstest.Step {
	return wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
		for i := from; i < to; i++ {
			if ws.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(i))) != nil {
				return
			}
		}
	}}
}

// netDialSpy wraps a DialFunc and reports when each attempt starts and ends.
type netDialSpy struct {
	dial     DialFunc
	n        atomic.Int64
	started  chan int64
	returned chan netDialResult
}

type netDialResult struct {
	n   int64
	err error
}

func newNetDialSpy(dial DialFunc) *netDialSpy {
	return &netDialSpy{dial: dial, started: make(chan int64, 256), returned: make(chan netDialResult, 256)}
}

func (s *netDialSpy) Dial(ctx context.Context) (*websocket.Conn, *http.Response, error) {
	n := s.n.Add(1)
	s.started <- n
	ws, resp, err := s.dial(ctx)
	s.returned <- netDialResult{n, err}
	return ws, resp, err
}

// waitStarted waits for attempt n to start.
func (s *netDialSpy) waitStarted(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case got := <-s.started:
			if got == n {
				return
			}
		case <-timeout:
			t.Fatalf("dial attempt %d did not start within %v", n, within)
		}
	}
}

// TCP drop without a close frame: reported as 1006 and retried; the
// messages of all three connections arrive in order, none duplicated.
func TestNetTCPDropReconnects(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, netSendRange(0, 3), netSendRange(3, 6), wstest.Echo())
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithInitialDelay(100*time.Millisecond))

	for i := range 6 {
		if got := netRead(t, c, 10*time.Second); got != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, got)
		}
	}
	// A message written while the server is closing the second
	// connection may be lost with it (TCP accepts a write to a socket whose
	// peer has closed): write once the drop has been seen.
	w.next(t, 10*time.Second)
	w.next(t, 10*time.Second)
	netEcho(t, c, "after two drops")
	netExpectNoMessage(t, c)

	ds := w.all()
	if len(ds) != 2 {
		t.Fatalf("%d disconnects, want 2: %v", len(ds), ds)
	}
	for i, d := range ds {
		if d.Code != websocket.StatusAbnormalClosure || d.Decision != Retry || !d.Reconnect ||
			d.Attempt != i+1 || errors.Is(d.Err, ErrHeartbeatTimeout) {
			t.Errorf("disconnect %d: %v, want 1006, retry, attempt %d", i, d, i+1)
		}
		t.Logf("disconnect %d: %v", i, d)
	}
	if n := srv.Accepted.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// 1013 twice, then echo: the overload schedule waits at least 1 s, then
// at least 2 s, measured between the handshakes the server saw.
func TestNetTryAgainLaterBacksOff(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t,
		wstest.CloseWith(websocket.StatusTryAgainLater, "busy"),
		wstest.CloseWith(websocket.StatusTryAgainLater, "busy"),
		wstest.Echo())
	w := newNetWatcher()
	// A 4 s max delay keeps the test short: windows [1 s, 4 s), [2 s, 4 s).
	c := mustDial(t, dial, w.option(), WithInitialDelay(100*time.Millisecond), WithMaxDelay(4*time.Second))
	w.next(t, 10*time.Second)
	w.next(t, 10*time.Second)
	netEcho(t, c, "hi")

	ds := w.all()
	if len(ds) != 2 {
		t.Fatalf("%d disconnects, want 2: %v", len(ds), ds)
	}
	times := srv.AttemptTimes()
	if len(times) != 3 {
		t.Fatalf("%d attempts, want 3", len(times))
	}
	for i, d := range ds {
		floor := time.Second << i
		if d.Code != websocket.StatusTryAgainLater || d.Reason != "busy" || d.Decision != RetryOverload {
			t.Errorf("disconnect %d: %v", i, d)
		}
		if d.Delay < floor || d.Delay >= 4*time.Second {
			t.Errorf("disconnect %d: delay %v, want in [%v, 4s)", i, d.Delay, floor)
		}
		gap := times[i+1].Sub(times[i])
		t.Logf("gap before attempt %d: %v (announced delay %v)", i+2, gap, d.Delay)
		if gap < floor {
			t.Errorf("gap before attempt %d: %v < %v", i+2, gap, floor)
		}
	}
}

// 1008: Read reports the close code and the Conn makes no further attempt.
func TestNetPolicyViolationStops(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, wstest.Send(1, func(_ context.Context, ws *websocket.Conn) {
		ws.Close(websocket.StatusPolicyViolation, "go away")
	}), wstest.Echo())
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithInitialDelay(time.Millisecond))
	if got := netRead(t, c, 10*time.Second); got != "0" {
		t.Fatalf("first message %q", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("Read error %v: CloseStatus %d, want 1008", err, websocket.CloseStatus(err))
	}
	var se *StopError
	if !errors.As(err, &se) || se.Disconnect.Reason != "go away" || se.Disconnect.Reconnect {
		t.Fatalf("Read error %v is not a StopError with the reason", err)
	}
	// The supervisor ended on its own: no attempt can follow.
	select {
	case <-c.done:
	case <-time.After(netPromptly):
		t.Fatal("the supervisor did not end after the policy stopped")
	}
	if c.State() != StateClosed {
		t.Fatalf("state %v", c.State())
	}
	if n := srv.Attempts.Load(); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
	if ds := w.all(); len(ds) != 1 || ds[0].Code != websocket.StatusPolicyViolation || ds[0].Reconnect {
		t.Fatalf("disconnects %v", ds)
	}
}

// 401: Dial returns at once with a StopError; one attempt.
func TestNetUnauthorizedFailsDial(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, wstest.Reject(401, ""))
	var (
		c   *Conn
		err error
	)
	netTimed(t, "Dial against 401", func() { c, err = Dial(t.Context(), dial) })
	if err == nil {
		c.CloseNow()
		t.Fatal("Dial succeeded")
	}
	var se *StopError
	if !errors.As(err, &se) || se.Disconnect.HTTPStatus != 401 || se.Disconnect.Attempt != 1 || se.Disconnect.Reconnect {
		t.Fatalf("Dial error %v, want a StopError with status 401, attempt 1", err)
	}
	if n := srv.Attempts.Load(); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

// 503 with Retry-After: 2: the next handshake comes no sooner than 2 s later.
func TestNetServiceUnavailableHonoursRetryAfter(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, wstest.Reject(503, "2"), wstest.Echo())
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithInitialDelay(100*time.Millisecond))
	netEcho(t, c, "hi")
	ds := w.all()
	if len(ds) != 1 {
		t.Fatalf("%d disconnects, want 1: %v", len(ds), ds)
	}
	d := ds[0]
	// The delay is the larger of the hint (plus up to a tenth) and the
	// first overload window, [1 s, 4 s).
	if d.HTTPStatus != 503 || d.RetryAfter != 2*time.Second || d.Decision != RetryOverload ||
		d.Delay < 2*time.Second || d.Delay >= 4*time.Second {
		t.Fatalf("disconnect %+v, want 503, Retry-After 2 s, delay in [2 s, 4 s)", d)
	}
	times := srv.AttemptTimes()
	if len(times) != 2 {
		t.Fatalf("%d attempts, want 2", len(times))
	}
	gap := times[1].Sub(times[0])
	t.Logf("gap after 503 Retry-After 2: %v (announced delay %v)", gap, d.Delay)
	if gap < 2*time.Second {
		t.Fatalf("retried after %v despite Retry-After: 2", gap)
	}
}

// A server that accepts and drops at once, watched for 5 s: the attempt
// count rises 1, 2, 3, …, each delay lies in its window of the standard
// schedule and so never shrinks, and the number of handshakes is bounded
// by what those windows allow in the time that passed: no hot loop.
func TestNetFlappingServerBacksOff(t *testing.T) {
	noLeaks(t)
	const initial = 100 * time.Millisecond
	srv, dial := netListen(t, wstest.Drop())
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithInitialDelay(initial))
	time.Sleep(5 * time.Second) // the observation window
	netTimed(t, "CloseNow", func() { c.CloseNow() })
	closed := time.Now()

	ds := w.all()
	times := srv.AttemptTimes()
	for i, d := range ds {
		t.Logf("disconnect %d: %v", i, d)
	}
	// The window of the i-th delay (0-based): [0, initial], then
	// [initial·2^(i-1), initial·2^i] (the default 30 s cap is not reached).
	window := func(i int) (lo, hi time.Duration) {
		if i == 0 {
			return 0, initial
		}
		return initial << (i - 1), initial << i
	}
	for i, d := range ds {
		lo, hi := window(i)
		if d.Attempt != i+1 || d.Code != websocket.StatusAbnormalClosure || d.Decision != Retry {
			t.Errorf("disconnect %d: %v, want 1006, retry, attempt %d", i, d, i+1)
		}
		if d.Delay < lo || d.Delay > hi {
			t.Errorf("attempt %d: delay %v outside [%v, %v]", d.Attempt, d.Delay, lo, hi)
		}
		if i > 0 && d.Delay < ds[i-1].Delay {
			t.Errorf("attempt %d: delay %v shorter than the previous %v", d.Attempt, d.Delay, ds[i-1].Delay)
		}
	}
	// Every attempt but possibly the last (cut short by CloseNow) was
	// reported, and each followed the delay announced before it.
	if len(ds) != len(times) && len(ds) != len(times)-1 {
		t.Fatalf("%d disconnects for %d attempts", len(ds), len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < ds[i-1].Delay {
			t.Errorf("gap before attempt %d: %v < announced delay %v", i+1, gap, ds[i-1].Delay)
		}
	}
	// At most 1 + the number of delays whose window floors fit in the time
	// that passed; at least enough to show it flapped.
	elapsed := closed.Sub(times[0])
	maxAttempts, sum := 1, time.Duration(0)
	for i := 0; ; i++ {
		lo, _ := window(i)
		if sum+lo > elapsed {
			break
		}
		sum += lo
		maxAttempts++
	}
	t.Logf("%d handshakes in %v; the schedule allows at most %d", len(times), elapsed, maxAttempts)
	if len(times) > maxAttempts {
		t.Fatalf("%d handshakes in %v: more than the %d the schedule allows", len(times), elapsed, maxAttempts)
	}
	if len(times) < 4 {
		t.Fatalf("only %d handshakes in %v", len(times), elapsed)
	}
}

// Close during a backoff wait (a 503 asked for 100 s) returns at once and
// no callback fires afterwards.
func TestNetCloseDuringBackoffWait(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, wstest.Drop(), wstest.Reject(503, "100"))
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithInitialDelay(100*time.Millisecond))
	w.next(t, 10*time.Second) // the drop
	if d := w.next(t, 10*time.Second); d.d.HTTPStatus != 503 || d.d.Delay < 100*time.Second {
		t.Fatalf("second disconnect %v, want 503 with a 100 s wait", d.d)
	}
	netTimed(t, "Close during a 100 s backoff wait", func() {
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	before := w.count()
	if _, _, err := c.Read(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := c.Write(t.Context(), websocket.MessageText, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	select {
	case <-c.done:
	case <-time.After(netPromptly):
		t.Fatal("the supervisor still runs after Close")
	}
	if n := w.count(); n != before || n != 2 {
		t.Fatalf("%d disconnects reported, %d when Close returned, want 2", n, before)
	}
	if n := srv.Attempts.Load(); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
}

// CloseNow during a handshake that never completes returns at once and no
// callback fires afterwards.
func TestNetCloseNowDuringHangingHandshake(t *testing.T) {
	noLeaks(t)
	srv, dial := netListen(t, wstest.Drop(), wstest.Hang())
	spy := newNetDialSpy(dial)
	w := newNetWatcher()
	c := mustDial(t, spy.Dial, w.option(), WithInitialDelay(time.Millisecond), WithDialTimeout(time.Minute))
	w.next(t, 10*time.Second) // the drop
	spy.waitStarted(t, 2, 10*time.Second)
	netWaitUntil(t, 10*time.Second, "the server to receive the second handshake", func() bool {
		return srv.Attempts.Load() == 2
	})
	netTimed(t, "CloseNow during a hanging handshake", func() { c.CloseNow() })
	if _, _, err := c.Read(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after CloseNow: %v", err)
	}
	if n := w.count(); n != 1 {
		t.Fatalf("%d disconnects, want only the drop: %v", n, w.all())
	}
	if c.State() != StateClosed {
		t.Fatalf("state %v", c.State())
	}
}

// Write while reconnecting: a short ctx fails with DeadlineExceeded and
// sends nothing; a long ctx waits for the next connection and its message
// comes back.
func TestNetWriteWhileReconnecting(t *testing.T) {
	noLeaks(t)
	_, dial := netListen(t, wstest.Drop(), wstest.Reject(503, "1"), wstest.Echo())
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithInitialDelay(100*time.Millisecond))
	w.next(t, 10*time.Second) // the drop
	if d := w.next(t, 10*time.Second); d.d.HTTPStatus != 503 || d.d.Delay < time.Second {
		t.Fatalf("second disconnect %v, want 503 with at least 1 s to wait", d.d)
	}
	short, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := c.Write(short, websocket.MessageText, []byte("lost")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("short Write: %v, want DeadlineExceeded", err)
	}
	long, cancel2 := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel2()
	start := time.Now()
	if err := c.Write(long, websocket.MessageText, []byte("kept")); err != nil {
		t.Fatalf("long Write: %v", err)
	}
	t.Logf("long Write waited %v for the connection", time.Since(start))
	if got := netRead(t, c, 10*time.Second); got != "kept" {
		t.Fatalf("echo %q, want kept", got)
	}
	netExpectNoMessage(t, c)
}

// Heartbeat settings for the dead-peer scenarios: detection is due within
// interval + timeout of the peer going silent; netHBSlack absorbs the
// scheduling of a loaded machine under the race detector.
const (
	netHBInterval = 100 * time.Millisecond
	netHBTimeout  = 100 * time.Millisecond
	netHBSlack    = time.Second
)

// A peer that stops reading with its socket open never answers a ping
// (coder/websocket answers pings only while reading): the heartbeat finds
// it within interval + timeout, reports 1006 + ErrHeartbeatTimeout, and
// the Conn reconnects to the next step.
func TestNetHeartbeatFindsSilentPeer(t *testing.T) {
	noLeaks(t)
	silentSince := make(chan time.Time, 1)
	silent := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
		typ, p, err := ws.Read(ctx)
		if err != nil || ws.Write(ctx, typ, p) != nil {
			return
		}
		silentSince <- time.Now()
		<-ctx.Done() // socket open, never reads again
	}}
	srv, dial := netListen(t, silent, wstest.Echo())
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithHeartbeat(netHBInterval, netHBTimeout), WithInitialDelay(100*time.Millisecond))
	netEcho(t, c, "hello")
	since := <-silentSince

	got := w.next(t, 10*time.Second)
	took := got.at.Sub(since)
	t.Logf("silent peer found %v after it stopped reading (interval %v + timeout %v)", took, netHBInterval, netHBTimeout)
	d := got.d
	if d.Code != websocket.StatusAbnormalClosure || !errors.Is(d.Err, ErrHeartbeatTimeout) || d.Decision != Retry || !d.Reconnect {
		t.Fatalf("disconnect %v, want 1006 with ErrHeartbeatTimeout, retry", d)
	}
	if took > netHBInterval+netHBTimeout+netHBSlack {
		t.Errorf("found after %v, want within %v + %v slack", took, netHBInterval+netHBTimeout, netHBSlack)
	}
	netEcho(t, c, "again")
	if n := srv.Accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	if n := w.count(); n != 1 {
		t.Fatalf("%d disconnects, want 1: %v", n, w.all())
	}
}

// netFirewall drops loopback packets with iptables, for a true half-open
// connection.
type netFirewall struct {
	bin string
}

// netFirewallTag marks the rules this process adds: a prefix and the
// process id, so that rules left by a killed run can be told from those of
// a run still going on in another process (people share this machine).
const netFirewallTag = "wsreconnect-test-pid-"

var netFirewallTagRE = regexp.MustCompile(netFirewallTag + `(\d+)`)

func netFirewallComment() string { return netFirewallTag + strconv.Itoa(os.Getpid()) }

// netNeedFirewall finds a working iptables. Without one the test is skipped,
// or fails under CI=true, where .ci/run installs it.
func netNeedFirewall(t *testing.T) *netFirewall {
	t.Helper()
	var why []string
	for _, bin := range []string{"iptables", "iptables-legacy", "/usr/sbin/iptables", "/usr/sbin/iptables-legacy"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		out, err := exec.Command(path, "-w", "5", "-S", "INPUT").CombinedOutput()
		if err != nil {
			why = append(why, fmt.Sprintf("%s -S INPUT: %v: %s", path, err, strings.TrimSpace(string(out))))
			continue
		}
		fw := &netFirewall{bin: path}
		fw.removeStale(t, string(out))
		return fw
	}
	msg := "iptables unusable (needs root and iptables): " + strings.Join(why, "; ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

func (fw *netFirewall) run(args ...string) error {
	out, err := exec.Command(fw.bin, append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", fw.bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeStale deletes the rules (listed by iptables -S) that a run of
// this file in a process that no longer exists left in INPUT.
func (fw *netFirewall) removeStale(t *testing.T, rules string) {
	t.Helper()
	for _, line := range strings.Split(rules, "\n") {
		m := netFirewallTagRE.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(line, "-A INPUT ") {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue // its process is still running
		}
		args := strings.Fields(strings.Replace(line, "-A", "-D", 1))
		if err := fw.run(args...); err != nil {
			t.Logf("removing a stale rule: %v", err)
		} else {
			t.Logf("removed a stale rule: %s", line)
		}
	}
}

// dropPort drops every loopback packet to and from port, until the test
// ends; the cleanup deletes exactly the rules added and checks they are
// gone, even when the test fails.
func (fw *netFirewall) dropPort(t *testing.T, port string) {
	t.Helper()
	for _, dir := range []string{"--dport", "--sport"} {
		spec := []string{"INPUT", "-i", "lo", "-p", "tcp", dir, port, "-m", "comment", "--comment", netFirewallComment(), "-j", "DROP"}
		if err := fw.run(append([]string{"-I"}, spec...)...); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := fw.run(append([]string{"-D"}, spec...)...); err != nil {
				t.Errorf("removing the rule: %v", err)
			}
			if fw.run(append([]string{"-C"}, spec...)...) == nil {
				t.Errorf("the rule %v is still there", spec)
			}
		})
	}
}

// A true half-open connection: after the client connects, iptables drops
// every packet to and from the server's port, so both sockets stay open and
// look alive while nothing passes. The heartbeat finds it within
// interval + timeout; the redial that follows hangs (its SYNs are dropped)
// and CloseNow during it returns at once.
func TestNetHeartbeatFindsHalfOpenConnection(t *testing.T) {
	noLeaks(t)
	fw := netNeedFirewall(t)
	_, url, dial := netListenURL(t, wstest.Echo())
	spy := newNetDialSpy(dial)
	w := newNetWatcher()
	c := mustDial(t, spy.Dial, w.option(), WithHeartbeat(netHBInterval, netHBTimeout), WithInitialDelay(100*time.Millisecond))
	netEcho(t, c, "hello")

	u, err := neturl.Parse(url)
	if err != nil || u.Port() == "" {
		t.Fatalf("no port in %q: %v", url, err)
	}
	port := u.Port()
	start := time.Now()
	fw.dropPort(t, port)
	dark := time.Now()
	t.Logf("iptables took %v to drop port %s", dark.Sub(start), port)

	got := w.next(t, 10*time.Second)
	took := got.at.Sub(dark)
	t.Logf("half-open connection found %v after the rules were in (%v after the first was added; interval %v + timeout %v)",
		took, got.at.Sub(start), netHBInterval, netHBTimeout)
	d := got.d
	if d.Code != websocket.StatusAbnormalClosure || !errors.Is(d.Err, ErrHeartbeatTimeout) || d.Decision != Retry || !d.Reconnect {
		t.Fatalf("disconnect %v, want 1006 with ErrHeartbeatTimeout, retry", d)
	}
	if took > netHBInterval+netHBTimeout+netHBSlack {
		t.Errorf("found after %v, want within %v + %v slack", took, netHBInterval+netHBTimeout, netHBSlack)
	}

	// The redial hangs: its SYNs are dropped.
	spy.waitStarted(t, 2, 10*time.Second)
	if r := <-spy.returned; r.n != 1 || r.err != nil {
		t.Fatalf("dial %d returned %v, want the first dial's success", r.n, r.err)
	}
	select {
	case r := <-spy.returned:
		t.Fatalf("dial %d returned %v while every packet is dropped", r.n, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	// CloseNow does not wait for the DialFunc (the application's code),
	// but cancels its ctx: the dial returns at once, and the Conn ends.
	netTimed(t, "CloseNow during the hanging redial", func() { c.CloseNow() })
	netTimed(t, "the Conn's end after CloseNow", func() { <-c.Done() })
	select {
	case r := <-spy.returned:
		if r.n != 2 || r.err == nil {
			t.Fatalf("dial %d returned %v, want dial 2 to fail", r.n, r.err)
		}
		t.Logf("the hanging dial returned: %v", r.err)
	default:
		t.Fatal("the Conn ended while the dial was still running")
	}
	if n := w.count(); n != 1 {
		t.Fatalf("%d disconnects, want 1: %v", n, w.all())
	}
}

// A slow application is not a dead peer: the server streams numbers while
// the application sleeps 5 × (interval + timeout) between Reads. No
// Disconnect; the numbers are consecutive; it is still the first
// connection.
func TestNetHeartbeatSlowReader(t *testing.T) {
	noLeaks(t)
	stream := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if ws.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(i))) != nil {
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}}
	srv, dial := netListen(t, stream)
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithHeartbeat(netHBInterval, netHBTimeout))

	next := 0
	expect := func() {
		t.Helper()
		got := netRead(t, c, 10*time.Second)
		if got != strconv.Itoa(next) {
			t.Fatalf("read %q, want %d", got, next)
		}
		next++
	}
	expect()
	for range 4 {
		time.Sleep(5 * (netHBInterval + netHBTimeout)) // the slow application
		expect()
	}
	for range 100 {
		expect()
	}
	if ds := w.all(); len(ds) != 0 {
		t.Fatalf("disconnects %v", ds)
	}
	if n := srv.Accepted.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	if s := c.State(); s != StateConnected {
		t.Fatalf("state %v", s)
	}
}

// An idle connection with the heartbeat on stays one connection over many
// heartbeat periods, kept alive by answered pings.
func TestNetHeartbeatIdleConnectionStays(t *testing.T) {
	noLeaks(t)
	const periods = 20
	srv, dial := netListen(t, wstest.Echo())
	w := newNetWatcher()
	// A timeout a pong meets on a loaded machine under the race detector.
	c := mustDial(t, dial, w.option(), WithHeartbeat(netHBInterval, time.Second))
	start := time.Now()
	netWaitUntil(t, 10*time.Second, fmt.Sprintf("%d pings", periods), func() bool {
		return srv.Pings.Load() >= periods
	})
	t.Logf("%d pings in %v", srv.Pings.Load(), time.Since(start))
	if ds := w.all(); len(ds) != 0 {
		t.Fatalf("disconnects %v", ds)
	}
	netEcho(t, c, "still here")
	if n := srv.Accepted.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// Close never waits for the application's own code: called while a
// callback runs, CloseNow returns at once, with Done closed, and no other
// callback starts; the callback returns on its own. So a callback that
// waits for a helper goroutine which calls Close cannot deadlock.
func TestNetCloseDoesNotWaitForRunningCallback(t *testing.T) {
	t.Run("OnDisconnect, from a helper goroutine it waits for", func(t *testing.T) {
		noLeaks(t)
		_, dial := netListen(t, wstest.Drop(), wstest.Echo())
		var calls atomic.Int64
		conn := make(chan *Conn, 1) // the Conn, once Dial has returned it
		returned := make(chan struct{})
		c := mustDial(t, dial, WithOnDisconnect(func(Disconnect) {
			if calls.Add(1) > 1 {
				return
			}
			defer close(returned)
			c := <-conn
			closed := make(chan struct{})
			go func() {
				defer close(closed)
				c.CloseNow()
			}()
			select {
			case <-closed:
			case <-time.After(netPromptly):
				t.Error("CloseNow from a goroutine the callback waits for did not return")
				<-closed
			}
		}))
		conn <- c
		<-returned
		netTimed(t, "the Conn's end after the callback returned", func() { <-c.Done() })
		if n := calls.Load(); n != 1 {
			t.Fatalf("OnDisconnect called %d times, want once", n)
		}
		if err := c.Err(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Err: %v", err)
		}
	})
	t.Run("OnConnect, from another goroutine", func(t *testing.T) {
		noLeaks(t)
		_, dial := netListen(t, wstest.Drop(), wstest.Echo())
		entered, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int64
		c := mustDial(t, dial, WithInitialDelay(time.Millisecond), WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
			if calls.Add(1) == 1 {
				return nil
			}
			close(entered)
			<-ctx.Done() // Close ends the ctx
			<-release    // the application's slow teardown
			return ctx.Err()
		}))
		<-entered
		defer close(release)
		netTimed(t, "CloseNow during OnConnect", func() { c.CloseNow() })
		if c.State() != StateClosed || !errors.Is(c.Err(), ErrClosed) {
			t.Fatalf("after CloseNow: state %v, Err %v", c.State(), c.Err())
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("CloseNow returned before Done was closed")
		}
		if n := calls.Load(); n != 2 {
			t.Fatalf("OnConnect called %d times, want 2", n)
		}
	})
}
