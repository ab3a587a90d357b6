//go:build !js

// Command example serves the OpenTelemetry metrics of a wsreconnect client
// on /metrics, through the OpenTelemetry Prometheus exporter, while the
// client rides through a misbehaving server that the program starts on
// 127.0.0.1:
//
//	cd otelwsreconnect/example && go run .
//
// The server plays one step per connection attempt:
//
//  1. it accepts, then drops the TCP connection without a close frame (1006);
//  2. it accepts, then closes with 1013 "try again later";
//  3. it answers the handshake with 503 and Retry-After: 1;
//  4. it accepts, answers the heartbeat's pings, and after 2 s closes with
//     1001 "going away";
//  5. it accepts, and after 1 s closes with 1008, which stops the client.
//
// Meanwhile the application writes a message every 300 ms into a send queue
// of two: while the client is without a connection, the queue fills and
// refuses. Once the client has stopped, the program fetches its own
// /metrics, prints the websocket_client_* series, checks that they count
// what the script did, and exits (status 1 if they do not). With -hold, it
// keeps serving /metrics that long first, for curl or a Prometheus.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/otelwsreconnect"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "where to serve /metrics")
	hold := flag.Duration("hold", 0, "how long to keep serving /metrics once the client has stopped")
	flag.Parse()
	if err := run(os.Stdout, *addr, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

var start = time.Now()

// logf writes a line prefixed with the time since the program started.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "[%5.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

// lockedWriter serialises the writes of the server's, the client's and
// the program's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func run(w io.Writer, addr string, hold time.Duration) error {
	out := &lockedWriter{w: w}
	// The exporter, with a registry of its own and without the otel_scope_*
	// labels (one scope here; they would triple the width of every line).
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer provider.Shutdown(context.Background())
	metricsURL, stopMetrics, err := serveMetrics(addr, reg)
	if err != nil {
		return err
	}
	defer stopMetrics()
	logf(out, "metrics on %s", metricsURL)

	srv, url, err := startServer(out)
	if err != nil {
		return err
	}
	defer srv.shutdown()
	logf(out, "server on %s", url)

	// One Trace per Conn; server.address tells this client's series from
	// those of Conns to other servers.
	metrics, err := otelwsreconnect.NewTrace(
		otelwsreconnect.WithMeterProvider(provider),
		otelwsreconnect.WithAttributes(semconv.ServerAddress("127.0.0.1")))
	if err != nil {
		return err
	}
	// The Trace delivers its events asynchronously, possibly after the Conn
	// has ended: its metrics are final once it has seen the closed state.
	final := make(chan struct{})
	var finalOnce sync.Once
	watch := &wsreconnect.Trace{StateChanged: func(s wsreconnect.State) {
		if s == wsreconnect.StateClosed {
			finalOnce.Do(func() { close(final) })
		}
	}}

	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var disconnects []wsreconnect.Disconnect // appended by OnDisconnect, one at a time
	var mu sync.Mutex
	c, err := wsreconnect.Dial(ctx,
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
		},
		wsreconnect.WithTrace(metrics), wsreconnect.WithTrace(watch),
		// Short delays and a quick heartbeat keep the example short.
		wsreconnect.WithInitialDelay(200*time.Millisecond),
		wsreconnect.WithMaxDelay(5*time.Second),
		wsreconnect.WithHeartbeat(250*time.Millisecond, 2*time.Second),
		wsreconnect.WithSendQueue(2),
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			mu.Lock()
			disconnects = append(disconnects, d)
			mu.Unlock()
			logf(out, "client: %v", d)
		}),
	)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.CloseNow()

	// The writer: a message every 300 ms, until the Conn ends.
	var written, refused atomic.Int64
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-c.Done():
				return
			case <-tick.C:
			}
			switch err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "hello %d", i)); {
			case err == nil:
				written.Add(1)
			case errors.Is(err, wsreconnect.ErrSendQueueFull):
				refused.Add(1)
			}
		}
	}()
	<-c.Done()
	<-writerDone
	<-final
	var stop *wsreconnect.StopError
	if err := c.Err(); !errors.As(err, &stop) || websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		return fmt.Errorf("the client ended with %v, want the 1008 stop", err)
	}
	logf(out, "client stopped by the 1008; %d messages written or queued, %d refused by the full queue", written.Load(), refused.Load())

	text, err := fetch(metricsURL)
	if err != nil {
		return err
	}
	logf(out, "GET %s (the websocket_client_* series):", metricsURL)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "websocket_client_") || strings.Contains(line, " websocket_client_") {
			fmt.Fprintln(out, line)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if err := check(text, disconnects, refused.Load()); err != nil {
		return err
	}
	logf(out, "checked: the metrics count the script's 4 connection ends, 5 dials (one refused with 503) and %d refused writes", refused.Load())
	if hold > 0 {
		logf(out, "serving %s for %v", metricsURL, hold)
		time.Sleep(hold)
	}
	return nil
}

// check compares the scraped text with what the script did.
func check(text string, ds []wsreconnect.Disconnect, refused int64) error {
	type end struct {
		code     websocket.StatusCode
		status   int
		decision wsreconnect.Decision
	}
	want := []end{
		{websocket.StatusAbnormalClosure, 0, wsreconnect.Retry},
		{websocket.StatusTryAgainLater, 0, wsreconnect.RetryOverload},
		{0, http.StatusServiceUnavailable, wsreconnect.RetryOverload},
		{websocket.StatusGoingAway, 0, wsreconnect.Retry},
		{websocket.StatusPolicyViolation, 0, wsreconnect.Stop},
	}
	if len(ds) != len(want) {
		return fmt.Errorf("%d disconnects, want %d", len(ds), len(want))
	}
	for i, w := range want {
		if d := ds[i]; d.Code != w.code || d.HTTPStatus != w.status || d.Decision != w.decision {
			return fmt.Errorf("disconnect %d: %v", i+1, d)
		}
	}
	for _, series := range []string{
		`websocket_client_dial_attempts_total{server_address="127.0.0.1",websocket_client_dial_outcome="success"} 4`,
		`websocket_client_dial_attempts_total{http_response_status_code="503",server_address="127.0.0.1",websocket_client_dial_outcome="refused"} 1`,
		`websocket_client_connection_duration_seconds_count{server_address="127.0.0.1",websocket_client_decision="retry",websocket_close_code_class="abnormal"} 1`,
		`websocket_client_connection_duration_seconds_count{server_address="127.0.0.1",websocket_client_decision="retry_overload",websocket_close_code_class="overload"} 1`,
		`websocket_client_connection_duration_seconds_count{server_address="127.0.0.1",websocket_client_decision="retry",websocket_close_code_class="going_away"} 1`,
		`websocket_client_connection_duration_seconds_count{server_address="127.0.0.1",websocket_client_decision="stop",websocket_close_code_class="policy"} 1`,
		`websocket_client_outage_duration_seconds_count{server_address="127.0.0.1"} 3`,
		`websocket_client_connection_count{server_address="127.0.0.1",websocket_client_connection_state="connected"} 0`,
		`websocket_client_connection_count{server_address="127.0.0.1",websocket_client_connection_state="connecting"} 0`,
		`websocket_client_send_queue_length{server_address="127.0.0.1"} 0`,
		fmt.Sprintf(`websocket_client_send_queue_dropped_total{server_address="127.0.0.1",websocket_client_send_queue_drop_reason="full"} %d`, refused),
	} {
		if refused == 0 && strings.Contains(series, "drop_reason") {
			continue // no series until a first drop
		}
		if !strings.Contains(text, "\n"+series+"\n") {
			return fmt.Errorf("/metrics lacks %s", series)
		}
	}
	if !strings.Contains(text, "\nwebsocket_client_ping_duration_seconds_count{") {
		return errors.New("/metrics has no ping round trips")
	}
	return nil
}

// serveMetrics serves reg's metrics on addr's /metrics.
func serveMetrics(addr string, reg *prometheus.Registry) (url string, stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(l)
	}()
	return "http://" + l.Addr().String() + "/metrics", func() {
		hs.Close()
		<-done
	}, nil
}

// fetch GETs url.
func fetch(url string) (string, error) {
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// server is the misbehaving WebSocket server: each handshake plays the
// next step of the script.
type server struct {
	out      io.Writer
	hs       *http.Server
	served   chan struct{} // closed when hs.Serve has returned
	attempts atomic.Int64
	wg       sync.WaitGroup // the handlers, which outlive a hijacked connection
}

func startServer(out io.Writer) (*server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	s := &server{out: out, served: make(chan struct{})}
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.served)
		s.hs.Serve(l)
	}()
	return s, "ws://" + l.Addr().String() + "/", nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.wg.Add(1)
	defer s.wg.Done()
	n := s.attempts.Add(1)
	var (
		after time.Duration
		code  websocket.StatusCode
	)
	switch n {
	case 1:
		after = 500 * time.Millisecond
	case 2:
		after, code = 500*time.Millisecond, websocket.StatusTryAgainLater
	case 3:
		logf(s.out, "server: attempt 3: 503, Retry-After: 1")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	case 4:
		after, code = 2*time.Second, websocket.StatusGoingAway
	case 5:
		after, code = time.Second, websocket.StatusPolicyViolation
	default:
		http.Error(w, "not in the script", http.StatusGone)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	// Read (which answers pings) until the connection ends.
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	select {
	case <-time.After(after):
	case <-read:
		return
	}
	if code == 0 {
		logf(s.out, "server: connection %d: dropping TCP without a close frame", n)
		ws.CloseNow()
	} else {
		logf(s.out, "server: connection %d: closing with %d", n, int(code))
		ws.Close(code, "")
	}
	<-read
}

// shutdown stops the listener and waits for the handlers.
func (s *server) shutdown() {
	s.hs.Close()
	<-s.served
	s.wg.Wait()
}
