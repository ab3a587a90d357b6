package wsreconnect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"
)

// NewBackOff returns the standard schedule as a backoff/v4 BackOff:
// exponential with jitter, each delay drawn uniformly from a window that
// doubles: [0, initial) for the first retry, then [initial, 2·initial),
// [2·initial, 4·initial), … The first window spreads clients dropped
// together uniformly (RFC 6455 §7.2.3); the later windows never overlap, so
// the delays of a flapping server only grow until they reach max. From the
// window that reaches max on, it is [max/2, max): max bounds the delay
// actually slept, jitter included,
// and attempts are unlimited (no MaxElapsedTime). It panics if initial or
// max is not positive; it is not safe for concurrent use.
func NewBackOff(initial, max time.Duration) backoff.BackOff {
	if initial <= 0 || max <= 0 {
		panic("wsreconnect: NewBackOff: delays must be positive")
	}
	return &windowBackOff{base: initial, max: max, fromZero: true}
}

// NewOverloadBackOff returns the overload schedule (1013, 429, 503) as a
// backoff/v4 BackOff: the n-th delay is drawn uniformly from
// [min·2^(n-1), min·2^(n+1)), so the floor doubles on each consecutive
// overload (1 s, 2 s, 4 s, … for min = 1 s) while each window overlaps the
// next. The overlap keeps a server that is refusing clients busy: with
// disjoint windows it would idle between waves of retries (see
// BENCHMARKS.md, reconnect storm). Once the windows reach max they are
// [max/2, max). max is raised to 2·min if lower, so no delay is below min.
// A Conn uses min = max(1 s, initial delay). It panics if min or max is not
// positive; it is not safe for concurrent use.
func NewOverloadBackOff(min, max time.Duration) backoff.BackOff {
	if min <= 0 || max <= 0 {
		panic("wsreconnect: NewOverloadBackOff: delays must be positive")
	}
	if max/2 < min {
		max = 2 * min
	}
	return &windowBackOff{base: min, max: max}
}

// windowBackOff draws the n-th delay uniformly from a window that doubles.
// Standard (fromZero): [base·2^(n-2), base·2^(n-1)), the first [0, base).
// Overload: [base·2^(n-1), base·2^(n+1)). Windows are capped at
// [max/2, max).
type windowBackOff struct {
	base, max time.Duration
	fromZero  bool
	n         int
}

func (b *windowBackOff) Reset() { b.n = 0 }

// scaled returns base·2^k, or max if that is larger.
func (b *windowBackOff) scaled(k int) time.Duration {
	if k < 62 && b.base <= b.max>>k {
		return b.base << k
	}
	return b.max
}

func (b *windowBackOff) NextBackOff() time.Duration {
	b.n++
	var lo, hi time.Duration
	if b.fromZero {
		hi = b.scaled(b.n - 1)
		lo = hi / 2
		if b.n == 1 {
			lo = 0
		}
	} else {
		lo = min(b.scaled(b.n-1), b.max/2)
		hi = b.scaled(b.n + 1)
	}
	return lo + rand.N(max(hi-lo, 1))
}

// schedules holds a Conn's two schedules. It is owned by the supervisor.
type schedules struct {
	std           backoff.BackOff
	overload      windowBackOff
	maxDelay      time.Duration
	maxRetryAfter time.Duration
}

func newSchedules(cfg *config) *schedules {
	s := &schedules{
		maxDelay:      cfg.maxDelay,
		maxRetryAfter: cfg.maxRetryAfter,
		// The overload floor holds even under a small max delay:
		// NewOverloadBackOff raises its cap to twice the floor.
		overload: *NewOverloadBackOff(max(minOverloadDelay, cfg.initialDelay), cfg.maxDelay).(*windowBackOff),
	}
	if cfg.newBackOff != nil {
		s.std = cfg.newBackOff()
	}
	if s.std == nil {
		s.std = NewBackOff(cfg.initialDelay, cfg.maxDelay)
	}
	return s
}

func (s *schedules) reset() {
	s.std.Reset()
	s.overload.Reset()
}

// next returns the delay before the next attempt, or false to stop.
func (s *schedules) next(dec Decision, retryAfter time.Duration) (time.Duration, bool) {
	var delay time.Duration
	switch dec {
	case Retry:
		delay = s.std.NextBackOff()
		if delay == backoff.Stop {
			return 0, false
		}
		delay = min(max(delay, 0), s.maxDelay)
	case RetryOverload:
		delay = s.overload.NextBackOff()
	default:
		return 0, false
	}
	if retryAfter > 0 && delay < retryAfter {
		// Never sooner than the server asked, but spread by up to a tenth
		// so that clients refused together do not return together.
		delay = min(retryAfter+rand.N(retryAfter/10+1), s.maxRetryAfter)
		delay = max(delay, retryAfter)
	}
	return delay, true
}

// run is the supervisor: the one goroutine per Conn that dials, runs each
// connection until it ends, classifies the end and waits before the next
// attempt. It owns every connection and the goroutines serving it.
func (c *Conn) run() {
	defer close(c.done)
	c.supervisor.Store(goid())
	sched := newSchedules(&c.cfg)
	for {
		d := c.connectOnce()
		if c.isClosing() {
			c.finish(nil)
			return
		}
		if d.Uptime >= c.cfg.stableUptime {
			sched.reset()
		}
		d.Attempt = c.countAttempt(d.Uptime >= c.cfg.stableUptime)
		d.Decision = c.cfg.policy(d)
		d.Delay, d.Reconnect = sched.next(d.Decision, d.RetryAfter)
		if !d.Reconnect {
			d.Decision, d.Delay = Stop, 0
		}
		c.recordDisconnect(d)
		c.logDisconnect(d)
		if c.cfg.onDisconnect != nil && !c.isClosing() {
			c.cfg.onDisconnect(d)
		}
		if !d.Reconnect {
			c.finish(&StopError{Disconnect: d})
			return
		}
		if !c.sleep(d.Delay) {
			c.finish(nil)
			return
		}
	}
}

// countAttempt returns the Attempt of the Disconnect being reported:
// 1 after a stable connection, else one more than the last.
func (c *Conn) countAttempt(stable bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if stable {
		c.attempt = 0
	}
	c.attempt++
	return c.attempt
}

// sleep waits d, or until Close; it reports whether to go on.
func (c *Conn) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return !c.isClosing()
	case <-c.closing:
		return false
	}
}

// connectOnce dials, runs OnConnect, then serves the connection until it
// ends. It returns what ended the attempt or the connection.
func (c *Conn) connectOnce() Disconnect {
	ws, err := c.dialAttempt()
	if err != nil {
		return *err
	}
	s := newSession(c, ws)
	if err := c.publish(s); err != nil {
		_ = ws.CloseNow()
		if errors.Is(err, errClosing) {
			return Disconnect{Err: ErrClosed}
		}
		return connEnd(err)
	}
	c.logger().LogAttrs(context.Background(), slog.LevelInfo, "wsreconnect: connected")

	s.hb.start()
	s.pump() // until the connection ends or Close
	s.retire()
	if c.isClosing() {
		// Close is ending the session on its own goroutine, perhaps with
		// a close handshake: leave the connection to it.
		s.waitRetired()
		return Disconnect{Err: ErrClosed}
	}
	_ = ws.CloseNow()
	s.waitRetired()
	c.unpublish(s)
	d := connEnd(s.endErr())
	d.Uptime = max(s.uptime(), time.Nanosecond)
	return d
}

// dialAttempt dials once and runs OnConnect; on failure it returns the
// Disconnect describing it.
func (c *Conn) dialAttempt() (*websocket.Conn, *Disconnect) {
	ctx, cancel := c.attemptContext()
	ws, resp, err := c.dialOnOwnStack(ctx)
	cancel()
	if err == nil && ws == nil {
		err = errors.New("wsreconnect: DialFunc returned neither a connection nor an error")
	}
	if err != nil {
		if ws != nil {
			_ = ws.CloseNow()
		}
		err = redact(err)
		if errors.Is(err, context.DeadlineExceeded) && !c.isClosing() {
			err = fmt.Errorf("wsreconnect: dial timed out after %v: %w", c.cfg.dialTimeout, err)
		}
		d := dialEnd(err, resp, time.Now(), c.cfg.maxRetryAfter)
		return nil, &d
	}
	if c.cfg.onConnect == nil {
		return ws, nil
	}
	ctx, cancel = c.attemptContext()
	err = c.cfg.onConnect(ctx, ws)
	cancel()
	if err != nil {
		_ = ws.CloseNow()
		d := Disconnect{Err: fmt.Errorf("wsreconnect: OnConnect: %w", err)}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			d.Code, d.Reason = ce.Code, ce.Reason
		}
		return nil, &d
	}
	return ws, nil
}

// dialOnOwnStack calls the DialFunc on a short-lived goroutine and waits
// for it. net/http's dial path is deep: run on the supervisor, it would grow
// the supervisor's stack to 8 KiB, and the supervisor keeps that stack
// while it serves as the connection's reader (measured: 8.3 KiB of stack
// per idle connection instead of 4.1).
func (c *Conn) dialOnOwnStack(ctx context.Context) (*websocket.Conn, *http.Response, error) {
	type result struct {
		ws   *websocket.Conn
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c.dialer.Store(goid())
		defer c.dialer.Store(0)
		ws, resp, err := c.dial(ctx)
		done <- result{ws, resp, err}
	}()
	r := <-done
	return r.ws, r.resp, r.err
}

func (c *Conn) logDisconnect(d Disconnect) {
	level := slog.LevelWarn
	if !d.Reconnect {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.Int("code", int(d.Code)),
		slog.String("reason", d.Reason),
		slog.Int("http_status", d.HTTPStatus),
		slog.Int("attempt", d.Attempt),
		slog.String("decision", d.Decision.String()),
		slog.Duration("delay", d.Delay),
	}
	if d.Err != nil {
		attrs = append(attrs, slog.String("err", d.Err.Error()))
	}
	c.logger().LogAttrs(context.Background(), level, "wsreconnect: disconnected", attrs...)
}

// StopError is returned by Read and Write after the policy decided to stop.
// It unwraps to Disconnect.Err, so websocket.CloseStatus reports the close
// code that ended the Conn.
type StopError struct {
	Disconnect Disconnect
}

func (e *StopError) Error() string {
	return "wsreconnect: stopped reconnecting after " + e.Disconnect.what()
}

func (e *StopError) Unwrap() error { return e.Disconnect.Err }
