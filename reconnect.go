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
			dec, ok := callback(c, func() Decision { return c.cfg.policy(d) }, nil)
			if !ok {
				return
			}
			d.Decision = dec
			d.Delay, d.Reconnect = sched.next(d.Decision, d.RetryAfter)
			if !d.Reconnect {
				d.Decision, d.Delay = Stop, 0
			}
		}
		c.recordDisconnect(d)
		c.logDisconnect(d)
		if fn := c.cfg.onDisconnect; fn != nil {
			if _, ok := callback(c, func() struct{} { fn(d); return struct{}{} }, nil); !ok {
				return
			}
		}
		if !d.Reconnect {
			c.stop(d)
			return
		}
		if !c.sleep(d.Delay) {
			return
		}
	}
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
		s.setupDone = make(chan struct{})
		s.task(func() {
			defer close(s.setupDone)
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
		s.cancel()
		<-s.setupDone
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
	s.mu.Lock()
	closeErr := s.closeErr
	s.mu.Unlock()
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
	if err == s.setupErr {
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
		ctx, cancel := context.WithTimeout(s.ctx, c.cfg.dialTimeout)
		ctx = context.WithValue(ctx, onConnectKey{}, s)
		err, ok := callback(c, func() error { return fn(ctx, s.ws) }, nil)
		cancel()
		if !ok {
			return
		}
		if err != nil {
			c.inbox.unhold(false)
			if c.ends(s, func() {
				s.setupErr = fmt.Errorf("wsreconnect: OnConnect: %w", err)
				// Its close frame follows: the answer says nothing new.
				s.setupEnded = c.sess == s && c.life == settingUp && s.readErr == nil
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
		err := s.write(s.ctx, m.typ, m.data)
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
		}
		c.mu.Unlock()
	}
}

// stop ends the Conn as the policy decided, after d.
func (c *Conn) stop(d Disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopErr = &StopError{Disconnect: d, connected: c.counts.connects > 0}
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
	c.mu.Unlock()
	if err := c.waitLimiter(); err != nil {
		return nil, nil, Disconnect{Err: err}
	}
	ctx, cancel := context.WithTimeout(c.end, c.cfg.dialTimeout)
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
	return nil, nil, dialEnd(err, resp, time.Now(), c.cfg.maxRetryAfter)
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
func (c *Conn) recordDisconnect(d Disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts.last = d
	c.counts.disconnectedAt = time.Now()
	if d.Decision >= 0 && int(d.Decision) < len(c.counts.disconnects) {
		c.counts.disconnects[d.Decision]++
	}
	if !d.Reconnect {
		c.sendFirst(&StopError{Disconnect: d, connected: c.counts.connects > 0})
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
		slog.Duration("downtime", outage),
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
