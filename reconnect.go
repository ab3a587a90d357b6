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

// run is the supervisor: the one goroutine per Conn that walks the states
// (see the lifecycle on Conn): it dials, reads each connection until it
// ends, classifies the end and waits before the next attempt.
func (c *Conn) run() {
	defer close(c.done)
	sched := newSchedules(&c.cfg)
	for {
		exhausted := false // the schedule, not the policy, stopped
		d, ok := c.attempt()
		if !ok {
			return
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
			dec, ok := c.decide(d)
			if !ok {
				return
			}
			d.Decision = dec
			d.Delay, d.Reconnect = sched.next(d.Decision, d.RetryAfter)
			if !d.Reconnect {
				exhausted = dec == Retry || dec == RetryOverload
				d.Decision, d.Delay = Stop, 0
			}
		}
		c.recordDisconnect(d, exhausted)
		c.logDisconnect(d)
		c.emit(traceEvent{kind: evDisconnected, disconnect: d})
		if !c.tell(d) {
			return
		}
		if !d.Reconnect {
			c.stop(d, exhausted)
			return
		}
		if !c.sleep(d.Delay) {
			return
		}
	}
}

// decide asks the policy about d. (d is a parameter, so that only this
// copy escapes to the callback's goroutine, not the supervisor's loop
// variable, which an idle Conn would then keep on the heap.)
func (c *Conn) decide(d Disconnect) (Decision, bool) {
	return callback(c, func() Decision { return c.cfg.policy(d) }, nil)
}

// tell tells OnDisconnect of d, if there is one; false once the Conn is
// closed.
func (c *Conn) tell(d Disconnect) bool {
	fn := c.cfg.onDisconnect
	if fn == nil {
		return true
	}
	_, ok := callback(c, func() struct{} { fn(d); return struct{}{} }, nil)
	return ok
}

// attempt makes one attempt, from dialing: it dials, sets the connection
// up and reads it until it ends. It returns what ended the attempt or the
// connection, with the Conn waiting; false once the Conn is closed.
func (c *Conn) attempt() (Disconnect, bool) {
	ws, netConn, fail := c.dialAttempt()
	if ws == nil {
		return fail, c.enter(waiting)
	}
	s := newSession(c, ws, netConn)
	c.mu.Lock()
	ok := c.to(settingUp, s)
	// With nothing to set up, the connection is live before it is read.
	ready := ok && c.cfg.onConnect == nil && len(c.queue) == 0 && c.to(live, s)
	if ok && !ready {
		// The setup's ctx ends with the session (end, under c.mu). Not
		// derived from c.end: the Conn would keep the map of its children
		// for good.
		ctx, cancel := context.WithCancel(c.base)
		s.setup = &setupState{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	}
	c.mu.Unlock()
	switch {
	case !ok:
		closeNow(ws)
		return Disconnect{}, false
	case ready:
		c.logConnect(s)
		s.hb.start()
	default:
		if c.cfg.onConnect != nil {
			c.inbox.hold() // for OnConnect (ReadOnConnect), before the pump reads
		}
		s.task(func() {
			defer close(s.setup.done)
			c.setup(s)
		})
	}
	err := s.serve()
	c.mu.Lock()
	s.readErr = err
	setupRuns := c.sess == s && c.life == settingUp
	c.mu.Unlock()
	if setupRuns {
		// The connection is gone: OnConnect's and the send queue's ctx end,
		// and what they make of it decides whether it was ever up (so that
		// it does not depend on whether the pump saw the end first).
		s.setup.cancel()
		<-s.setup.done
	}
	c.ends(s, func() {})
	s.retire()
	return c.retired(s)
}

// enter changes the state to n; it reports false once the Conn is closed.
func (c *Conn) enter(n life) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.to(n, nil)
}

// ends records, under c.mu, what ended s (record), and moves the Conn from
// settingUp or live to ending if s is its connection there. It reports
// whether it did: the caller then closes the connection as its event
// demands.
func (c *Conn) ends(s *session, record func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	record()
	if c.sess != s || c.life != settingUp && c.life != live {
		return false
	}
	return c.to(ending, s)
}

// retired moves the Conn from ending to waiting once s is retired, and
// says how s ended; false once the Conn is closed (Close then learns how
// its handshake went).
func (c *Conn) retired(s *session) (Disconnect, bool) {
	closeErr := s.closeErr()
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.sessionEnd(s)
	if c.life == closed {
		c.sess = nil
		c.closeErr = closeErr
		return d, false
	}
	return d, c.to(waiting, nil)
}

// sessionEnd describes how s ended. c.mu must be held.
func (c *Conn) sessionEnd(s *session) Disconnect {
	err := s.cause()
	var d Disconnect
	if s.setup != nil && err == s.setup.err {
		d.Err = err
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			d.Code, d.Reason = ce.Code, ce.Reason
		}
	} else {
		d = connEnd(err)
	}
	if errors.Is(d.Err, ErrReconnectRequested) {
		d.Code, d.Reason = websocket.StatusNormalClosure, "reconnecting"
	}
	if s.wentLive {
		d.Uptime = max(s.diedAt, time.Nanosecond)
	}
	return d
}

// setup runs on a task of s while the pump reads it: OnConnect, then the
// send queue, then it publishes s (settingUp → live). A failure ends s;
// what the pump read meanwhile (the server's close frame, say) may say why.
func (c *Conn) setup(s *session) {
	if fn := c.cfg.onConnect; fn != nil {
		ctx, cancel := context.WithTimeout(s.setup.ctx, c.cfg.dialTimeout)
		ctx = context.WithValue(ctx, onConnectKey{}, s)
		err, ok := callback(c, func() error { return fn(ctx, s.ws) }, nil)
		cancel()
		if !ok {
			return
		}
		if err != nil {
			c.inbox.unhold(false)
			if c.ends(s, func() {
				s.setup.err = fmt.Errorf("wsreconnect: OnConnect: %w", err)
				// Its close frame follows: the answer says nothing new.
				// Unless the connection was gone when OnConnect failed:
				// then what the pump reads (the server's close frame,
				// say) is why, and OnConnect's error only its echo.
				s.setup.ended = c.sess == s && c.life == settingUp && s.readErr == nil &&
					!errors.Is(err, net.ErrClosed)
			}) {
				code, reason := websocket.StatusNormalClosure, "OnConnect failed"
				var ce websocket.CloseError
				if errors.As(err, &ce) && validCloseFrame(ce.Code, ce.Reason) == nil {
					code, reason = ce.Code, ce.Reason
				}
				s.closeHandshake(code, reason, reconnectGrace)
			}
			return
		}
		c.inbox.unhold(true)
	}
	// From here on a dead peer is the heartbeat's to find: a send queue
	// written to a slow peer, or behind a slow application, takes as long
	// as it takes.
	s.hb.start()
	for {
		c.mu.Lock()
		if c.sess != s || c.life != settingUp {
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.to(live, s)
			c.mu.Unlock()
			c.logConnect(s)
			return
		}
		m := c.queue[0]
		c.mu.Unlock()
		err := s.write(s.setup.ctx, m.typ, m.data)
		if err != nil {
			// The message stays at the head of the queue.
			if c.ends(s, func() {
				if s.writeErr == nil && err != errSessionEnded {
					s.writeErr = fmt.Errorf("wsreconnect: writing the send queue: %w", err)
				}
			}) {
				s.killAfter(drainGrace)
			}
			return
		}
		c.mu.Lock()
		if len(c.queue) > 0 { // Close may have dropped it
			c.queue[0] = message{}
			c.queue = c.queue[1:]
			c.emit(traceEvent{kind: evQueue, depth: len(c.queue)})
		}
		c.mu.Unlock()
	}
}

// stop ends the Conn as the policy (or the schedule) decided, after d.
func (c *Conn) stop(d Disconnect, exhausted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopErr = &StopError{Disconnect: d, connected: c.counts.connects > 0, exhausted: exhausted}
	c.to(closed, nil)
}

// dialAttempt dials once; on failure it returns the Disconnect describing
// it. It also returns the socket under the connection when the DialFunc
// dialled through net/http's Transport (as websocket.Dial does), which
// reports it through httptrace: kill needs it to cut a close handshake
// short.
func (c *Conn) dialAttempt() (*websocket.Conn, net.Conn, Disconnect) {
	c.mu.Lock()
	c.counts.dials++
	attempt := c.counts.dials
	c.mu.Unlock()
	if err := c.waitLimiter(); err != nil {
		return nil, nil, Disconnect{Err: err}
	}
	start := time.Now()
	c.emit(traceEvent{kind: evDialStart, attempt: attempt})
	// Not derived from c.end (the Conn would keep the map of its children
	// for good): Close cancels it through c.cancelDial.
	ctx, cancel := context.WithTimeout(c.base, c.cfg.dialTimeout)
	defer cancel()
	c.mu.Lock()
	if c.life == closed {
		cancel()
	}
	c.cancelDial = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cancelDial = nil
		c.mu.Unlock()
	}()
	var (
		mu      sync.Mutex
		netConn net.Conn
	)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		mu.Lock()
		defer mu.Unlock()
		netConn = info.Conn
	}})
	type result struct {
		ws   *websocket.Conn
		resp *http.Response
		err  error
	}
	// The DialFunc runs on a goroutine of its own (callback): net/http's
	// dial path is deep, and run on the supervisor it would grow the
	// supervisor's stack to 8 KiB, which the supervisor keeps while it reads
	// the connection (measured: 8.3 KiB of stack per idle connection
	// instead of 4.1).
	r, ok := callback(c, func() result {
		ws, resp, err := c.dial(ctx)
		return result{ws, resp, err}
	}, func(r result) {
		if r.ws != nil {
			closeNow(r.ws) // the Conn was closed meanwhile
		}
	})
	if !ok {
		return nil, nil, Disconnect{Err: ErrClosed}
	}
	ws, resp, err := r.ws, r.resp, r.err
	if err == nil && ws == nil {
		err = errNoConnection
	}
	if err == nil {
		c.emit(traceEvent{kind: evDialDone, attempt: attempt, d: time.Since(start)})
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
	err = describeDialError(redact(err), ctx, c.isClosed(), c.cfg.dialTimeout.String())
	d := dialEnd(err, resp, time.Now(), c.cfg.maxRetryAfter)
	c.emit(traceEvent{kind: evDialDone, attempt: attempt, d: time.Since(start), err: d.Err, status: d.HTTPStatus})
	return nil, nil, d
}

// waitLimiter waits on the dial limiter, if there is one, until Close.
func (c *Conn) waitLimiter() error {
	if c.cfg.limiter == nil {
		return nil
	}
	err, ok := callback(c, func() error { return c.cfg.limiter.Wait(c.end) }, nil)
	if !ok {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("wsreconnect: dial limiter: %w", err)
	}
	return nil
}

// countAttempt returns the Attempt of the Disconnect being reported: the
// consecutive failures since the last stable connection, this one
// included. The end of a stable connection is the first, and the dials are
// counted again from there.
func (c *Conn) countAttempt(stable bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if stable {
		c.counts.failures, c.counts.dials = 0, 0
	}
	c.counts.failures++
	c.counts.attempt = c.counts.failures
	return c.counts.failures
}

// sleep waits d, or until Close or a Reconnect, then enters dialing; it
// reports false once the Conn is closed.
func (c *Conn) sleep(d time.Duration) bool {
	c.mu.Lock()
	if c.wakeNow {
		d = 0
	}
	if d > 0 {
		c.counts.nextAttempt = time.Now().Add(d)
		c.emit(traceEvent{kind: evWaitStart, d: d})
	}
	c.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.wake:
		case <-c.end.Done():
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts.nextAttempt = time.Time{}
	return c.to(dialing, nil)
}

// recordDisconnect counts d, and lets Dial return a final failure before
// the first connection.
func (c *Conn) recordDisconnect(d Disconnect, exhausted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts.last = d
	c.counts.disconnectedAt = time.Now()
	if d.Decision >= 0 && int(d.Decision) < len(c.counts.disconnects) {
		c.counts.disconnects[d.Decision]++
	}
	if !d.Reconnect {
		c.sendFirst(&StopError{Disconnect: d, connected: c.counts.connects > 0, exhausted: exhausted})
	}
}

func (c *Conn) logger() *slog.Logger { return c.cfg.logger }

// logConnect logs a connection that came up: which attempt it took (the
// number of the dial since Dial or since the last stable connection ended)
// and how long the Conn had been without a connection.
func (c *Conn) logConnect(s *session) {
	c.mu.Lock()
	attempt, outage := c.counts.attempt, s.outage
	c.mu.Unlock()
	c.logger().LogAttrs(context.Background(), slog.LevelInfo, "wsreconnect: connected",
		slog.Int("attempt", attempt),
		slog.Duration("downtime", outage.Round(time.Millisecond)),
		slog.String("subprotocol", s.ws.Subprotocol()),
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
		slog.Duration("uptime", d.Uptime.Round(time.Millisecond)),
		slog.Int("attempt", d.Attempt),
		slog.String("decision", d.Decision.key()),
		slog.Duration("delay", d.Delay.Round(time.Millisecond)),
	}
	if d.Err != nil {
		attrs = append(attrs, slog.String("err", d.Err.Error()))
	}
	c.logger().LogAttrs(context.Background(), level, "wsreconnect: disconnected", attrs...)
}
