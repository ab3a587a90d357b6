package faulttest

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsreconnect/wsreconnect"
)

// world is the shared record of one scenario: every message the client
// wrote and what became of it, every message the test server streamed and
// whether the client read it, and the client's dials, connects and
// disconnects. Client and test server both write to it, so that the end of a
// scenario can check that every message is accounted for. Goroutines record
// invariant violations in bad; check reports them.
type world struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change

	cmsgs []cmsg // client messages, index seq-1
	smsgs []smsg // server stream messages, index seq-1

	srvConns int32 // server connection ids handed out (1, 2, ...)

	lastEcho  uint64 // highest client seq whose echo the client read
	lastS     uint64 // highest server seq the client read
	echoes    int    // echoes read by the client
	streamGot int    // server stream messages read by the client
	gotBytes  map[uint64]int

	bad      []string
	reported int   // violations check has reported
	readEnd  error // why the client's Read stopped, other than Close

	dials       []dialEvent
	connects    []time.Time
	disconnects []discEvent
}

// cmsg is the fate of one message the client wrote.
type cmsg struct {
	state      uint8 // writing, wroteOK or wroteErr
	discBefore int32 // disconnects reported when the Write started
	srvConn    int32 // the server connection that read it; 0: none (or no records)
	srvEchoOK  bool  // the server's echo Write returned nil
	echoed     bool  // the client read the echo
	sBefore    uint64
	writeErr   error
}

// smsg is the fate of one message the test server streamed.
type smsg struct {
	srvConn int32
	sentOK  bool // the server's Write returned nil
	got     bool // the client read it
}

const (
	writing uint8 = iota
	wroteOK
	wroteErr
)

type dialEvent struct {
	start, end time.Time
	err        error
	status     int
}

type discEvent struct {
	at time.Time
	d  wsreconnect.Disconnect
}

func newWorld() *world {
	return &world{changed: make(chan struct{}), gotBytes: map[uint64]int{}}
}

func (w *world) bumpLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *world) bump() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bumpLocked()
}

func (w *world) violation(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violationLocked(format, args...)
}

func (w *world) violationLocked(format string, args ...any) {
	if len(w.bad) < 50 {
		w.bad = append(w.bad, fmt.Sprintf(format, args...))
	}
	w.bumpLocked()
}

// waitFor waits until cond (called with w.mu held) holds, failing the test
// with a goroutine dump after timeout.
func (w *world) waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok, ch, end := cond(), w.changed, w.readEnd
		w.mu.Unlock()
		if ok {
			return
		}
		if end != nil {
			t.Fatalf("waiting for %s: the client stopped: Read returned %v\n%s", what, end, w.summary())
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s\n%s\n%s", timeout, what, w.summary(), goroutines())
		}
	}
}

// --- written by the client side ---

func (w *world) newClientSeq() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cmsgs = append(w.cmsgs, cmsg{discBefore: int32(len(w.disconnects))})
	return uint64(len(w.cmsgs))
}

func (w *world) writeDone(seq uint64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := &w.cmsgs[seq-1]
	if err == nil {
		m.state = wroteOK
	} else {
		m.state, m.writeErr = wroteErr, err
	}
	w.bumpLocked()
}

// clientRead checks and records a message the client read.
func (w *world) clientRead(p []byte) {
	kind, seq, err := decode(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.violationLocked("client read a bad message: %v", err)
		return
	}
	switch kind {
	case kindClient:
		if seq <= w.lastEcho {
			w.violationLocked("client read echo %d after echo %d: duplicate or out of order", seq, w.lastEcho)
			return
		}
		if seq > uint64(len(w.cmsgs)) {
			w.violationLocked("client read echo %d of a message never written", seq)
			return
		}
		w.lastEcho = seq
		w.echoes++
		w.cmsgs[seq-1].echoed = true
	case kindServer:
		if seq <= w.lastS {
			w.violationLocked("client read stream message %d after %d: duplicate or out of order", seq, w.lastS)
			return
		}
		if seq > uint64(len(w.smsgs)) {
			w.violationLocked("client read stream message %d the server never wrote", seq)
			return
		}
		w.lastS = seq
		w.streamGot++
		w.smsgs[seq-1].got = true
		if len(p) > 8<<10 {
			w.gotBytes[seq] = len(p)
		}
	}
	w.bumpLocked()
}

func (w *world) dialStarted(at time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dials = append(w.dials, dialEvent{start: at})
	w.bumpLocked()
	return len(w.dials) - 1
}

func (w *world) dialEnded(i int, err error, status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dials[i].end, w.dials[i].err, w.dials[i].status = time.Now(), err, status
	w.bumpLocked()
}

func (w *world) connected() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.connects = append(w.connects, time.Now())
	w.bumpLocked()
}

func (w *world) disconnected(d wsreconnect.Disconnect) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.disconnects = append(w.disconnects, discEvent{at: time.Now(), d: d})
	w.bumpLocked()
}

// --- written by the test server ---

func (w *world) newServerConn() int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.srvConns++
	return w.srvConns
}

// serverRead records that server connection conn read client message seq,
// when the last stream message it had written was sBefore.
func (w *world) serverRead(conn int32, seq, sBefore uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq == 0 || seq > uint64(len(w.cmsgs)) {
		w.violationLocked("server conn %d read message %d that the client never wrote", conn, seq)
		return
	}
	m := &w.cmsgs[seq-1]
	if m.srvConn != 0 {
		w.violationLocked("server read message %d twice (conns %d and %d)", seq, m.srvConn, conn)
		return
	}
	m.srvConn, m.sBefore = conn, sBefore
	w.bumpLocked()
}

func (w *world) serverEchoed(seq uint64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq > 0 && seq <= uint64(len(w.cmsgs)) {
		w.cmsgs[seq-1].srvEchoOK = ok
	}
}

func (w *world) newServerSeq(conn int32) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.smsgs = append(w.smsgs, smsg{srvConn: conn})
	return uint64(len(w.smsgs))
}

func (w *world) serverSent(seq uint64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.smsgs[seq-1].sentOK = ok
	w.bumpLocked()
}

// --- queries ---

func (w *world) numDisconnects() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.disconnects)
}

func (w *world) numConnects() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.connects)
}

func (w *world) disconnectsSince(n int) []discEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]discEvent(nil), w.disconnects[n:]...)
}

func (w *world) progress() (echoes, stream int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.echoes, w.streamGot
}

// waitDisconnect waits for the disconnect after the first n and returns it.
func (w *world) waitDisconnect(t testing.TB, n int, timeout time.Duration) discEvent {
	t.Helper()
	w.waitFor(t, timeout, fmt.Sprintf("disconnect #%d", n+1), func() bool { return len(w.disconnects) > n })
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.disconnects[n]
}

// waitConnect waits until more than n connections have been made.
func (w *world) waitConnect(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	w.waitFor(t, timeout, fmt.Sprintf("connection #%d", n+1), func() bool { return len(w.connects) > n })
}

// accounting sums up what became of the client's messages.
type accounting struct {
	written, writeErr, echoed          int
	lostBeforeServer, lostEcho         int // Write returned nil; gone with a dropped connection
	errButDelivered                    int // Write returned an error, yet the server read it
	streamSent, streamGot, streamLost  int
	dials, connects, disconnects, bads int
	srvConns                           int32
	serverRecords                      bool
}

func (a accounting) String() string {
	if !a.serverRecords {
		return fmt.Sprintf("client wrote %d messages: %d echoed, %d Write errors, %d lost in flight at a disconnect (the server keeps no records); "+
			"%d dials, %d connections, %d disconnects",
			a.written, a.echoed, a.writeErr, a.lostEcho, a.dials, a.connects, a.disconnects)
	}
	return fmt.Sprintf("client wrote %d messages: %d echoed, %d Write errors (%d of them reached the server anyway), "+
		"%d lost in flight before the server read them, %d read by the server whose echo was lost; "+
		"server streamed %d: %d read by the client, %d lost in flight; "+
		"%d dials, %d connections (%d on the server), %d disconnects",
		a.written, a.echoed, a.writeErr, a.errButDelivered, a.lostBeforeServer, a.lostEcho,
		a.streamSent, a.streamGot, a.streamLost, a.dials, a.connects, a.srvConns, a.disconnects)
}

// checkOpts says what a scenario's end can check.
type checkOpts struct {
	// serverRecords: the test server recorded what it read and wrote (the Go
	// servers do; the Python server does not).
	serverRecords bool
	// marker: a client message written last, on a healthy connection, whose
	// echo the client read (see client.flush); 0 if none.
	marker uint64
	// maxDelay bounds Disconnect.Delay.
	maxDelay time.Duration
	// slack is how late a redial may start after its Delay.
	slack time.Duration
}

// check verifies the invariants of a finished scenario and returns the
// accounting. Call it after the client's writer stopped and, if a marker was
// written, after its echo arrived.
func (w *world) check(t testing.TB, o checkOpts) accounting {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
	}
	for _, b := range w.bad {
		fail("violation: %s", b)
	}
	w.reported = len(w.bad)
	final := int32(len(w.disconnects))
	var a accounting
	a.dials, a.connects, a.disconnects, a.bads, a.srvConns = len(w.dials), len(w.connects), len(w.disconnects), len(w.bad), w.srvConns
	a.serverRecords = o.serverRecords

	// Every client message: written whole or failed, and accounted for.
	for i, m := range w.cmsgs {
		seq := uint64(i + 1)
		switch m.state {
		case writing:
			fail("message %d: Write never returned", seq)
			continue
		case wroteErr:
			a.writeErr++
			if m.srvConn != 0 {
				a.errButDelivered++
			}
			if m.echoed && m.srvConn == 0 && o.serverRecords {
				fail("message %d: echoed but the server never read it", seq)
			}
			continue
		}
		a.written++
		switch {
		case m.echoed:
			a.echoed++
		case o.serverRecords && m.srvConn == 0:
			a.lostBeforeServer++
		default:
			a.lostEcho++
		}
		// No disconnect since the Write began: it went to the final
		// connection, which delivered the marker, so it must have gone
		// all the way round.
		if o.marker != 0 && m.discBefore == final && !m.echoed {
			fail("message %d: Write returned nil on the final, healthy connection but its echo never came (server conn %d)", seq, m.srvConn)
		}
	}
	a.written += a.writeErr

	if o.serverRecords {
		w.checkHolesLocked(fail)
	}
	if o.marker != 0 {
		m := w.cmsgs[o.marker-1]
		if !m.echoed {
			fail("marker %d was never echoed", o.marker)
		} else if o.serverRecords {
			// Everything the server streamed on the final connection
			// before it read the marker precedes the marker's echo.
			for i, s := range w.smsgs[:m.sBefore] {
				if s.srvConn == m.srvConn && s.sentOK && !s.got {
					fail("stream message %d, written before the marker on the final connection %d, never reached the client", i+1, m.srvConn)
				}
			}
		}
	}
	for _, s := range w.smsgs {
		a.streamSent++
		switch {
		case s.got:
			a.streamGot++
		case s.sentOK:
			a.streamLost++
		}
	}
	w.checkDisconnectsLocked(fail, o)
	return a
}

// checkHolesLocked: on one connection TCP delivers in order, so the messages
// a connection carried form an unbroken run. A message missing between two
// that arrived on the same connection was lost, not cut off by a drop.
func (w *world) checkHolesLocked(fail func(string, ...any)) {
	type span struct{ lo, hi uint64 }
	read := map[int32]*span{}    // client messages each server connection read
	echoed := map[int32]uint64{} // highest echo the client read, per server connection
	for i, m := range w.cmsgs {
		seq := uint64(i + 1)
		if m.srvConn == 0 {
			continue
		}
		if sp := read[m.srvConn]; sp == nil {
			read[m.srvConn] = &span{seq, seq}
		} else {
			sp.hi = seq
		}
		if m.echoed {
			echoed[m.srvConn] = seq
		}
	}
	for conn, sp := range read {
		for seq := sp.lo; seq <= sp.hi; seq++ {
			m := w.cmsgs[seq-1]
			if m.state == wroteOK && m.srvConn != conn {
				fail("message %d: Write returned nil, yet server conn %d read %d and %d around it and not it (read by conn %d)", seq, conn, sp.lo, sp.hi, m.srvConn)
			}
		}
		for seq := sp.lo; seq < echoed[conn]; seq++ {
			m := w.cmsgs[seq-1]
			if m.srvConn == conn && m.srvEchoOK && !m.echoed {
				fail("echo of message %d: server conn %d wrote it, and the client read a later echo from that connection but not this one", seq, conn)
			}
		}
	}
	got := map[int32]uint64{} // highest stream message the client read, per connection
	for i, s := range w.smsgs {
		if s.got {
			got[s.srvConn] = uint64(i + 1)
		}
	}
	for i, s := range w.smsgs {
		seq := uint64(i + 1)
		if s.sentOK && !s.got && seq < got[s.srvConn] {
			fail("stream message %d: server conn %d wrote it, and the client read a later one from that connection but not this one", seq, s.srvConn)
		}
	}
}

// checkDisconnectsLocked: every Disconnect is consistent, and no redial came
// before its delay (no hot loop) or long after it (no stall).
func (w *world) checkDisconnectsLocked(fail func(string, ...any), o checkOpts) {
	for i, ev := range w.disconnects {
		d := ev.d
		if d.Attempt < 1 {
			fail("disconnect %d: Attempt %d", i+1, d.Attempt)
		}
		if d.Reconnect != (d.Decision != wsreconnect.Stop) {
			fail("disconnect %d: Reconnect %v with decision %v", i+1, d.Reconnect, d.Decision)
		}
		if want := wsreconnect.DefaultPolicy(d); d.Decision != want {
			fail("disconnect %d (%v): decision %v, DefaultPolicy says %v", i+1, d, d.Decision, want)
		}
		if d.Delay < 0 || (o.maxDelay > 0 && d.Delay > o.maxDelay) {
			fail("disconnect %d: delay %v outside [0, %v]", i+1, d.Delay, o.maxDelay)
		}
		if !d.Reconnect {
			if i != len(w.disconnects)-1 {
				fail("disconnect %d stopped the Conn, yet %d more followed", i+1, len(w.disconnects)-1-i)
			}
			continue
		}
		// The next dial must start no sooner than the delay.
		var next *dialEvent
		for j := range w.dials {
			if w.dials[j].start.After(ev.at) {
				next = &w.dials[j]
				break
			}
		}
		if next == nil {
			continue // closed during the wait
		}
		gap := next.start.Sub(ev.at)
		if gap < d.Delay {
			fail("disconnect %d (%v): redialled after %v, sooner than its delay %v", i+1, d, gap, d.Delay)
		}
		if o.slack > 0 && gap > d.Delay+o.slack {
			fail("disconnect %d (%v): redialled after %v, more than %v past its delay %v", i+1, d, gap, o.slack, d.Delay)
		}
	}
}

func (w *world) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "world: %d client messages (%d echoes read), %d stream messages (%d read), %d dials, %d connects, %d disconnects\n",
		len(w.cmsgs), w.echoes, len(w.smsgs), w.streamGot, len(w.dials), len(w.connects), len(w.disconnects))
	start := 0
	if len(w.disconnects) > 20 {
		start = len(w.disconnects) - 20
	}
	for i, ev := range w.disconnects[start:] {
		fmt.Fprintf(&b, "  disconnect %d at %s: %v\n", start+i+1, ev.at.Format("15:04:05.000"), ev.d)
	}
	for _, s := range w.bad {
		fmt.Fprintf(&b, "  violation: %s\n", s)
	}
	return b.String()
}

// reportLate reports violations recorded after check ran.
func (w *world) reportLate(t testing.TB) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.bad[w.reported:] {
		t.Errorf("violation: %s", b)
	}
	w.reported = len(w.bad)
}

// goroutines returns a dump of every goroutine's stack.
func goroutines() string {
	buf := make([]byte, 1<<20)
	return "goroutines:\n" + string(buf[:runtime.Stack(buf, true)])
}

// isHeartbeat reports whether d was the heartbeat's doing.
func isHeartbeat(d wsreconnect.Disconnect) bool {
	return errors.Is(d.Err, wsreconnect.ErrHeartbeatTimeout)
}
