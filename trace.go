package wsreconnect

import (
	"time"

	"github.com/wsreconnect/wsreconnect/internal/hooks"
)

// Trace holds callbacks that observe what a Conn does, in the manner of
// net/http/httptrace; give it to Dial with WithTrace. Any field may be nil.
//
// Several Traces may observe one Conn (WithTrace given more than once: an
// instrumentation package's and the application's own); for each event,
// each is called in the order they were given. Events are delivered in the
// order they happened, one at a time, on a goroutine of the Conn's that
// runs only while events wait: a hook never blocks the Conn. A slow hook
// delays the hooks after it; while 1,024 events wait, newer ones are
// dropped (Stats.TraceDropped counts them) rather than held. Hooks are
// application code: Close does not wait for them. The events that happened
// before the Conn ended (the last StateChanged among them) are delivered,
// possibly after Close has returned; none that happens after.
//
// A Conn without a Trace pays nothing for one.
type Trace struct {
	// DialStart is called when a dial attempt begins (after the dial
	// limiter, if any).
	DialStart func(DialStartInfo)
	// DialDone is called when the DialFunc has returned.
	DialDone func(DialDoneInfo)
	// Connected is called when a connection is up (after OnConnect and the
	// send queue).
	Connected func(ConnectedInfo)
	// Disconnected is called with each Disconnect, as OnDisconnect is.
	Disconnected func(Disconnect)
	// WaitStart is called when the wait before the next attempt begins.
	WaitStart func(WaitStartInfo)
	// PingSent is called when the heartbeat sends a probe (a protocol ping,
	// or the ping function), PingAnswered when a protocol ping's pong came
	// back. Not for the pings placed among written data (see
	// WithHeartbeat): their answer waits for the data.
	PingSent     func()
	PingAnswered func(PingAnsweredInfo)
	// QueueChanged is called when the send queue (WithSendQueue) grows or
	// shrinks, when a Write finds it full, and when the Conn ends with
	// messages in it (Dropped).
	QueueChanged func(QueueInfo)
	// StateChanged is called first with the state the Conn starts in
	// (StateConnecting, as Dial begins), then each time State changes; the
	// last call is StateClosed.
	StateChanged func(State)
}

// DialStartInfo describes a dial attempt that begins.
type DialStartInfo struct {
	// Attempt is the number of the dial, counted since Dial or since the
	// last stable connection ended (as Stats.Attempt while connected).
	Attempt int
}

// DialDoneInfo describes a dial attempt whose DialFunc has returned.
type DialDoneInfo struct {
	Attempt  int
	Duration time.Duration
	// Err is nil when the handshake succeeded (the connection may still
	// fail in OnConnect); else what the Disconnect's Err will say.
	Err error
	// HTTPStatus is the status of a refused handshake, else 0.
	HTTPStatus int
}

// ConnectedInfo describes a connection that is up.
type ConnectedInfo struct {
	Attempt int
	// Outage is how long the Conn was without a connection before this
	// one (since Dial, for the first).
	Outage      time.Duration
	Subprotocol string
}

// WaitStartInfo describes the wait before the next attempt.
type WaitStartInfo struct {
	Delay time.Duration
}

// PingAnsweredInfo describes a heartbeat ping whose pong came back.
type PingAnsweredInfo struct {
	RTT time.Duration
}

// QueueInfo describes the send queue after a change.
type QueueInfo struct {
	// Depth is how many messages wait.
	Depth int
	// Full reports a Write refused with ErrSendQueueFull.
	Full bool
	// Dropped is how many messages the Conn dropped unsent as it ended
	// (Close, CloseNow, a stop: the UnsentError's Count); Depth is 0 then.
	Dropped int
}

// WithTrace has the Conn call t's hooks (see Trace). It may be given more
// than once: every Trace is called. A nil Trace is an invalid option.
// Default: none.
func WithTrace(t *Trace) Option {
	return optionFunc(func(c *config) {
		if t == nil {
			c.fail("WithTrace: nil Trace")
			return
		}
		c.traces = append(c.traces, *t)
	})
}

// traceKind says which hook an event is for.
type traceKind uint8

const (
	evDialStart traceKind = iota
	evDialDone
	evConnected
	evDisconnected
	evWaitStart
	evPingSent
	evPingAnswered
	evQueue
	evState
)

// traceEvent is one event, by value: queueing one allocates nothing (the
// queue's array is reused).
type traceEvent struct {
	kind       traceKind
	attempt    int
	d          time.Duration
	err        error
	status     int
	depth      int
	dropped    int
	full       bool
	state      State
	text       string
	disconnect Disconnect
}

// tracer delivers a Conn's events to its Traces (see hooks.Queue).
type tracer struct {
	traces []Trace
	events hooks.Queue[traceEvent]
}

func newTracer(traces []Trace) *tracer {
	t := &tracer{traces: traces}
	t.events.Call = t.call
	return t
}

// emit queues ev for the hooks. It never blocks on them. (Not inlined:
// its copy of ev would sit in the frame of every function that emits, the
// supervisor's among them, whose stack an idle Conn keeps.)
//
//go:noinline
func (t *tracer) emit(ev traceEvent) { t.events.Emit(ev) }

// stop queues no more events: the Conn has ended. Those waiting are still
// delivered.
func (t *tracer) stop() { t.events.Stop() }

func (t *tracer) droppedEvents() uint64 { return t.events.Dropped() }

// call calls every Trace's hook for ev.
func (t *tracer) call(ev *traceEvent) {
	for i := range t.traces {
		tr := &t.traces[i]
		switch ev.kind {
		case evDialStart:
			if tr.DialStart != nil {
				tr.DialStart(DialStartInfo{Attempt: ev.attempt})
			}
		case evDialDone:
			if tr.DialDone != nil {
				tr.DialDone(DialDoneInfo{Attempt: ev.attempt, Duration: ev.d, Err: ev.err, HTTPStatus: ev.status})
			}
		case evConnected:
			if tr.Connected != nil {
				tr.Connected(ConnectedInfo{Attempt: ev.attempt, Outage: ev.d, Subprotocol: ev.text})
			}
		case evDisconnected:
			if tr.Disconnected != nil {
				tr.Disconnected(ev.disconnect)
			}
		case evWaitStart:
			if tr.WaitStart != nil {
				tr.WaitStart(WaitStartInfo{Delay: ev.d})
			}
		case evPingSent:
			if tr.PingSent != nil {
				tr.PingSent()
			}
		case evPingAnswered:
			if tr.PingAnswered != nil {
				tr.PingAnswered(PingAnsweredInfo{RTT: ev.d})
			}
		case evQueue:
			if tr.QueueChanged != nil {
				tr.QueueChanged(QueueInfo{Depth: ev.depth, Full: ev.full, Dropped: ev.dropped})
			}
		case evState:
			if tr.StateChanged != nil {
				tr.StateChanged(ev.state)
			}
		}
	}
}
