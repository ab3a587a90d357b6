package otelwsreconnect

import (
	"context"
	"errors"
	"sync"

	"github.com/wsreconnect/wsreconnect"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the name of the Meter the metrics are recorded with (the
// instrumentation scope): this package's import path.
const ScopeName = "github.com/wsreconnect/wsreconnect/otelwsreconnect"

// Bucket boundaries, in seconds, given to each histogram as advice (a View
// of the MeterProvider overrides them).
var (
	// Connections last from a server that drops at once (a tenth of a
	// second) to a week; 10 s is wsreconnect's DefaultStableUptime, so
	// the buckets tell the connections that reset the schedules from those
	// that did not.
	connectionBounds = []float64{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 172800, 604800}
	// A dial takes milliseconds on a LAN, a few hundred over the internet
	// with TLS, and ends at the dial timeout (DefaultDialTimeout 10 s): a
	// timed-out dial lands above 10.
	dialBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// An outage lasts from a Reconnect's immediate redial (milliseconds)
	// through the schedules (1 s to 30 s by default) and Retry-After (up to
	// 5 min) to a server down for hours.
	outageBounds = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 14400, 86400}
	// A pong comes back in a millisecond on loopback, tens over a
	// continent, seconds from a peer that struggles; past the heartbeat
	// timeout (DefaultHeartbeatTimeout 10 s) the connection is dropped.
	pingBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

// instruments are the metrics of one Meter.
type instruments struct {
	connDuration metric.Float64Histogram
	dialAttempts metric.Int64Counter
	dialDuration metric.Float64Histogram
	outage       metric.Float64Histogram
	conns        metric.Int64UpDownCounter
	ping         metric.Float64Histogram
	queueLength  metric.Int64UpDownCounter
	queueDropped metric.Int64Counter
}

func newInstruments(m metric.Meter) (instruments, error) {
	var (
		in   instruments
		errs = make([]error, 8)
	)
	in.connDuration, errs[0] = m.Float64Histogram("websocket.client.connection.duration",
		metric.WithUnit("s"),
		metric.WithDescription("How long each WebSocket connection was up, from its handshake to its end."),
		metric.WithExplicitBucketBoundaries(connectionBounds...))
	in.dialAttempts, errs[1] = m.Int64Counter("websocket.client.dial.attempts",
		metric.WithUnit("{attempt}"),
		metric.WithDescription("Dial attempts that returned, by outcome."))
	in.dialDuration, errs[2] = m.Float64Histogram("websocket.client.dial.duration",
		metric.WithUnit("s"),
		metric.WithDescription("How long each dial attempt took, handshake included."),
		metric.WithExplicitBucketBoundaries(dialBounds...))
	in.outage, errs[3] = m.Float64Histogram("websocket.client.outage.duration",
		metric.WithUnit("s"),
		metric.WithDescription("How long a client was without a connection, from losing one to the next one up."),
		metric.WithExplicitBucketBoundaries(outageBounds...))
	in.conns, errs[4] = m.Int64UpDownCounter("websocket.client.connection.count",
		metric.WithUnit("{connection}"),
		metric.WithDescription("Reconnecting clients (wsreconnect Conns) by state: connecting or connected."))
	in.ping, errs[5] = m.Float64Histogram("websocket.client.ping.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Round-trip time of the heartbeat's pings, from the ping sent to its pong."),
		metric.WithExplicitBucketBoundaries(pingBounds...))
	in.queueLength, errs[6] = m.Int64UpDownCounter("websocket.client.send_queue.length",
		metric.WithUnit("{message}"),
		metric.WithDescription("Messages waiting in the send queues for the next connection."))
	in.queueDropped, errs[7] = m.Int64Counter("websocket.client.send_queue.dropped",
		metric.WithUnit("{message}"),
		metric.WithDescription("Messages the send queue did not send: refused when full, or dropped by Close."))
	return in, errors.Join(errs...)
}

// NewTrace returns a Trace that records a Conn's metrics (see the package
// documentation); give it to wsreconnect.Dial with wsreconnect.WithTrace.
// It observes one Conn: call NewTrace for each (the Traces of one
// MeterProvider share its instruments). An invalid option is an error
// wrapping ErrInvalidOption; so is a MeterProvider that fails to make an
// instrument.
func NewTrace(opts ...Option) (*wsreconnect.Trace, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	in, err := newInstruments(cfg.provider.Meter(ScopeName))
	if err != nil {
		return nil, err
	}
	o := newObserver(in, cfg.attrs)
	return &wsreconnect.Trace{
		DialStart:    o.dialStart,
		DialDone:     o.dialDone,
		Connected:    o.connected,
		Disconnected: o.disconnected,
		PingAnswered: o.pingAnswered,
		QueueChanged: o.queueChanged,
		StateChanged: o.stateChanged,
		// WaitStart and PingSent add nothing the others do not say.
	}, nil
}

// errShared is reported (otel.Handle) when a Trace sees events after its
// Conn closed: it was given to more than one Conn.
var errShared = errors.New("otelwsreconnect: a Trace saw events after its Conn closed: it was given to more than one Conn (call NewTrace for each); it records nothing more")

// observer turns one Conn's events into measurements. The Conn delivers
// its events one at a time, in order; the mutex only keeps a Trace given
// to several Conns by mistake from racing (see errShared).
type observer struct {
	in   instruments
	base []attribute.KeyValue // the caller's attributes

	// Attribute sets made once, for the events that may come often.
	all, isConnecting, isConnected, droppedFull, droppedClosed metric.MeasurementOption

	mu      sync.Mutex
	counted bool              // the Conn is counted in state
	state   wsreconnect.State // the state it is counted in
	wasUp   bool              // a connection was up before: the next one ends an outage
	depth   int64             // the send queue's length, as last reported
	closed  bool              // StateChanged(closed) came
	dropped bool              // after closed, the queue's drop came
	shared  bool              // errShared was reported
}

func newObserver(in instruments, attrs []attribute.KeyValue) *observer {
	o := &observer{in: in, base: attrs}
	set := func(extra ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(o.attrs(extra...))
	}
	o.all = set()
	o.isConnecting = set(keyState.String("connecting"))
	o.isConnected = set(keyState.String("connected"))
	o.droppedFull = set(keyDropReason.String("full"))
	o.droppedClosed = set(keyDropReason.String("closed"))
	return o
}

// attrs returns the caller's attributes with extra.
func (o *observer) attrs(extra ...attribute.KeyValue) attribute.Set {
	kvs := make([]attribute.KeyValue, 0, len(o.base)+len(extra))
	return attribute.NewSet(append(append(kvs, o.base...), extra...)...)
}

// bg is the ctx of every measurement: the hooks have none.
var bg = context.Background()

// begin is called first for every event, under o.mu. It counts the Conn as
// connecting from its first event (StateChanged(connecting), unless the
// Conn's Trace queue dropped it), and reports whether the event is to be recorded: after
// closed, only the send queue's drop is.
func (o *observer) begin(queueDrop bool) bool {
	if o.closed {
		if queueDrop && !o.dropped {
			o.dropped = true
			return true
		}
		if !o.shared {
			o.shared = true
			otel.Handle(errShared)
		}
		return false
	}
	if !o.counted {
		o.counted, o.state = true, wsreconnect.StateConnecting
		o.in.conns.Add(bg, 1, o.isConnecting)
	}
	return true
}

func (o *observer) stateOption(s wsreconnect.State) metric.MeasurementOption {
	if s == wsreconnect.StateConnected {
		return o.isConnected
	}
	return o.isConnecting
}

func (o *observer) stateChanged(s wsreconnect.State) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.begin(false) {
		return
	}
	switch {
	case s == wsreconnect.StateClosed:
		o.in.conns.Add(bg, -1, o.stateOption(o.state))
		o.closed = true
	case s != o.state:
		// Not a change only if the event between was dropped (the Conn's
		// Trace queue was full): the count stays right.
		o.in.conns.Add(bg, -1, o.stateOption(o.state))
		o.in.conns.Add(bg, 1, o.stateOption(s))
		o.state = s
	}
}

// dialStart records nothing, but counts the Conn as connecting if this is
// its first event (begin).
func (o *observer) dialStart(wsreconnect.DialStartInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.begin(false)
}

func (o *observer) dialDone(i wsreconnect.DialDoneInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.begin(false) {
		return
	}
	outcome := keyOutcome.String(dialOutcome(i))
	o.in.dialDuration.Record(bg, i.Duration.Seconds(), metric.WithAttributeSet(o.attrs(outcome)))
	if i.HTTPStatus != 0 {
		o.in.dialAttempts.Add(bg, 1, metric.WithAttributeSet(o.attrs(outcome, keyStatusCode.Int(i.HTTPStatus))))
	} else {
		o.in.dialAttempts.Add(bg, 1, metric.WithAttributeSet(o.attrs(outcome)))
	}
}

func (o *observer) connected(i wsreconnect.ConnectedInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.begin(false) {
		return
	}
	// The first connection's Outage is the time since Dial: not an outage.
	if o.wasUp {
		o.in.outage.Record(bg, i.Outage.Seconds(), o.all)
	}
	o.wasUp = true
}

func (o *observer) disconnected(d wsreconnect.Disconnect) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.begin(false) {
		return
	}
	// Uptime is 0 for a failed attempt (the dial, OnConnect or the send
	// queue failed): no connection was up.
	if d.Uptime > 0 {
		o.in.connDuration.Record(bg, d.Uptime.Seconds(), metric.WithAttributeSet(o.attrs(
			keyCodeClass.String(CloseCodeClass(d.Code)), keyDecision.String(decision(d.Decision)))))
	}
}

func (o *observer) pingAnswered(i wsreconnect.PingAnsweredInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.begin(false) {
		return
	}
	o.in.ping.Record(bg, i.RTT.Seconds(), o.all)
}

func (o *observer) queueChanged(i wsreconnect.QueueInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.begin(o.closed) {
		return
	}
	depth := int64(i.Depth)
	switch {
	case i.Dropped > 0:
		// The Conn ended with these waiting (after its StateChanged(closed)).
		o.in.queueDropped.Add(bg, int64(i.Dropped), o.droppedClosed)
	case i.Full:
		o.in.queueDropped.Add(bg, 1, o.droppedFull)
	}
	if n := depth - o.depth; n != 0 {
		o.in.queueLength.Add(bg, n, o.all)
	}
	o.depth = depth
}
