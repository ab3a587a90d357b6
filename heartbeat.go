package wsreconnect

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// heartbeat finds a dead peer on one session. It is a timer, not a
// goroutine: while the connection is idle it costs one runtime timer, and a
// goroutine exists only while a ping waits for its pong.
//
// The timer fires when nothing has arrived for interval. If the read pump
// is parked (the application is not calling Read), a pong could not be
// read, so the heartbeat waits: a slow application is not a dead peer.
// Otherwise it pings. A ping that times out proves the peer dead only if
// nothing arrived meanwhile and the pump stayed inside ws.Read the whole
// time; then the connection is closed at once with ErrHeartbeatTimeout as
// its reason.
type heartbeat struct {
	s                 *session
	interval, timeout time.Duration

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	running sync.WaitGroup // a fire in progress
}

func (hb *heartbeat) init(s *session, interval, timeout time.Duration) {
	hb.s, hb.interval, hb.timeout = s, interval, timeout
}

func (hb *heartbeat) start() {
	if hb.interval <= 0 {
		return
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if !hb.stopped {
		hb.timer = time.AfterFunc(hb.interval, hb.fire)
	}
}

// stop prevents further fires; a fire in progress finishes (see wait).
func (hb *heartbeat) stop() {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	hb.stopped = true
	if hb.timer != nil {
		hb.timer.Stop()
	}
}

// wait returns once no fire is in progress. Call it after stop, once the
// connection is closed, so that a ping in flight returns at once.
func (hb *heartbeat) wait() { hb.running.Wait() }

func (hb *heartbeat) fire() {
	hb.mu.Lock()
	if hb.stopped {
		hb.mu.Unlock()
		return
	}
	hb.running.Add(1)
	hb.mu.Unlock()
	defer hb.running.Done()

	next := hb.check()

	hb.mu.Lock()
	defer hb.mu.Unlock()
	if !hb.stopped {
		hb.timer.Reset(next)
	}
}

// check runs one heartbeat step and returns when the next is due.
func (hb *heartbeat) check() time.Duration {
	s := hb.s
	if s.parked.Load() {
		return hb.interval
	}
	if idle := time.Duration(s.now() - s.lastActivity.Load()); idle < hb.interval {
		return hb.interval - idle
	}

	parks := s.parks.Load()
	sent := s.now()
	ctx, cancel := context.WithTimeout(context.Background(), hb.timeout)
	err := s.ws.Ping(ctx)
	cancel()
	switch {
	case err == nil:
		s.touch()
		return hb.interval
	case !errors.Is(err, context.DeadlineExceeded):
		// Not a timeout (the connection was closed under the ping): the
		// pump or whoever closed it reports why.
		return hb.interval
	case s.endReported():
		// The pump or a writer saw the connection end and reports why.
		return hb.interval
	case s.parked.Load():
		return hb.interval
	case s.lastActivity.Load() >= sent, s.parks.Load() != parks:
		// Something arrived, or the pump left ws.Read while we waited: the
		// missing pong proves nothing. The next ping is due an interval
		// after that activity, not an interval from now.
		idle := time.Duration(s.now() - s.lastActivity.Load())
		return max(hb.interval-idle, time.Millisecond)
	}
	// No pong in time, or the ping could not even be written in time
	// (coder/websocket gives a control frame at most 5 s, then closes the
	// connection): the peer is gone.
	if s.c.isClosing() {
		return hb.interval // Close is ending the session; leave it alone
	}
	s.setEnd(endHeartbeat, fmt.Errorf("%w (interval %v, timeout %v)", ErrHeartbeatTimeout, hb.interval, hb.timeout))
	_ = s.ws.CloseNow()
	return hb.interval
}
