package wsreconnect

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

const (
	// markerRate is the slowest a peer may read what we write and still
	// count as alive: markers are placed so that it reads from one to the
	// next within the heartbeat's interval + timeout (see heartbeat.marker).
	markerRate = 32 << 10 // bytes per second
	// minMarkerSpacing and maxMarkerSpacing bound the bytes between two
	// markers.
	minMarkerSpacing = 64 << 10
	maxMarkerSpacing = 4 << 20
	// maxMarkers bounds the markers waiting for their pongs at once. Each
	// costs a goroutine and a pending ping, a few KiB beside the spacing
	// bytes it follows; the bound covers more data in flight than the
	// kernel's buffers hold (64 MiB at the smallest spacing), so that no
	// stretch of it goes without markers.
	maxMarkers = 1024
	// minReadChunk and maxReadChunk bound the bytes the pump asks for in
	// one read while the heartbeat is on (see heartbeat.readChunk).
	minReadChunk = 4 << 10
	maxReadChunk = 1 << 20
	// pingWriteBound is how long coder/websocket may take to write a
	// control frame (5 s, then it closes the connection), with a margin. A
	// ping's context must not end sooner: a context that ends while the
	// frame is being written closes the connection.
	pingWriteBound = 6 * time.Second
)

// heartbeat finds a dead peer on one session. It is a timer, not a
// goroutine: it wakes to look at the session's evidence of life (see
// session.evidence), and a goroutine exists only while a ping waits for
// its pong.
//
// Evidence is anything that arrives: data, a pong. When none has arrived
// for interval, it sends a probe (a ping, or the application's ping
// function); when none has arrived within timeout of the probe, the peer
// is dead and the connection is closed with ErrHeartbeatTimeout as its
// reason. While the pump is parked nothing is read, so nothing could
// arrive: a slow application is not a dead peer, and the peer is not
// judged. Checks run every step while evidence keeps arriving, and the
// first evidence after each check is timed: silence is never
// underestimated, and is overestimated by at most a step (an eighth of the
// shorter of interval and timeout), so a probe is never late, and a dead
// peer is found within interval + timeout of its last sign of life, and no
// sooner than a step before that.
//
// Busy is not dead either. A peer still consuming what we write is alive,
// but a probe written behind megabytes of our data is answered only once
// the peer has read them, however slowly it does so. So while data is
// written, the heartbeat places a protocol ping among it every spacing
// bytes (a marker): each pong proves the peer has read up to it, during
// the Write and after it, while what we wrote drains from the kernel's
// buffers. A long message is written in fragments (fragmentSize) so that
// pings can pass between them. Markers are only evidence: one that is never
// answered does not kill the connection. The spacing is what a peer reading
// markerRate bytes a second reads in interval + timeout (960 KiB for the
// default heartbeat), so that such a peer answers a marker before it could
// be judged dead; a faster link pays for few pings (each ping and pong costs
// coder/websocket about a KiB of garbage).
//
// A long message being read is evidence piece by piece, as it arrives. But
// coder/websocket fills a read buffer whole (up to the end of the frame)
// before it returns, and a large frame on a slow link takes long to fill:
// so the pump asks for at most readChunk bytes at a time, what a peer
// sending markerRate bytes a second delivers in a quarter of interval +
// timeout.
type heartbeat struct {
	s                       *session
	interval, timeout, step time.Duration
	pingFunc                func(context.Context, *websocket.Conn) error
	fragments               bool         // long messages are written in fragments
	spacing                 int64        // bytes between two markers
	readChunk               int          // most bytes the pump asks for in one read
	nextMarker              atomic.Int64 // session.out at which the next marker is due

	ctx    context.Context // ends when the heartbeat stops
	cancel context.CancelFunc

	mu         sync.Mutex
	timer      *time.Timer
	due        time.Time // when timer fires
	stopped    bool
	seen       uint64    // session.in at the last check
	lastActive time.Time // when the last evidence came (to within a step; never later)
	probe      probe
	markers    int            // markers waiting for their pongs
	wg         sync.WaitGroup // checks in progress, probes, markers
}

type probe struct {
	on     bool
	id     uint64
	sent   time.Time
	failed bool
}

func (hb *heartbeat) init(s *session, cfg *config) {
	hb.s = s
	hb.nextMarker.Store(math.MaxInt64)
	hb.readChunk = math.MaxInt
	if cfg.hbInterval <= 0 || (cfg.pingFunc == nil && !protocolPings) {
		return // off
	}
	hb.interval, hb.timeout, hb.pingFunc = cfg.hbInterval, cfg.hbTimeout, cfg.pingFunc
	hb.step = max(min(hb.interval, hb.timeout)/8, time.Millisecond)
	hb.readChunk = int(min(max((hb.interval+hb.timeout).Seconds()*markerRate/4, minReadChunk), maxReadChunk))
	hb.ctx, hb.cancel = context.WithCancel(context.Background())
	if protocolPings {
		hb.fragments = true
		hb.spacing = int64(min(max((hb.interval+hb.timeout).Seconds()*markerRate, minMarkerSpacing), maxMarkerSpacing))
		hb.nextMarker.Store(hb.spacing)
	}
}

func (hb *heartbeat) on() bool { return hb.interval > 0 }

// start arms the first check; the session is live.
func (hb *heartbeat) start() {
	if !hb.on() {
		return
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.stopped {
		return
	}
	hb.lastActive = time.Now()
	hb.seen = hb.s.in.Load()
	hb.s.stampWanted.Store(true)
	hb.due = hb.lastActive.Add(hb.interval)
	hb.timer = time.AfterFunc(hb.interval, hb.check)
}

// stop prevents further checks, probes and markers, and ends the pings in
// flight; wait waits for them.
func (hb *heartbeat) stop() {
	hb.mu.Lock()
	hb.stopped = true
	if hb.timer != nil {
		hb.timer.Stop()
	}
	hb.mu.Unlock()
	if hb.cancel != nil {
		hb.cancel()
	}
}

func (hb *heartbeat) wait() { hb.wg.Wait() }

// check runs when the timer fires.
func (hb *heartbeat) check() {
	hb.mu.Lock()
	if hb.stopped {
		hb.mu.Unlock()
		return
	}
	hb.wg.Add(1)
	defer hb.wg.Done()
	dead, probe := hb.checkLocked(time.Now())
	hb.mu.Unlock()
	if dead {
		hb.s.die(fmt.Errorf("%w (interval %v, timeout %v)", ErrHeartbeatTimeout, hb.interval, hb.timeout))
	}
	if probe != nil {
		probe() // on the timer's goroutine, which waits for the pong
	}
}

// checkLocked looks at the evidence, rearms the timer and reports whether
// the peer is dead, or returns the probe to send.
func (hb *heartbeat) checkLocked(now time.Time) (dead bool, probe func()) {
	s := hb.s
	if s.ended.Load() {
		return false, nil // whoever ended it reports why
	}
	in := s.in.Load()
	switch {
	case s.parked.Load():
		// Nothing is read, so nothing could be seen: the peer is not
		// judged, and its silence starts when the pump reads again.
		hb.lastActive = now
	case in != hb.seen:
		// Evidence since the last check: the first of it was timed.
		hb.lastActive = now
		if !s.stampWanted.Load() {
			hb.lastActive = s.born.Add(time.Duration(s.stampAt.Load()))
		}
	}
	if in != hb.seen || s.parked.Load() {
		// The next check is due when the silence would reach interval;
		// evidence before then is timed and brings it within a step.
		hb.seen = in
		s.stampWanted.Store(true)
		hb.probe.on = false
		hb.arm(now, max(hb.lastActive.Add(hb.interval).Sub(now), hb.step))
		return false, nil
	}
	if hb.probe.on {
		if hb.probe.failed || now.Sub(hb.probe.sent) >= hb.timeout {
			return !s.c.closeCalled.Load(), nil
		}
		hb.arm(now, hb.probe.sent.Add(hb.timeout).Sub(now))
		return false, nil
	}
	if silence := now.Sub(hb.lastActive); silence < hb.interval {
		hb.arm(now, hb.interval-silence)
		return false, nil
	}
	hb.arm(now, hb.timeout)
	return false, hb.newProbe(now)
}

// arm has the timer fire d after now. hb.mu must be held.
func (hb *heartbeat) arm(now time.Time, d time.Duration) {
	hb.due = now.Add(d)
	hb.timer.Reset(d)
}

// nudge brings the next check to within a step: evidence has arrived
// since the last one (see session.evidence).
func (hb *heartbeat) nudge() {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.stopped || hb.timer == nil {
		return
	}
	if now := time.Now(); now.Add(hb.step).Before(hb.due) {
		hb.arm(now, hb.step)
	}
}

// newProbe records a probe sent at now and returns the function that
// pings the peer, with the ping function if there is one; the caller runs
// it without hb.mu, counted in hb.wg. Its verdict is the check at
// now+timeout; the ping itself may wait longer for its pong (see
// pingWriteBound), which still counts as evidence.
func (hb *heartbeat) newProbe(now time.Time) func() {
	hb.probe = probe{on: true, id: hb.probe.id + 1, sent: now}
	id := hb.probe.id
	s := hb.s
	return func() {
		var err error
		s.c.emit(traceEvent{kind: evPingSent})
		if hb.pingFunc != nil {
			ctx, cancel := context.WithTimeout(hb.ctx, hb.timeout)
			err, _ = callback(s.c, func() error { return hb.pingFunc(ctx, s.ws) }, nil)
			cancel()
			// Its answer is whatever arrives next: evidence, not a pong.
		} else {
			ctx, cancel := context.WithTimeout(hb.ctx, max(hb.timeout, pingWriteBound))
			sent := time.Now()
			err = s.ws.Ping(ctx)
			cancel()
			if err == nil {
				s.evidence()
				s.c.emit(traceEvent{kind: evPingAnswered, d: time.Since(sent)})
			}
		}
		if err != nil && hb.ctx.Err() == nil {
			hb.probeFailed(id)
		}
	}
}

// probeFailed has the check judge the probe now: it could not be sent.
func (hb *heartbeat) probeFailed(id uint64) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.stopped || !hb.probe.on || hb.probe.id != id {
		return
	}
	hb.probe.failed = true
	hb.arm(time.Now(), 0)
}

// marker places a ping among the data being written; session.wrote calls
// it each time another spacing bytes have been written.
func (hb *heartbeat) marker() {
	hb.mu.Lock()
	out := hb.s.out.Load()
	if hb.stopped || out < hb.nextMarker.Load() {
		hb.mu.Unlock()
		return
	}
	hb.nextMarker.Store(out + hb.spacing)
	if hb.markers >= maxMarkers {
		hb.mu.Unlock()
		return
	}
	hb.markers++
	hb.wg.Add(1)
	started := make(chan struct{})
	go func() {
		defer hb.wg.Done()
		// A marker may wait long for its pong: the peer answers once it
		// has read everything written before it.
		ctx, cancel := context.WithTimeout(hb.ctx, max(4*(hb.interval+hb.timeout), pingWriteBound))
		close(started)
		if hb.s.ws.Ping(ctx) == nil {
			hb.s.evidence()
		}
		cancel()
		hb.mu.Lock()
		hb.markers--
		hb.mu.Unlock()
	}()
	hb.mu.Unlock()
	// The writer waits until the marker runs and has allocated its
	// context. A writer whose data the kernel swallows does not block for
	// megabytes; a new goroutine may not run that long, and an allocating
	// one may be held to assist the garbage collector for a mark phase.
	// Either way its ping would follow megabytes of data, not spacing
	// bytes. Once the marker is past both, its ping is queued for
	// coder/websocket's write lock, which passes in order, within
	// microseconds: the ping follows at most one more fragment, and later
	// only if the runtime holds the marker inside Ping itself.
	<-started
}

// die closes the connection of a session the heartbeat found dead.
func (s *session) die(err error) {
	if s.c.ends(s, func() {
		if !s.ended.Load() {
			s.death = err
		}
	}) {
		s.kill()
	}
}
