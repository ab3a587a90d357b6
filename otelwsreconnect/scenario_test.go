package otelwsreconnect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/wsreconnect/wsreconnect"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.uber.org/goleak"
)

// The story: a server on 127.0.0.1 drops the first two connections without
// a close frame, closes the third with 1013, answers the fourth handshake
// with 503, then accepts, answers two heartbeat pings and closes with 1000,
// which stops the client. While the client is without a connection, the
// application writes three messages into a send queue of two. What the
// exporter serves on /metrics says all of that, series by series: the
// counts from the script, and each histogram's buckets from the values the
// Conn reported to a second Trace.
func TestScenarioScrapedFromPrometheus(t *testing.T) {
	noLeaks(t)
	metrics := newPromEndpoint(t)
	final := newFinalStep(2)
	srv := newScriptServer(t, drop, drop, closeWith(websocket.StatusTryAgainLater, "busy"), reject(503, "1"), final.serve)
	var rec recorder
	tr, err := NewTrace(WithMeterProvider(metrics.provider), WithAttributes(base))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := wsreconnect.Dial(ctx, srv.dial,
		// The recorder after the metrics: when it has an event, the
		// metrics' hook for that event has returned.
		wsreconnect.WithTrace(tr), wsreconnect.WithTrace(rec.trace()),
		wsreconnect.WithInitialDelay(time.Millisecond), wsreconnect.WithMaxDelay(time.Second),
		wsreconnect.WithHeartbeat(20*time.Millisecond, 10*time.Second),
		wsreconnect.WithSendQueue(2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()

	// Refused: the client waits; the next handshake is held until the
	// application has written.
	rec.waitFor(t, "the 503", func() bool { return len(rec.disconnects) == 4 })
	for i, want := range []error{nil, nil, wsreconnect.ErrSendQueueFull} {
		if err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "m%d", i)); !errors.Is(err, want) {
			t.Fatalf("write %d: %v, want %v", i, err, want)
		}
	}
	close(final.release)
	rec.waitFor(t, "two pongs", func() bool { return len(rec.rtts) == 2 })
	close(final.bye)
	rec.waitFor(t, "the Conn's end", func() bool { return rec.closed })
	<-c.Done()
	if got := final.received(); !slices.Equal(got, []string{"m0", "m1"}) {
		t.Errorf("the server received %q, want the two queued messages", got)
	}

	fams := metrics.scrape(t)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var successes, refusals []time.Duration
	for _, d := range rec.dials {
		if d.Err == nil {
			successes = append(successes, d.Duration)
		} else {
			refusals = append(refusals, d.Duration)
		}
	}
	uptimes := func(class string) []time.Duration {
		var ds []time.Duration
		for _, d := range rec.disconnects {
			if d.Uptime > 0 && CloseCodeClass(d.Code) == class {
				ds = append(ds, d.Uptime)
			}
		}
		return ds
	}
	var outages []time.Duration
	for _, up := range rec.connects[1:] {
		outages = append(outages, up.Outage)
	}
	checkCounter(t, fams, "websocket_client_dial_attempts_total", labels{"websocket_client_dial_outcome": "success"}, 4)
	checkCounter(t, fams, "websocket_client_dial_attempts_total", labels{"websocket_client_dial_outcome": "refused", "http_response_status_code": "503"}, 1)
	checkSeries(t, fams, "websocket_client_dial_attempts_total", 2)
	checkHistogram(t, fams, "websocket_client_dial_duration_seconds", labels{"websocket_client_dial_outcome": "success"}, dialBounds, successes, 4)
	checkHistogram(t, fams, "websocket_client_dial_duration_seconds", labels{"websocket_client_dial_outcome": "refused"}, dialBounds, refusals, 1)
	checkSeries(t, fams, "websocket_client_dial_duration_seconds", 2)

	checkHistogram(t, fams, "websocket_client_connection_duration_seconds",
		labels{"websocket_close_code_class": "abnormal", "websocket_client_decision": "retry"}, connectionBounds, uptimes("abnormal"), 2)
	checkHistogram(t, fams, "websocket_client_connection_duration_seconds",
		labels{"websocket_close_code_class": "overload", "websocket_client_decision": "retry_overload"}, connectionBounds, uptimes("overload"), 1)
	checkHistogram(t, fams, "websocket_client_connection_duration_seconds",
		labels{"websocket_close_code_class": "normal", "websocket_client_decision": "stop"}, connectionBounds, uptimes("normal"), 1)
	checkSeries(t, fams, "websocket_client_connection_duration_seconds", 3)

	// Lost three times, back three times (the first connection ended no
	// outage); the last one waited out the 503's Retry-After.
	checkHistogram(t, fams, "websocket_client_outage_duration_seconds", labels{}, outageBounds, outages, 3)
	if outages[2] < time.Second {
		t.Errorf("the outage behind the 503 lasted %v, less than its Retry-After", outages[2])
	}
	checkHistogram(t, fams, "websocket_client_ping_duration_seconds", labels{}, pingBounds, rec.rtts, 2)

	checkGauge(t, fams, "websocket_client_connection_count", labels{"websocket_client_connection_state": "connecting"}, 0)
	checkGauge(t, fams, "websocket_client_connection_count", labels{"websocket_client_connection_state": "connected"}, 0)
	checkSeries(t, fams, "websocket_client_connection_count", 2)
	checkGauge(t, fams, "websocket_client_send_queue_length", labels{}, 0)
	checkCounter(t, fams, "websocket_client_send_queue_dropped_total", labels{"websocket_client_send_queue_drop_reason": "full"}, 1)
	checkSeries(t, fams, "websocket_client_send_queue_dropped_total", 1)
}

// A dial that times out is a timeout; a connection that Close ends is no
// connection.duration (the Conn reports no Disconnect for it), and the
// closed Conn counts in no state.
func TestDialTimeoutAndClose(t *testing.T) {
	noLeaks(t)
	metrics := newPromEndpoint(t)
	srv := newScriptServer(t, hang, readUntilClosed)
	var rec recorder
	tr, err := NewTrace(WithMeterProvider(metrics.provider), WithAttributes(base))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := wsreconnect.Dial(ctx, srv.dial, wsreconnect.WithTrace(tr), wsreconnect.WithTrace(rec.trace()),
		wsreconnect.WithDialTimeout(100*time.Millisecond), wsreconnect.WithInitialDelay(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the Conn's end", func() bool { return rec.closed })
	<-c.Done()

	fams := metrics.scrape(t)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	checkCounter(t, fams, "websocket_client_dial_attempts_total", labels{"websocket_client_dial_outcome": "timeout"}, 1)
	checkCounter(t, fams, "websocket_client_dial_attempts_total", labels{"websocket_client_dial_outcome": "success"}, 1)
	checkSeries(t, fams, "websocket_client_dial_attempts_total", 2)
	checkHistogram(t, fams, "websocket_client_dial_duration_seconds", labels{"websocket_client_dial_outcome": "timeout"}, dialBounds, rec.dials[0].Duration, 1)
	if d := rec.dials[0].Duration; d < 100*time.Millisecond {
		t.Errorf("the timed-out dial took %v, less than the dial timeout", d)
	}
	checkSeries(t, fams, "websocket_client_connection_duration_seconds", 0)
	checkSeries(t, fams, "websocket_client_outage_duration_seconds", 0)
	checkGauge(t, fams, "websocket_client_connection_count", labels{"websocket_client_connection_state": "connecting"}, 0)
	checkGauge(t, fams, "websocket_client_connection_count", labels{"websocket_client_connection_state": "connected"}, 0)
}

// Close drops the messages the send queue holds: they count as dropped,
// and the queue's length goes back to zero.
func TestCloseDropsTheSendQueue(t *testing.T) {
	noLeaks(t)
	metrics := newPromEndpoint(t)
	srv := newScriptServer(t, drop, hang)
	var rec recorder
	tr, err := NewTrace(WithMeterProvider(metrics.provider), WithAttributes(base))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := wsreconnect.Dial(ctx, srv.dial, wsreconnect.WithTrace(tr), wsreconnect.WithTrace(rec.trace()),
		wsreconnect.WithInitialDelay(time.Millisecond), wsreconnect.WithSendQueue(4))
	if err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the drop", func() bool { return len(rec.disconnects) == 1 })
	for i := range 3 {
		if err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, "three queued", func() bool { return len(rec.queue) == 3 })
	var unsent *wsreconnect.UnsentError
	if err := c.Close(websocket.StatusNormalClosure, ""); !errors.As(err, &unsent) || unsent.Count != 3 {
		t.Fatalf("Close: %v, want an UnsentError of 3", err)
	}
	rec.waitFor(t, "the queue dropped after the end", func() bool { return rec.closed && rec.queueAfterClose })
	<-c.Done()

	fams := metrics.scrape(t)
	checkCounter(t, fams, "websocket_client_send_queue_dropped_total", labels{"websocket_client_send_queue_drop_reason": "closed"}, 3)
	checkSeries(t, fams, "websocket_client_send_queue_dropped_total", 1)
	checkGauge(t, fams, "websocket_client_send_queue_length", labels{}, 0)
	checkGauge(t, fams, "websocket_client_connection_count", labels{"websocket_client_connection_state": "connecting"}, 0)
	checkGauge(t, fams, "websocket_client_connection_count", labels{"websocket_client_connection_state": "connected"}, 0)
}

// noLeaks checks, once the test and all its cleanups (the servers') are
// done, that no goroutine is left.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// recorder is a Trace that keeps what the Conn reported, for the tests to
// wait on and to compute the expected histograms from.
type recorder struct {
	mu              sync.Mutex
	changed         chan struct{} // closed at each event
	dials           []wsreconnect.DialDoneInfo
	connects        []wsreconnect.ConnectedInfo
	disconnects     []wsreconnect.Disconnect
	rtts            []time.Duration
	queue           []wsreconnect.QueueInfo
	closed          bool
	queueAfterClose bool
}

func (r *recorder) trace() *wsreconnect.Trace {
	return &wsreconnect.Trace{
		DialDone:     func(i wsreconnect.DialDoneInfo) { r.add(func() { r.dials = append(r.dials, i) }) },
		Connected:    func(i wsreconnect.ConnectedInfo) { r.add(func() { r.connects = append(r.connects, i) }) },
		Disconnected: func(d wsreconnect.Disconnect) { r.add(func() { r.disconnects = append(r.disconnects, d) }) },
		PingAnswered: func(i wsreconnect.PingAnsweredInfo) { r.add(func() { r.rtts = append(r.rtts, i.RTT) }) },
		QueueChanged: func(i wsreconnect.QueueInfo) {
			r.add(func() {
				r.queue = append(r.queue, i)
				r.queueAfterClose = r.queueAfterClose || r.closed
			})
		},
		StateChanged: func(s wsreconnect.State) {
			r.add(func() { r.closed = r.closed || s == wsreconnect.StateClosed })
		},
	}
}

func (r *recorder) add(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// waitFor waits until cond, called with r.mu held, is true: each event
// wakes it. It fails t after a minute, for a Conn that never gets there.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if cond() {
			r.mu.Unlock()
			return
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no %s after a minute", what)
		}
	}
}

// promEndpoint is a MeterProvider whose metrics the OpenTelemetry
// Prometheus exporter serves on an HTTP server of its own.
type promEndpoint struct {
	provider *sdkmetric.MeterProvider
	url      string
	client   *http.Client
}

func newPromEndpoint(t *testing.T) *promEndpoint {
	t.Helper()
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	handled(t)
	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	transport := &http.Transport{}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		hs.Close()
		mp.Shutdown(context.Background())
	})
	return &promEndpoint{provider: mp, url: hs.URL + "/metrics", client: &http.Client{Transport: transport}}
}

// scrape GETs /metrics and parses it.
func (p *promEndpoint) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := p.client.Get(p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// labels are a series' labels, without the exporter's otel_scope_* and
// the base attribute, which every series must have.
type labels map[string]string

// series returns the series of family name with exactly the labels want.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string, want labels) *dto.Metric {
	t.Helper()
	fam := fams[name]
	if fam == nil {
		t.Errorf("no %s", name)
		return nil
	}
	var found *dto.Metric
	for _, m := range fam.Metric {
		got := seriesLabels(t, name, m)
		if len(got) == len(want) && func() bool {
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return true
		}() {
			found = m
		}
	}
	if found == nil {
		var all []string
		for _, m := range fam.Metric {
			all = append(all, fmt.Sprint(seriesLabels(t, name, m)))
		}
		t.Errorf("no %s%v; it has %s", name, want, strings.Join(all, " "))
	}
	return found
}

func seriesLabels(t *testing.T, name string, m *dto.Metric) labels {
	t.Helper()
	got := labels{}
	for _, lp := range m.Label {
		got[lp.GetName()] = lp.GetValue()
	}
	if got["server_address"] != base.Value.AsString() {
		t.Errorf("%s%v lacks server_address=%q", name, got, base.Value.AsString())
	}
	if got["otel_scope_name"] != ScopeName {
		t.Errorf("%s%v: otel_scope_name %q, want %q", name, got, got["otel_scope_name"], ScopeName)
	}
	for k := range got {
		if k == "server_address" || strings.HasPrefix(k, "otel_scope_") {
			delete(got, k)
		}
	}
	return got
}

// checkSeries checks that family name has n series (0: is absent).
func checkSeries(t *testing.T, fams map[string]*dto.MetricFamily, name string, n int) {
	t.Helper()
	if got := len(fams[name].GetMetric()); got != n {
		t.Errorf("%s has %d series, want %d", name, got, n)
	}
}

func checkCounter(t *testing.T, fams map[string]*dto.MetricFamily, name string, l labels, want float64) {
	t.Helper()
	if m := series(t, fams, name, l); m != nil && m.GetCounter().GetValue() != want {
		t.Errorf("%s%v = %v, want %v", name, l, m.GetCounter().GetValue(), want)
	}
}

func checkGauge(t *testing.T, fams map[string]*dto.MetricFamily, name string, l labels, want float64) {
	t.Helper()
	if m := series(t, fams, name, l); m != nil && m.GetGauge().GetValue() != want {
		t.Errorf("%s%v = %v, want %v", name, l, m.GetGauge().GetValue(), want)
	}
}

// checkHistogram checks a histogram series: n observations, the bucket
// boundaries bounds, and in each bucket the values of observed (which
// are what the Conn reported, so what the metric must hold).
func checkHistogram[D time.Duration | []time.Duration](t *testing.T, fams map[string]*dto.MetricFamily, name string, l labels, bounds []float64, observed D, n int) {
	t.Helper()
	var values []float64
	switch o := any(observed).(type) {
	case time.Duration:
		values = []float64{o.Seconds()}
	case []time.Duration:
		for _, d := range o {
			values = append(values, d.Seconds())
		}
	}
	if len(values) != n {
		t.Errorf("%s%v: the Conn reported %d values, want %d", name, l, len(values), n)
	}
	m := series(t, fams, name, l)
	if m == nil {
		return
	}
	h := m.GetHistogram()
	if h.GetSampleCount() != uint64(n) {
		t.Errorf("%s%v: count %d, want %d", name, l, h.GetSampleCount(), n)
	}
	var sum float64
	for _, v := range values {
		sum += v
	}
	if math.Abs(h.GetSampleSum()-sum) > 1e-9*math.Max(1, sum) {
		t.Errorf("%s%v: sum %v, want %v", name, l, h.GetSampleSum(), sum)
	}
	var les []float64
	for _, b := range h.Bucket {
		les = append(les, b.GetUpperBound())
		var want uint64
		for _, v := range values {
			if v <= b.GetUpperBound() {
				want++
			}
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("%s%v: bucket le=%v holds %d, want %d (values %v)", name, l, b.GetUpperBound(), b.GetCumulativeCount(), want, values)
		}
	}
	sort.Float64s(les)
	// The text format's +Inf bucket is the count, which the parser leaves out.
	if !slices.Equal(les, bounds) && !slices.Equal(les, append(slices.Clone(bounds), math.Inf(1))) {
		t.Errorf("%s%v: buckets %v, want %v", name, l, les, bounds)
	}
}

// scriptServer is a WebSocket server on 127.0.0.1 that plays one step per
// handshake, in order; past the script it answers 410 Gone.
type scriptServer struct {
	mu    sync.Mutex
	steps []func(w http.ResponseWriter, r *http.Request)
	wg    sync.WaitGroup // the handlers, which outlive a hijacked connection
	dial  wsreconnect.DialFunc
}

func newScriptServer(t *testing.T, steps ...func(w http.ResponseWriter, r *http.Request)) *scriptServer {
	s := &scriptServer{steps: steps}
	hs := httptest.NewServer(s)
	transport := &http.Transport{}
	client := &http.Client{Transport: transport}
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/"
	s.dial = func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	}
	t.Cleanup(func() {
		hs.Close()
		s.wg.Wait()
		transport.CloseIdleConnections()
	})
	return s
}

func (s *scriptServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.wg.Add(1)
	defer s.wg.Done()
	s.mu.Lock()
	if len(s.steps) == 0 {
		s.mu.Unlock()
		http.Error(w, "not in the script", http.StatusGone)
		return
	}
	step := s.steps[0]
	s.steps = s.steps[1:]
	s.mu.Unlock()
	step(w, r)
}

// noPong answers no ping: only the last step's pongs are counted.
var noPong = &websocket.AcceptOptions{OnPingReceived: func(context.Context, []byte) bool { return false }}

// drop accepts and closes the TCP connection without a close frame.
func drop(w http.ResponseWriter, r *http.Request) {
	if ws, err := websocket.Accept(w, r, noPong); err == nil {
		ws.CloseNow()
	}
}

// closeWith accepts and closes with code.
func closeWith(code websocket.StatusCode, reason string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if ws, err := websocket.Accept(w, r, noPong); err == nil {
			ws.Close(code, reason)
			ws.CloseNow()
		}
	}
}

// reject answers the handshake with status and a Retry-After.
func reject(status int, retryAfter string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", retryAfter)
		http.Error(w, "overloaded", status)
	}
}

// hang never answers the handshake: the client gives up.
func hang(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// readUntilClosed accepts and reads until the client closes.
func readUntilClosed(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, noPong)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	for {
		if _, _, err := ws.Read(context.Background()); err != nil {
			return
		}
	}
}

// finalStep holds the handshake until release, then accepts, reads,
// answers the first pongs pings, and closes with 1000 at bye.
type finalStep struct {
	pongs   int32
	release chan struct{}
	bye     chan struct{}
	mu      sync.Mutex
	got     []string
}

func newFinalStep(pongs int32) *finalStep {
	return &finalStep{pongs: pongs, release: make(chan struct{}), bye: make(chan struct{})}
}

func (f *finalStep) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func (f *finalStep) serve(w http.ResponseWriter, r *http.Request) {
	select {
	case <-f.release:
	case <-r.Context().Done():
		return
	}
	var pings atomic.Int32
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OnPingReceived: func(context.Context, []byte) bool {
		return pings.Add(1) <= f.pongs
	}})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			_, p, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			f.mu.Lock()
			f.got = append(f.got, string(p))
			f.mu.Unlock()
		}
	}()
	select {
	case <-f.bye:
		ws.Close(websocket.StatusNormalClosure, "bye")
	case <-read:
	}
	ws.CloseNow()
	<-read
}
