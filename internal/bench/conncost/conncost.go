// Package conncost measures what an idle connection costs a client: N idle
// connections to one loopback server, first as raw coder/websocket
// connections with one reader goroutine each (what a raw client needs to
// see control frames), then as wsreconnect Conns with the heartbeat on.
// It reports goroutines and bytes (heap in use, stacks in use, after GC)
// per connection, and the process CPU time spent over a window, with the
// number of pings the server saw in it.
//
// The server should run in another process (cmd/conncost does that), so
// that its own goroutines and memory are not counted.
package conncost

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// Server accepts WebSocket connections on 127.0.0.1 and keeps them idle,
// with a reader per connection so that pings are answered. GET /stats
// reports the pings received.
type Server struct {
	URL string // ws://127.0.0.1:port/

	pings atomic.Int64
	conns atomic.Int64
	ln    net.Listener
	hs    *http.Server
	ctx   context.Context
	stop  context.CancelFunc
	mu    sync.Mutex
	all   map[*websocket.Conn]struct{}
	wg    sync.WaitGroup
}

// Stats is what GET /stats returns.
type Stats struct {
	Pings int64 `json:"pings"`
	Conns int64 `json:"conns"`
}

// StartServer listens on 127.0.0.1.
func StartServer() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "ws://" + ln.Addr().String() + "/", ln: ln, all: map[*websocket.Conn]struct{}{}}
	s.ctx, s.stop = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(Stats{Pings: s.pings.Load(), Conns: s.conns.Load()})
	})
	mux.HandleFunc("/", s.serveWS)
	s.hs = &http.Server{Handler: mux}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.hs.Serve(ln)
	}()
	return s, nil
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool { s.pings.Add(1); return true },
	})
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	s.all[ws] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.conns.Add(1)
	defer s.wg.Done()
	defer func() {
		s.conns.Add(-1)
		s.mu.Lock()
		delete(s.all, ws)
		s.mu.Unlock()
		_ = ws.CloseNow()
	}()
	for {
		if _, _, err := ws.Read(context.Background()); err != nil {
			return
		}
	}
}

// Close ends every connection and the listener.
func (s *Server) Close() {
	s.stop()
	_ = s.hs.Close()
	s.mu.Lock()
	for ws := range s.all {
		_ = ws.CloseNow()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Config is one measurement.
type Config struct {
	URL       string        // the server's ws:// URL
	StatsURL  string        // its /stats URL
	Impl      string        // "raw" or "wsreconnect"
	N         int           // connections
	Interval  time.Duration // heartbeat interval; 0: the library's default
	Timeout   time.Duration // heartbeat timeout; 0: the library's default
	CPUWindow time.Duration // how long to measure CPU time while idle
	Parallel  int           // concurrent dials; 32 when 0

	// HeapProfile, if set, is called right after the "after" snapshot, and
	// CPUProfile with the CPU window (start, then stop); cmd/conncost
	// writes pprof files with them.
	HeapProfile func()
	CPUProfile  func(start bool)
}

// Result is what one measurement found. Per-connection figures are the
// difference between after and before, divided by N.
type Result struct {
	Impl              string  `json:"impl"`
	N                 int     `json:"n"`
	Interval          string  `json:"heartbeat_interval"`
	Timeout           string  `json:"heartbeat_timeout"`
	DialSeconds       float64 `json:"dial_seconds"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	HeapPerConn       float64 `json:"heap_inuse_per_conn"`
	StackPerConn      float64 `json:"stack_inuse_per_conn"`
	HeapAllocPerConn  float64 `json:"heap_alloc_per_conn"`
	CPUWindowSeconds  float64 `json:"cpu_window_seconds"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	Pings             int64   `json:"pings"`
	Before, After     Snap    `json:"-"`
}

// Snap is the process state at one instant.
type Snap struct {
	Goroutines int
	HeapInuse  uint64
	StackInuse uint64
	HeapAlloc  uint64
}

// snapshot collects garbage until the heap and the stacks settle (a
// collection shrinks an oversized stack by half at most), then reads the
// figures.
func snapshot() Snap {
	var ms runtime.MemStats
	for range 5 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return Snap{runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse, ms.HeapAlloc}
}

// RaiseFileLimit lifts RLIMIT_NOFILE to at least n (as root, the hard limit
// too).
func RaiseFileLimit(n uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	if rl.Cur >= n {
		return nil
	}
	rl.Cur = n
	if rl.Max < n {
		rl.Max = n
	}
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
}

// CPUTime is the user and system CPU time of this process so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pings(ctx context.Context, hc *http.Client, statsURL string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st Stats
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st.Pings, err
}

// Run opens cfg.N idle connections, measures, and closes them.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 32
	}
	interval, timeout := cfg.Interval, cfg.Timeout
	if interval == 0 {
		interval, timeout = wsreconnect.DefaultHeartbeatInterval, wsreconnect.DefaultHeartbeatTimeout
	}
	res := Result{Impl: cfg.Impl, N: cfg.N}
	if cfg.Impl == "wsreconnect" {
		res.Interval, res.Timeout = interval.String(), timeout.String()
	} else {
		res.Interval, res.Timeout = "none", "none"
	}
	if err := RaiseFileLimit(uint64(cfg.N) + 1024); err != nil {
		return res, fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	statsClient := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, cfg.URL, &websocket.DialOptions{HTTPClient: hc})
	}
	var opts []wsreconnect.Option
	if cfg.Interval != 0 {
		opts = append(opts, wsreconnect.WithHeartbeat(cfg.Interval, cfg.Timeout))
	}

	// Warm up both code paths once, so that one-time allocations (package
	// state, sync.Pools, the transport) are not charged to the first
	// connections.
	closers := make([]func(), 0, cfg.N)
	var readers sync.WaitGroup
	defer func() {
		for _, c := range closers {
			c()
		}
		readers.Wait()
	}()
	open := func(ctx context.Context) (func(), error) {
		switch cfg.Impl {
		case "raw":
			ws, _, err := dial(ctx)
			if err != nil {
				return nil, err
			}
			readers.Add(1)
			go func() {
				defer readers.Done()
				for {
					if _, _, err := ws.Read(context.Background()); err != nil {
						return
					}
				}
			}()
			return func() { _ = ws.CloseNow() }, nil
		case "wsreconnect":
			c, err := wsreconnect.Dial(ctx, dial, opts...)
			if err != nil {
				return nil, err
			}
			return func() { _ = c.CloseNow() }, nil
		}
		return nil, fmt.Errorf("unknown impl %q", cfg.Impl)
	}
	if c, err := open(ctx); err != nil {
		return res, err
	} else {
		c()
		readers.Wait()
	}
	time.Sleep(100 * time.Millisecond)

	res.Before = snapshot()
	start := time.Now()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range cfg.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(cfg.N) {
				c, err := open(ctx)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					closers = append(closers, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.DialSeconds = time.Since(start).Seconds()
	if len(errs) > 0 {
		return res, fmt.Errorf("%d of %d dials failed, first: %w", len(errs), cfg.N, errs[0])
	}
	time.Sleep(500 * time.Millisecond) // let dial goroutines end
	res.After = snapshot()
	n := float64(cfg.N)
	res.GoroutinesPerConn = float64(res.After.Goroutines-res.Before.Goroutines) / n
	res.HeapPerConn = (float64(res.After.HeapInuse) - float64(res.Before.HeapInuse)) / n
	res.StackPerConn = (float64(res.After.StackInuse) - float64(res.Before.StackInuse)) / n
	res.HeapAllocPerConn = (float64(res.After.HeapAlloc) - float64(res.Before.HeapAlloc)) / n
	if cfg.HeapProfile != nil {
		cfg.HeapProfile()
	}

	if cfg.CPUWindow > 0 {
		p0, err := pings(ctx, statsClient, cfg.StatsURL)
		if err != nil {
			return res, err
		}
		if cfg.CPUProfile != nil {
			cfg.CPUProfile(true)
		}
		c0, t0 := CPUTime(), time.Now()
		select {
		case <-time.After(cfg.CPUWindow):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		c1, t1 := CPUTime(), time.Now()
		if cfg.CPUProfile != nil {
			cfg.CPUProfile(false)
		}
		p1, err := pings(ctx, statsClient, cfg.StatsURL)
		if err != nil {
			return res, err
		}
		res.CPUWindowSeconds = t1.Sub(t0).Seconds()
		res.CPUSeconds = (c1 - c0).Seconds()
		res.Pings = p1 - p0
	}
	return res, nil
}
