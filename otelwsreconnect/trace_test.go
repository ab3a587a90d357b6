package otelwsreconnect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
)

// TestMain routes OpenTelemetry's errors to otelErrors, and fails the run
// if a goroutine outlives the tests.
func TestMain(m *testing.M) {
	otel.SetErrorHandler(&otelErrors)
	goleak.VerifyTestMain(m)
}

// otelErrors holds the errors given to otel.Handle.
var otelErrors errorLog

// errorLog is an otel.ErrorHandler that keeps what it is given.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) Handle(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

// handled returns the errors handled during the test so far (the tests
// do not run in parallel), and fails t at its end for any that it did not
// ask for.
func handled(t *testing.T) func() []error {
	otelErrors.mu.Lock()
	n := len(otelErrors.errs)
	otelErrors.mu.Unlock()
	asked := 0
	since := func() []error {
		otelErrors.mu.Lock()
		defer otelErrors.mu.Unlock()
		return slices.Clone(otelErrors.errs[n:])
	}
	t.Cleanup(func() {
		if errs := since(); len(errs) > asked {
			t.Errorf("otel.Handle was given %v", errs[asked:])
		}
	})
	return func() []error {
		errs := since()
		asked = len(errs)
		return errs
	}
}

// base is the attribute every test Trace is made with: every measurement
// must carry it.
var base = attribute.String("server.address", "feed.test")

// newTestTrace returns a Trace recording into a ManualReader, and what
// otel.Handle is given meanwhile (see handled).
func newTestTrace(t *testing.T) (*wsreconnect.Trace, *sdkmetric.ManualReader, func() []error) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	tr, err := NewTrace(WithMeterProvider(mp), WithAttributes(base))
	if err != nil {
		t.Fatal(err)
	}
	return tr, r, handled(t)
}

// points collects what r holds, one line per data point:
//
//	name{key=value,...} = 3                          a sum
//	name{key=value,...} count=2 sum=0.5 (0.1,0.25]:1 (0.25,0.5]:1
//
// a histogram with its non-empty buckets. It fails t if a point lacks the
// base attribute, and leaves that attribute out of the lines.
func points(t *testing.T, r *sdkmetric.ManualReader) []string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var lines []string
	key := func(name string, set attribute.Set) string {
		if v, ok := set.Value(base.Key); !ok || v != base.Value {
			t.Errorf("%s%v lacks %v", name, set.ToSlice(), base)
		}
		var kvs []string
		for _, kv := range set.ToSlice() {
			if kv.Key != base.Key {
				kvs = append(kvs, fmt.Sprintf("%s=%s", kv.Key, kv.Value.String()))
			}
		}
		return name + "{" + strings.Join(kvs, ",") + "}"
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, ScopeName)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s = %d", key(m.Name, p.Attributes), p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					line := fmt.Sprintf("%s count=%d sum=%g", key(m.Name, p.Attributes), p.Count, p.Sum)
					for i, n := range p.BucketCounts {
						if n > 0 {
							line += fmt.Sprintf(" %s:%d", bucket(p.Bounds, i), n)
						}
					}
					lines = append(lines, line)
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	slices.Sort(lines)
	return lines
}

// bucket names the i-th bucket of bounds: (lo,hi].
func bucket(bounds []float64, i int) string {
	lo, hi := "-Inf", "+Inf"
	if i > 0 {
		lo = fmt.Sprint(bounds[i-1])
	}
	if i < len(bounds) {
		hi = fmt.Sprint(bounds[i])
	}
	return "(" + lo + "," + hi + "]"
}

// Each event is recorded in its metric, with its attributes and in its
// bucket, and in no other: the Conn's events are fed to the hooks as the
// Conn delivers them, in order.
func TestEachEventIsRecordedAsItsMetric(t *testing.T) {
	refused := &wsreconnect.HandshakeError{StatusCode: 503}
	for _, tt := range []struct {
		name   string
		events func(tr *wsreconnect.Trace)
		want   []string
	}{{
		name: "a Conn counts as connecting from its first event",
		events: func(tr *wsreconnect.Trace) {
			tr.DialStart(wsreconnect.DialStartInfo{Attempt: 1})
		},
		want: []string{"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1"},
	}, {
		name: "a dial that succeeded",
		events: func(tr *wsreconnect.Trace) {
			tr.DialStart(wsreconnect.DialStartInfo{Attempt: 1})
			tr.DialDone(wsreconnect.DialDoneInfo{Attempt: 1, Duration: 2 * time.Millisecond})
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1",
			"websocket.client.dial.attempts{websocket.client.dial.outcome=success} = 1",
			"websocket.client.dial.duration{websocket.client.dial.outcome=success} count=1 sum=0.002 (-Inf,0.005]:1",
		},
	}, {
		name: "a refused handshake, with its status",
		events: func(tr *wsreconnect.Trace) {
			tr.DialDone(wsreconnect.DialDoneInfo{Attempt: 1, Duration: 30 * time.Millisecond, Err: refused, HTTPStatus: 503})
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1",
			"websocket.client.dial.attempts{http.response.status_code=503,websocket.client.dial.outcome=refused} = 1",
			"websocket.client.dial.duration{websocket.client.dial.outcome=refused} count=1 sum=0.03 (0.025,0.05]:1",
		},
	}, {
		name: "a dial that timed out",
		events: func(tr *wsreconnect.Trace) {
			err := fmt.Errorf("wsreconnect: dial timed out after 10s: %w", context.DeadlineExceeded)
			tr.DialDone(wsreconnect.DialDoneInfo{Attempt: 1, Duration: 10*time.Second + time.Millisecond, Err: err})
			tr.DialDone(wsreconnect.DialDoneInfo{Attempt: 2, Duration: time.Second, Err: &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}})
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1",
			"websocket.client.dial.attempts{websocket.client.dial.outcome=timeout} = 2",
			"websocket.client.dial.duration{websocket.client.dial.outcome=timeout} count=2 sum=11.001 (0.5,1]:1 (10,30]:1",
		},
	}, {
		name: "a dial that failed otherwise",
		events: func(tr *wsreconnect.Trace) {
			err := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
			tr.DialDone(wsreconnect.DialDoneInfo{Attempt: 1, Duration: 100 * time.Microsecond, Err: err})
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1",
			"websocket.client.dial.attempts{websocket.client.dial.outcome=error} = 1",
			"websocket.client.dial.duration{websocket.client.dial.outcome=error} count=1 sum=0.0001 (-Inf,0.005]:1",
		},
	}, {
		name: "connections that ended, by code class and decision",
		events: func(tr *wsreconnect.Trace) {
			tr.Disconnected(wsreconnect.Disconnect{Code: websocket.StatusTryAgainLater, Uptime: 90 * time.Second, Decision: wsreconnect.RetryOverload, Reconnect: true})
			tr.Disconnected(wsreconnect.Disconnect{Code: websocket.StatusAbnormalClosure, Uptime: time.Nanosecond, Decision: wsreconnect.Retry, Reconnect: true})
			tr.Disconnected(wsreconnect.Disconnect{Code: websocket.StatusAbnormalClosure, Uptime: 2 * time.Hour, Decision: wsreconnect.Retry, Reconnect: true})
			tr.Disconnected(wsreconnect.Disconnect{Code: websocket.StatusPolicyViolation, Uptime: 8 * 24 * time.Hour, Decision: wsreconnect.Stop})
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1",
			"websocket.client.connection.duration{websocket.client.decision=retry,websocket.close.code_class=abnormal} count=2 sum=7200.000000001 (-Inf,0.1]:1 (3600,7200]:1",
			"websocket.client.connection.duration{websocket.client.decision=retry_overload,websocket.close.code_class=overload} count=1 sum=90 (60,300]:1",
			"websocket.client.connection.duration{websocket.client.decision=stop,websocket.close.code_class=policy} count=1 sum=691200 (604800,+Inf]:1",
		},
	}, {
		name: "a failed attempt is no connection",
		events: func(tr *wsreconnect.Trace) {
			tr.Disconnected(wsreconnect.Disconnect{HTTPStatus: 503, Err: refused, Attempt: 1, Decision: wsreconnect.RetryOverload, Reconnect: true, Delay: time.Second})
			tr.Disconnected(wsreconnect.Disconnect{Code: websocket.StatusNormalClosure, Reason: "OnConnect failed", Attempt: 2, Decision: wsreconnect.Stop})
		},
		want: []string{"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1"},
	}, {
		name: "an outage ends with the next connection, not the first",
		events: func(tr *wsreconnect.Trace) {
			tr.Connected(wsreconnect.ConnectedInfo{Attempt: 3, Outage: 5 * time.Second})
			tr.Disconnected(wsreconnect.Disconnect{Code: websocket.StatusGoingAway, Uptime: 40 * time.Second, Decision: wsreconnect.Retry, Reconnect: true})
			tr.Connected(wsreconnect.ConnectedInfo{Attempt: 1, Outage: 2500 * time.Millisecond})
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1",
			"websocket.client.connection.duration{websocket.client.decision=retry,websocket.close.code_class=going_away} count=1 sum=40 (30,60]:1",
			"websocket.client.outage.duration{} count=1 sum=2.5 (1,2.5]:1",
		},
	}, {
		name: "heartbeat round trips",
		events: func(tr *wsreconnect.Trace) {
			tr.PingAnswered(wsreconnect.PingAnsweredInfo{RTT: 3 * time.Millisecond})
			tr.PingAnswered(wsreconnect.PingAnsweredInfo{RTT: 400 * time.Millisecond})
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1",
			"websocket.client.ping.duration{} count=2 sum=0.403 (0.0025,0.005]:1 (0.25,0.5]:1",
		},
	}, {
		name: "state changes move the Conn between states",
		events: func(tr *wsreconnect.Trace) {
			tr.StateChanged(wsreconnect.StateConnected)
			tr.StateChanged(wsreconnect.StateConnecting)
			tr.StateChanged(wsreconnect.StateConnected)
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connected} = 1",
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 0",
		},
	}, {
		name: "a state change lost to a full Trace queue leaves the count right",
		events: func(tr *wsreconnect.Trace) {
			tr.StateChanged(wsreconnect.StateConnected)
			// StateChanged(connecting) dropped, then:
			tr.StateChanged(wsreconnect.StateConnected)
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connected} = 1",
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 0",
		},
	}, {
		name: "a closed Conn counts in no state",
		events: func(tr *wsreconnect.Trace) {
			tr.StateChanged(wsreconnect.StateConnected)
			tr.StateChanged(wsreconnect.StateClosed)
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connected} = 0",
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 0",
		},
	}, {
		name: "the send queue grows, refuses a Write, and is written",
		events: func(tr *wsreconnect.Trace) {
			tr.QueueChanged(wsreconnect.QueueInfo{Depth: 1})
			tr.QueueChanged(wsreconnect.QueueInfo{Depth: 2})
			tr.QueueChanged(wsreconnect.QueueInfo{Depth: 2, Full: true})
			tr.QueueChanged(wsreconnect.QueueInfo{Depth: 2, Full: true})
			tr.QueueChanged(wsreconnect.QueueInfo{Depth: 1})
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 1",
			"websocket.client.send_queue.dropped{websocket.client.send_queue.drop_reason=full} = 2",
			"websocket.client.send_queue.length{} = 1",
		},
	}, {
		name: "Close drops what the send queue holds",
		events: func(tr *wsreconnect.Trace) {
			tr.QueueChanged(wsreconnect.QueueInfo{Depth: 1})
			tr.QueueChanged(wsreconnect.QueueInfo{Depth: 2})
			tr.QueueChanged(wsreconnect.QueueInfo{Depth: 3})
			tr.QueueChanged(wsreconnect.QueueInfo{Depth: 2})
			tr.StateChanged(wsreconnect.StateClosed)
			tr.QueueChanged(wsreconnect.QueueInfo{Dropped: 2})
		},
		want: []string{
			"websocket.client.connection.count{websocket.client.connection.state=connecting} = 0",
			"websocket.client.send_queue.dropped{websocket.client.send_queue.drop_reason=closed} = 2",
			"websocket.client.send_queue.length{} = 0",
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			tr, r, _ := newTestTrace(t)
			tt.events(tr)
			got := points(t, r)
			slices.Sort(tt.want)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

// A Trace given to two Conns is found when the first one has closed: the
// error is reported once, and nothing more is recorded (a second Conn's
// events would corrupt the first one's state and queue).
func TestSharedTraceIsReportedAndStops(t *testing.T) {
	tr, r, errs := newTestTrace(t)
	tr.StateChanged(wsreconnect.StateConnected)
	tr.StateChanged(wsreconnect.StateClosed)
	before := points(t, r)
	tr.DialStart(wsreconnect.DialStartInfo{Attempt: 1}) // the other Conn's
	tr.DialDone(wsreconnect.DialDoneInfo{Attempt: 1, Duration: time.Millisecond})
	tr.StateChanged(wsreconnect.StateConnected)
	if got := points(t, r); !slices.Equal(got, before) {
		t.Errorf("recorded after the Conn closed:\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(before, "\n\t"))
	}
	if got := errs(); len(got) != 1 || !errors.Is(got[0], errShared) {
		t.Errorf("errors handled: %v, want errShared once", got)
	}
}

// After closed, one send-queue event is the queue's drop; a second is
// another Conn's.
func TestSecondQueueEventAfterCloseIsShared(t *testing.T) {
	tr, r, errs := newTestTrace(t)
	tr.QueueChanged(wsreconnect.QueueInfo{Depth: 1})
	tr.StateChanged(wsreconnect.StateClosed)
	tr.QueueChanged(wsreconnect.QueueInfo{Dropped: 1})
	tr.QueueChanged(wsreconnect.QueueInfo{Depth: 1})
	want := []string{
		"websocket.client.connection.count{websocket.client.connection.state=connecting} = 0",
		"websocket.client.send_queue.dropped{websocket.client.send_queue.drop_reason=closed} = 1",
		"websocket.client.send_queue.length{} = 0",
	}
	if got := points(t, r); !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if got := errs(); len(got) != 1 || !errors.Is(got[0], errShared) {
		t.Errorf("errors handled: %v, want errShared once", got)
	}
}

func TestCloseCodeClass(t *testing.T) {
	for _, tt := range []struct {
		class string
		codes []websocket.StatusCode
	}{
		{"normal", []websocket.StatusCode{1000}},
		{"going_away", []websocket.StatusCode{1001, 1012}},
		{"no_status", []websocket.StatusCode{1005}},
		{"abnormal", []websocket.StatusCode{1006}},
		{"protocol", []websocket.StatusCode{1002, 1003, 1007, 1009, 1010}},
		{"policy", []websocket.StatusCode{1008}},
		{"error", []websocket.StatusCode{1011, 1014}},
		{"overload", []websocket.StatusCode{1013}},
		{"application", []websocket.StatusCode{3000, 4000, 4999}},
		{"other", []websocket.StatusCode{0, 999, 1004, 1015, 1016, 2999, 5000}},
	} {
		for _, code := range tt.codes {
			if got := CloseCodeClass(code); got != tt.class {
				t.Errorf("CloseCodeClass(%d) = %q, want %q", code, got, tt.class)
			}
		}
	}
}

// Under the default policy, all the codes of a class but other get the
// same decision: a class and a decision read together on a dashboard.
func TestCloseCodeClassesAgreeWithTheDefaultPolicy(t *testing.T) {
	decisions := map[string]map[wsreconnect.Decision][]websocket.StatusCode{}
	for code := websocket.StatusCode(1000); code <= 4999; code++ {
		class := CloseCodeClass(code)
		if class == "other" {
			continue
		}
		dec := wsreconnect.DefaultPolicy(wsreconnect.Disconnect{Code: code, Uptime: time.Second})
		if decisions[class] == nil {
			decisions[class] = map[wsreconnect.Decision][]websocket.StatusCode{}
		}
		decisions[class][dec] = append(decisions[class][dec], code)
	}
	if len(decisions) != 9 {
		t.Errorf("%d classes, want 9 besides other", len(decisions))
	}
	for class, byDecision := range decisions {
		if len(byDecision) != 1 {
			t.Errorf("class %s gets several decisions: %v", class, byDecision)
		}
	}
}
