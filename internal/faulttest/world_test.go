package faulttest

import (
	"errors"
	"fmt"
	"maps"
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

	// compact keeps the ledger's size constant, for the soak: only the
	// last window messages and the last events are kept; older ones are
	// checked as they leave and counted in folded.
	compact bool

	cmsgs []cmsg // client messages, cmsgs[i] is seq cbase+i+1
	cbase uint64
	smsgs []smsg // server stream messages, smsgs[i] is seq sbase+i+1
	sbase uint64

	srvConns int32 // server connection ids handed out (1, 2, ...)

	lastEcho  uint64 // highest client seq whose echo the client read
	lastS     uint64 // highest server seq the client read
	echoes    int    // echoes read by the client
	streamGot int    // server stream messages read by the client
	gotBytes  map[uint64]int

	// Per server connection, for the hole checks (see serverRead and
	// clientRead): the last client message it read, the last echo and the
	// last stream message the client read from it.
	lastRead, lastEchoFrom, lastStreamFrom map[int32]uint64

	bad      []string
	reported int   // violations check has reported
	readEnd  error // why the client's Read stopped, other than Close

	dials       []dialEvent
	connects    []time.Time
	disconnects []discEvent
	// In compact mode, how many of each were checked and dropped.
	dialBase, connBase, discBase int
	codes                        map[int]int // disconnects by close code
	folded                       accounting  // the messages checked and dropped
	compactOpts                  checkOpts   // how to check the disconnects dropped
}

// window is how many messages a compact ledger keeps, at least: 10 s of
// the soak's writer, far more than any message stays in flight.
const window = 2048

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
	return &world{changed: make(chan struct{}), gotBytes: map[uint64]int{},
		lastRead: map[int32]uint64{}, lastEchoFrom: map[int32]uint64{}, lastStreamFrom: map[int32]uint64{}, codes: map[int]int{}}
}

// cmsg returns client message seq, or nil if it left the window.
func (w *world) cmsg(seq uint64) *cmsg {
	if seq <= w.cbase || seq > w.cbase+uint64(len(w.cmsgs)) {
		return nil
	}
	return &w.cmsgs[seq-w.cbase-1]
}

// smsg returns server stream message seq, or nil if it left the window.
func (w *world) smsg(seq uint64) *smsg {
	if seq <= w.sbase || seq > w.sbase+uint64(len(w.smsgs)) {
		return nil
	}
	return &w.smsgs[seq-w.sbase-1]
}

func (w *world) numClientLocked() uint64 { return w.cbase + uint64(len(w.cmsgs)) }
func (w *world) numServerLocked() uint64 { return w.sbase + uint64(len(w.smsgs)) }
func (w *world) numDiscLocked() int      { return w.discBase + len(w.disconnects) }

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
	if w.compact && len(w.cmsgs) >= 2*window {
		w.foldClientLocked(len(w.cmsgs) - window)
	}
	w.cmsgs = append(w.cmsgs, cmsg{discBefore: int32(w.numDiscLocked())})
	return w.numClientLocked()
}

// foldClientLocked checks the oldest n client messages and counts them in
// folded: they are long past their connection.
func (w *world) foldClientLocked(n int) {
	final := int32(w.numDiscLocked())
	for i, m := range w.cmsgs[:n] {
		seq := w.cbase + uint64(i) + 1
		if m.state == wroteOK && !m.echoed && m.discBefore == final {
			w.violationLocked("message %d: written on the connection that is still up, %d messages ago, never echoed", seq, window)
		}
		w.accountLocked(&w.folded, m, seq, true, w.violationLocked)
		delete(w.gotBytes, seq)
	}
	w.cmsgs = append(w.cmsgs[:0:0], w.cmsgs[n:]...)
	w.cbase += uint64(n)
}

func (w *world) writeDone(seq uint64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.cmsg(seq)
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
		m := w.cmsg(seq)
		if m == nil {
			w.violationLocked("client read echo %d of a message never written, or %d messages late", seq, window)
			return
		}
		w.lastEcho = seq
		w.echoes++
		m.echoed = true
		// The server echoes in order on one connection: every earlier echo
		// it wrote on that connection came before this one.
		if c := m.srvConn; c != 0 {
			for s := max(w.lastEchoFrom[c]+1, w.cbase+1); s < seq; s++ {
				if e := w.cmsg(s); e.srvConn == c && e.srvEchoOK && !e.echoed {
					w.violationLocked("echo of message %d: server conn %d wrote it, and the client read a later echo from that connection (%d) but not this one", s, c, seq)
				}
			}
			w.lastEchoFrom[c] = seq
		}
	case kindServer:
		if seq <= w.lastS {
			w.violationLocked("client read stream message %d after %d: duplicate or out of order", seq, w.lastS)
			return
		}
		m := w.smsg(seq)
		if m == nil {
			w.violationLocked("client read stream message %d the server never wrote, or %d messages late", seq, window)
			return
		}
		w.lastS = seq
		w.streamGot++
		m.got = true
		if len(p) > 8<<10 {
			w.gotBytes[seq] = len(p)
		}
		c := m.srvConn
		for s := max(w.lastStreamFrom[c]+1, w.sbase+1); s < seq; s++ {
			if e := w.smsg(s); e.srvConn == c && e.sentOK && !e.got {
				w.violationLocked("stream message %d: server conn %d wrote it, and the client read a later one from that connection (%d) but not this one", s, c, seq)
			}
		}
		w.lastStreamFrom[c] = seq
	}
	w.bumpLocked()
}

func (w *world) dialStarted(at time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dials = append(w.dials, dialEvent{start: at})
	w.bumpLocked()
	return w.dialBase + len(w.dials) - 1
}

func (w *world) dialEnded(i int, err error, status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i -= w.dialBase; i >= 0 {
		w.dials[i].end, w.dials[i].err, w.dials[i].status = time.Now(), err, status
	}
	w.bumpLocked()
}

func (w *world) connected() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.connects = append(w.connects, time.Now())
	if w.compact && len(w.connects) > 2*eventWindow {
		w.connBase += len(w.connects) - eventWindow
		w.connects = append(w.connects[:0:0], w.connects[len(w.connects)-eventWindow:]...)
	}
	w.bumpLocked()
}

func (w *world) disconnected(d wsreconnect.Disconnect) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.disconnects = append(w.disconnects, discEvent{at: time.Now(), d: d})
	w.codes[int(d.Code)]++
	if w.compact && len(w.disconnects) > 2*eventWindow {
		// Check the oldest, whose next dials are long known, and drop them
		// with the dials before the first that stays.
		n := len(w.disconnects) - eventWindow
		w.checkDisconnectsLocked(w.violationLocked, w.compactOpts, w.disconnects[:n], w.discBase)
		w.discBase += n
		w.disconnects = append(w.disconnects[:0:0], w.disconnects[n:]...)
		keep := 0
		for keep < len(w.dials) && w.dials[keep].start.Before(w.disconnects[0].at) {
			keep++
		}
		if keep > 0 {
			keep-- // the dial whose end may be the first kept disconnect
		}
		w.dialBase += keep
		w.dials = append(w.dials[:0:0], w.dials[keep:]...)
	}
	w.bumpLocked()
}

// eventWindow is how many dials, connects and disconnects a compact
// ledger keeps.
const eventWindow = 64

// setCompact makes the ledger's size constant (see world.compact); o says
// how to check the disconnects it drops.
func (w *world) setCompact(o checkOpts) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.compact, w.compactOpts = true, o
}

// --- written by the test server ---

func (w *world) newServerConn() int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.srvConns++
	if w.compact {
		old := w.srvConns - eventWindow
		delete(w.lastRead, old)
		delete(w.lastEchoFrom, old)
		delete(w.lastStreamFrom, old)
	}
	return w.srvConns
}

// serverRead records that server connection conn read client message seq,
// when the last stream message it had written was sBefore.
func (w *world) serverRead(conn int32, seq, sBefore uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.cmsg(seq)
	if m == nil {
		w.violationLocked("server conn %d read message %d that the client never wrote, or read it twice (%d messages late)", conn, seq, window)
		return
	}
	if m.srvConn != 0 {
		w.violationLocked("server read message %d twice (conns %d and %d)", seq, m.srvConn, conn)
		return
	}
	m.srvConn, m.sBefore = conn, sBefore
	// On one connection the server reads in order: every message written
	// between the last one this connection read and this one, whose Write
	// returned nil, should have come first. (Each Write finishes before
	// the next begins: one writer.)
	if last, ok := w.lastRead[conn]; ok {
		for s := max(last+1, w.cbase+1); s < seq; s++ {
			if h := w.cmsg(s); h.state == wroteOK {
				w.violationLocked("message %d: Write returned nil, yet server conn %d read %d and %d around it and not it (read by conn %d)", s, conn, last, seq, h.srvConn)
			}
		}
	}
	w.lastRead[conn] = seq
	w.bumpLocked()
}

func (w *world) serverEchoed(seq uint64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := w.cmsg(seq); m != nil {
		m.srvEchoOK = ok
	}
}

func (w *world) newServerSeq(conn int32) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.compact && len(w.smsgs) >= 2*window {
		n := len(w.smsgs) - window
		for _, m := range w.smsgs[:n] {
			w.folded.streamSent++
			switch {
			case m.got:
				w.folded.streamGot++
			case m.sentOK:
				w.folded.streamLost++
			}
		}
		w.smsgs = append(w.smsgs[:0:0], w.smsgs[n:]...)
		w.sbase += uint64(n)
	}
	w.smsgs = append(w.smsgs, smsg{srvConn: conn})
	return w.numServerLocked()
}

func (w *world) serverSent(seq uint64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.serverSentLocked(seq, ok)
}

// serverSentLocked records the outcome of the server's Write of stream
// message seq. w.mu must be held.
func (w *world) serverSentLocked(seq uint64, ok bool) {
	if m := w.smsg(seq); m != nil {
		m.sentOK = ok
	}
	w.bumpLocked()
}

// --- queries ---

func (w *world) numDisconnects() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.numDiscLocked()
}

func (w *world) numConnects() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.connBase + len(w.connects)
}

// disconnectsSince returns the disconnects after the first n (of those the
// ledger keeps).
func (w *world) disconnectsSince(n int) []discEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]discEvent(nil), w.disconnects[max(n-w.discBase, 0):]...)
}

// codeCounts returns the disconnects so far, by close code.
func (w *world) codeCounts() map[int]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.codes)
}

func (w *world) progress() (echoes, stream int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.echoes, w.streamGot
}

// waitDisconnect waits for the disconnect after the first n and returns it.
func (w *world) waitDisconnect(t testing.TB, n int, timeout time.Duration) discEvent {
	t.Helper()
	w.waitFor(t, timeout, fmt.Sprintf("disconnect #%d", n+1), func() bool { return w.numDiscLocked() > n })
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.disconnects[n-w.discBase]
}

// waitConnect waits until more than n connections have been made.
func (w *world) waitConnect(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	w.waitFor(t, timeout, fmt.Sprintf("connection #%d", n+1), func() bool { return w.connBase+len(w.connects) > n })
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
// written, after its echo arrived. (The hole checks ran as messages
// arrived: see serverRead and clientRead.)
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
	final := int32(w.numDiscLocked())
	a := w.folded
	a.dials, a.connects, a.disconnects, a.bads, a.srvConns = w.dialBase+len(w.dials), w.connBase+len(w.connects), int(final), len(w.bad), w.srvConns
	a.serverRecords = o.serverRecords

	// Every client message: written whole or failed, and accounted for.
	for i, m := range w.cmsgs {
		seq := w.cbase + uint64(i) + 1
		// No disconnect since the Write began: it went to the final
		// connection, which delivered the marker, so it must have gone
		// all the way round.
		if o.marker != 0 && m.state == wroteOK && m.discBefore == final && !m.echoed {
			fail("message %d: Write returned nil on the final, healthy connection but its echo never came (server conn %d)", seq, m.srvConn)
		}
		w.accountLocked(&a, m, seq, o.serverRecords, fail)
	}
	if o.marker != 0 {
		m := w.cmsg(o.marker)
		if m == nil || !m.echoed {
			fail("marker %d was never echoed", o.marker)
		} else if o.serverRecords {
			// Everything the server streamed on the final connection
			// before it read the marker precedes the marker's echo.
			for seq := max(w.sbase+1, 1); seq <= m.sBefore; seq++ {
				if s := w.smsg(seq); s.srvConn == m.srvConn && s.sentOK && !s.got {
					fail("stream message %d, written before the marker on the final connection %d, never reached the client", seq, m.srvConn)
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
	w.checkDisconnectsLocked(fail, o, w.disconnects, w.discBase)
	return a
}

// accountLocked counts client message m (seq) in a, and reports what is
// wrong with it.
func (w *world) accountLocked(a *accounting, m cmsg, seq uint64, serverRecords bool, fail func(string, ...any)) {
	switch m.state {
	case writing:
		fail("message %d: Write never returned", seq)
		return
	case wroteErr:
		a.writeErr++
		a.written++
		if m.srvConn != 0 {
			a.errButDelivered++
		}
		if m.echoed && m.srvConn == 0 && serverRecords {
			fail("message %d: echoed but the server never read it", seq)
		}
		return
	}
	a.written++
	switch {
	case m.echoed:
		a.echoed++
	case serverRecords && m.srvConn == 0:
		a.lostBeforeServer++
	default:
		a.lostEcho++
	}
}

// checkDisconnectsLocked: every Disconnect in ds (the first is number
// base+1) is consistent, and no redial came before its delay (no hot loop)
// or long after it (no stall).
func (w *world) checkDisconnectsLocked(fail func(string, ...any), o checkOpts, ds []discEvent, base int) {
	last := w.numDiscLocked()
	for i, ev := range ds {
		n := base + i + 1
		d := ev.d
		if d.Attempt < 1 {
			fail("disconnect %d: Attempt %d", n, d.Attempt)
		}
		if d.Reconnect != (d.Decision != wsreconnect.Stop) {
			fail("disconnect %d: Reconnect %v with decision %v", n, d.Reconnect, d.Decision)
		}
		if want := wsreconnect.DefaultPolicy(d); d.Decision != want {
			fail("disconnect %d (%v): decision %v, DefaultPolicy says %v", n, d, d.Decision, want)
		}
		if d.Delay < 0 || (o.maxDelay > 0 && d.Delay > o.maxDelay) {
			fail("disconnect %d: delay %v outside [0, %v]", n, d.Delay, o.maxDelay)
		}
		if !d.Reconnect {
			if n != last {
				fail("disconnect %d stopped the Conn, yet %d more followed", n, last-n)
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
			fail("disconnect %d (%v): redialled after %v, sooner than its delay %v", n, d, gap, d.Delay)
		}
		if o.slack > 0 && gap > d.Delay+o.slack {
			fail("disconnect %d (%v): redialled after %v, more than %v past its delay %v", n, d, gap, o.slack, d.Delay)
		}
	}
}

func (w *world) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "world: %d client messages (%d echoes read), %d stream messages (%d read), %d dials, %d connects, %d disconnects\n",
		w.numClientLocked(), w.echoes, w.numServerLocked(), w.streamGot, w.dialBase+len(w.dials), w.connBase+len(w.connects), w.numDiscLocked())
	start := 0
	if len(w.disconnects) > 20 {
		start = len(w.disconnects) - 20
	}
	for i, ev := range w.disconnects[start:] {
		fmt.Fprintf(&b, "  disconnect %d at %s: %v\n", w.discBase+start+i+1, ev.at.Format("15:04:05.000"), ev.d)
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
