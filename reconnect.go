package wsreconnect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// run is the supervisor: the one goroutine per Conn that dials, serves each
// connection until it ends, classifies the end and waits before the next
// attempt (see the lifecycle on Conn).
func (c *Conn) run() {
	defer close(c.done)
	sched := newSchedules(&c.cfg)
	for {
		d := c.attempt()
		if c.isClosing() {
			break
		}
		stable := d.Uptime >= c.cfg.stableUptime
		if stable {
			sched.reset()
		}
		d.Attempt = c.countAttempt(stable)
		if errors.Is(d.Err, ErrReconnectRequested) {
			// The application asked: no policy, no schedule, no wait.
			d.Decision, d.Reconnect, d.Delay = Retry, true, 0
		} else {
			if !c.callback(func() { d.Decision = c.cfg.policy(d) }) {
				break
			}
			d.Delay, d.Reconnect = sched.next(d.Decision, d.RetryAfter)
			if !d.Reconnect {
				d.Decision, d.Delay = Stop, 0
			}
		}
		c.recordDisconnect(d)
		c.logDisconnect(d)
		if c.cfg.onDisconnect != nil && !c.callback(func() { c.cfg.onDisconnect(d) }) {
			break
		}
		if !d.Reconnect {
			c.finish(&StopError{Disconnect: d, connected: c.Stats().Connects > 0})
			return
		}
		if !c.sleep(d.Delay) {
			break
		}
	}
	c.finish(nil)
}

// attempt makes one attempt: it dials, runs OnConnect, writes the send
// queue, and serves the connection until it ends. It returns what ended
// the attempt or the connection.
func (c *Conn) attempt() Disconnect {
	c.setPhase(phaseDialing, nil)
	ws, netConn, fail := c.dialAttempt()
	if ws == nil {
		c.setPhase(phaseWaiting, nil)
		return fail
	}
	s := newSession(c, ws, netConn)
	c.setPhase(phaseConnecting, s)
	defer c.setPhase(phaseWaiting, nil)

	if err := c.onConnect(s); err != nil {
		s.retire()
		d := Disconnect{Err: fmt.Errorf("wsreconnect: OnConnect: %w", err)}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			d.Code, d.Reason = ce.Code, ce.Reason
		}
		return d
	}
	if s.reconnectWanted() {
		// Reconnect was called during OnConnect: this connection is
		// dropped, as it would have been a moment later.
		c.serveEnding(s)
		return sessionEnd(s)
	}
	if err := c.publish(s); err != nil {
		s.retire()
		return connEnd(err)
	}
	c.logConnect(s)
	s.hb.start()
	s.serve()
	s.retire()
	c.unpublish(s)
	return sessionEnd(s)
}

// serveEnding ends a session that was set up but never published.
func (c *Conn) serveEnding(s *session) {
	s.reconnect()
	s.serve()
	s.retire()
}

// sessionEnd describes how a session ended.
func sessionEnd(s *session) Disconnect {
	d := connEnd(s.endErr())
	if errors.Is(d.Err, ErrReconnectRequested) {
		d.Code, d.Reason = websocket.StatusNormalClosure, "reconnecting"
	}
	d.Uptime = max(s.uptime(), time.Nanosecond)
	return d
}

// setPhase records where the supervisor is, and the session it sets up or
// serves (nil when none).
func (c *Conn) setPhase(p phase, s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p == phaseDialing {
		// A Reconnect from before this attempt is satisfied by it.
		c.wakeNow = false
		select {
		case <-c.wake:
		default:
		}
	}
	c.phase, c.sess = p, s
}

// unpublish retires s after it ended; Writes wait for the next session.
func (c *Conn) unpublish(s *session) {
	c.cur.CompareAndSwap(s, nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts.downSince = time.Now()
	if c.isClosing() {
		// Close may be waiting for the handshake it started.
		s.mu.Lock()
		c.closeErr = s.closeErr
		s.mu.Unlock()
	}
	c.state = StateConnecting
	c.broadcastLocked()
}

// attemptContext returns the ctx for one dial, OnConnect or queue flush:
// it ends after the dial timeout or when Close is called.
func (c *Conn) attemptContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(c.base, c.cfg.dialTimeout)
	c.mu.Lock()
	if c.isClosing() {
		cancel()
	} else {
		c.cancelAttempt = cancel
	}
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		c.cancelAttempt = nil
		c.mu.Unlock()
		cancel()
	}
}

// dialAttempt dials once; on failure it returns the Disconnect describing
// it. It also returns the socket under the connection when the DialFunc
// dialled through net/http's Transport (as websocket.Dial does), which
// reports it through httptrace: kill needs it to cut a close handshake
// short.
func (c *Conn) dialAttempt() (*websocket.Conn, net.Conn, Disconnect) {
	if err := c.waitLimiter(); err != nil {
		return nil, nil, Disconnect{Err: err}
	}
	ctx, cancel := c.attemptContext()
	defer cancel()
	var (
		mu      sync.Mutex
		netConn net.Conn
	)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		mu.Lock()
		defer mu.Unlock()
		netConn = info.Conn
	}})
	ws, resp, err := c.dialOnOwnStack(ctx)
	if err == nil && ws == nil {
		err = errNoConnection
	}
	if err == nil {
		mu.Lock()
		defer mu.Unlock()
		if tc, ok := netConn.(*tls.Conn); ok {
			netConn = tc.NetConn() // tls.Conn.Close would first write an alert
		}
		return ws, netConn, Disconnect{}
	}
	if ws != nil {
		closeNow(ws)
	}
	err = describeDialError(redact(err), ctx, c.isClosing(), c.cfg.dialTimeout.String())
	return nil, nil, dialEnd(err, resp, time.Now(), c.cfg.maxRetryAfter)
}

// waitLimiter waits on the dial limiter, if there is one, until Close.
func (c *Conn) waitLimiter() error {
	if c.cfg.limiter == nil {
		return nil
	}
	var err error
	if !c.callback(func() { err = c.cfg.limiter.Wait(c.ended) }) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("wsreconnect: dial limiter: %w", err)
	}
	return nil
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
		var r result
		if !c.callback(func() { r.ws, r.resp, r.err = c.dial(ctx) }) {
			r.err = ErrClosed
		}
		done <- r
	}()
	r := <-done
	return r.ws, r.resp, r.err
}

// onConnect runs the OnConnect function on s, if there is one.
func (c *Conn) onConnect(s *session) error {
	if c.cfg.onConnect == nil {
		return nil
	}
	ctx, cancel := c.attemptContext()
	defer cancel()
	ctx = context.WithValue(ctx, onConnectKey{}, s)
	var err error
	if !c.callback(func() { err = c.cfg.onConnect(ctx, s.ws) }) {
		return ErrClosed
	}
	return err
}

// countAttempt returns the Attempt of the Disconnect being reported:
// 1 after a stable connection, else one more than the last.
func (c *Conn) countAttempt(stable bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if stable {
		c.counts.attempt = 0
	}
	c.counts.attempt++
	return c.counts.attempt
}

// sleep waits d, or until Close or a Reconnect; it reports whether to go
// on.
func (c *Conn) sleep(d time.Duration) bool {
	c.mu.Lock()
	if c.wakeNow {
		d = 0
	}
	if d > 0 {
		c.counts.nextAttempt = time.Now().Add(d)
	}
	c.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.wake:
		case <-c.closeCalled:
		}
		c.mu.Lock()
		c.counts.nextAttempt = time.Time{}
		c.mu.Unlock()
	}
	return !c.isClosing()
}

// recordDisconnect counts d, and lets Dial return a final failure before
// the first connection.
func (c *Conn) recordDisconnect(d Disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts.last = d
	c.counts.disconnectedAt = time.Now()
	if d.Decision >= 0 && int(d.Decision) < len(c.counts.disconnects) {
		c.counts.disconnects[d.Decision]++
	}
	if !d.Reconnect && !c.firstSent {
		c.firstSent = true
		c.first <- &StopError{Disconnect: d, connected: c.counts.connects > 0}
	}
}

// finish marks the Conn ended: stopErr is the policy's reason, or nil after
// Close.
func (c *Conn) finish(stopErr error) {
	c.cur.Store(nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.queue); n > 0 {
		c.unsent = &UnsentError{Count: n}
		c.queue = nil
	}
	c.sess = nil
	c.phase = phaseEnded
	c.state = StateClosed
	if !c.counts.downSince.IsZero() {
		c.counts.downtime += time.Since(c.counts.downSince)
		c.counts.downSince = time.Time{}
	}
	if stopErr != nil {
		c.stopErr = stopErr
	}
	if !c.firstSent {
		c.firstSent = true
		if stopErr == nil {
			stopErr = ErrClosed
		}
		c.first <- stopErr
	}
	c.broadcastLocked()
	c.stopReads()
}

func (c *Conn) logger() *slog.Logger { return c.cfg.logger }

// logConnect logs a connection that came up: which attempt it took (1 for
// the first after a stable connection or Dial) and how long the Conn had
// been without a connection.
func (c *Conn) logConnect(s *session) {
	c.mu.Lock()
	attempt := c.counts.attempt + 1
	c.mu.Unlock()
	c.logger().LogAttrs(context.Background(), slog.LevelInfo, "wsreconnect: connected",
		slog.Int("attempt", attempt),
		slog.Duration("downtime", s.outage),
		slog.String("subprotocol", s.subprotocol),
	)
}

// logDisconnect logs d: at Info for a reconnect the application asked for,
// at Warn for a retry the schedules expect, at Error when the Conn stops.
func (c *Conn) logDisconnect(d Disconnect) {
	level := slog.LevelWarn
	switch {
	case !d.Reconnect:
		level = slog.LevelError
	case errors.Is(d.Err, ErrReconnectRequested):
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{
		slog.Int("code", int(d.Code)),
		slog.String("reason", d.Reason),
		slog.Int("http_status", d.HTTPStatus),
		slog.Duration("retry_after", d.RetryAfter),
		slog.Duration("uptime", d.Uptime),
		slog.Int("attempt", d.Attempt),
		slog.String("decision", d.Decision.key()),
		slog.Duration("delay", d.Delay),
	}
	if d.Err != nil {
		attrs = append(attrs, slog.String("err", d.Err.Error()))
	}
	c.logger().LogAttrs(context.Background(), level, "wsreconnect: disconnected", attrs...)
}
