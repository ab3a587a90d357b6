package resume

import "github.com/wsreconnect/wsreconnect/internal/hooks"

// Trace holds callbacks that observe what a Client's sessions do, beside
// the wsreconnect.Trace of its Conn (give that one with WithConnOptions);
// give it to Dial with WithTrace. Any field may be nil. As with
// wsreconnect.Trace, several may be given, each is called in the order
// given, events arrive in order on a goroutine of the Client's that runs
// only while events wait, and a hook never blocks the Client: while 1,024
// events wait, newer ones are dropped (Stats.TraceDropped counts them).
type Trace struct {
	// SessionStarted is called when the server starts a session for the
	// Client: on its first connection, and when a session was not
	// recovered (the server lost it: Read reports that with the messages
	// never confirmed).
	SessionStarted func(SessionInfo)
	// Resumed is called when a connection resumes the session.
	Resumed func(ResumedInfo)
}

// SessionInfo describes a session the server started.
type SessionInfo struct {
	ID string
	// Lost is the session it replaces, the one not recovered; "" for the
	// first. Unconfirmed is how many of Lost's reliable messages the server
	// had not acknowledged.
	Lost        string
	Unconfirmed int
}

// ResumedInfo describes a connection that resumed the session.
type ResumedInfo struct {
	ID string
	// Replayed is how many reliable messages the Client writes again at
	// the start of the connection, because the server had not acknowledged
	// them.
	Replayed int
}

// WithTrace has the Client call t's hooks (see Trace). It may be given more
// than once. A nil Trace is an invalid option. Client only. Default: none.
func WithTrace(t *Trace) Option {
	return option{name: "WithTrace", side: clientSide, fn: func(c *config) {
		if t == nil {
			c.fail("WithTrace: nil Trace")
			return
		}
		c.traces = append(c.traces, *t)
	}}
}

// traceEvent is one event for the hooks: a session started (resumed false)
// or resumed.
type traceEvent struct {
	resumed     bool
	id, lost    string
	unconfirmed int
	replayed    int
}

// tracer delivers a Client's events to its Traces (see hooks.Queue); nil
// without WithTrace.
type tracer struct {
	traces []Trace
	events hooks.Queue[traceEvent]
}

func newTracer(traces []Trace) *tracer {
	if len(traces) == 0 {
		return nil
	}
	t := &tracer{traces: traces}
	t.events.Call = t.call
	return t
}

func (t *tracer) emit(ev traceEvent) {
	if t != nil {
		t.events.Emit(ev)
	}
}

func (t *tracer) stop() {
	if t != nil {
		t.events.Stop()
	}
}

func (t *tracer) dropped() uint64 {
	if t == nil {
		return 0
	}
	return t.events.Dropped()
}

func (t *tracer) call(ev *traceEvent) {
	for i := range t.traces {
		tr := &t.traces[i]
		switch {
		case ev.resumed && tr.Resumed != nil:
			tr.Resumed(ResumedInfo{ID: ev.id, Replayed: ev.replayed})
		case !ev.resumed && tr.SessionStarted != nil:
			tr.SessionStarted(SessionInfo{ID: ev.id, Lost: ev.lost, Unconfirmed: ev.unconfirmed})
		}
	}
}
