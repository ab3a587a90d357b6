// Package fleet measures WithDialLimiter: N wsreconnect Conns in one
// process, connected to one server on 127.0.0.1, lose their connections at
// the same instant (the server closes every TCP connection, without a
// close frame) while the server keeps accepting everyone. Each Conn then
// redials on its standard schedule, and, with a limiter, waits on one
// golang.org/x/time/rate.Limiter of R dials per second and burst B shared
// by all of them. The server counts the handshakes it sees per 100 ms and
// in sliding windows of 100 ms and 1 s; the Conns' DialFuncs record when
// each dial starts, after the limiter.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/internal/bench/dropserver"
	"github.com/wsreconnect/wsreconnect/internal/bench/storm"
	"golang.org/x/time/rate"
)

// Config is one fleet.
type Config struct {
	N        int
	Rate     float64       // dials per second of the shared limiter; 0: no limiter
	Burst    int           // the limiter's burst
	Timeout  time.Duration // how long to wait for everyone to come back; 2 min when 0
	Parallel int           // concurrent dials while connecting the fleet; 32 when 0
	// Server starts the server for n clients; nil: in this process
	// (StartServer). cmd/fleet runs it in a child process (StartChild),
	// so that the 5,000 Conns reacting to the drop do not delay the
	// server's accept loop in the same Go runtime.
	Server func(n int) (Server, error)
}

// A Server accepts everyone, drops every connection on Drop, and records
// the handshakes from then on.
type Server interface {
	URL() string
	// Drop closes every connection at once and starts recording; it
	// returns the instant of the drop.
	Drop() (time.Time, error)
	// AllBack is closed when every client has connected again.
	AllBack() <-chan struct{}
	// Report stops recording and returns every handshake since the drop
	// and each client's first admission after it (-1: none).
	Report() (arrivals, backAt []time.Duration, err error)
	Close() error
}

// Result is what one fleet saw, times from the drop.
type Result struct {
	N       int     `json:"n"`
	Limited bool    `json:"limited"`
	Rate    float64 `json:"rate_per_s,omitempty"`
	Burst   int     `json:"burst,omitempty"`

	SetupSeconds float64 `json:"setup_s"`     // connecting the fleet
	DropSeconds  float64 `json:"drop_s"`      // closing every connection at the server
	Back         int     `json:"back"`        // Conns connected again
	AllBack      float64 `json:"all_back_s"`  // -1 if not all came back
	Back99       float64 `json:"back_99_s"`   // 99 % connected again; -1 if fewer
	Attempts     int     `json:"attempts"`    // handshakes the server saw after the drop
	DialStarts   int     `json:"dial_starts"` // DialFunc calls after the drop
	// When the Conns reported the drop (99th percentile), and the delays
	// their schedules chose then.
	NoticeP99 float64 `json:"notice_p99_s"`
	DelayMin  float64 `json:"delay_min_s"`
	DelayMean float64 `json:"delay_mean_s"`
	DelayMax  float64 `json:"delay_max_s"`
	DialSpan  float64 `json:"dial_span_s"` // span of the dial starts (1st to 99th percentile, stretched by 1/0.98)

	// The most handshakes the server saw, and the most dials the Conns
	// started, in any window [t, t+1 s) and [t, t+100 ms).
	Max1s           int     `json:"max_1s"`
	Max100ms        int     `json:"max_100ms"`
	ClientMax1s     int     `json:"client_max_1s"`
	ClientMax100ms  int     `json:"client_max_100ms"`
	Max1sAt         float64 `json:"max_1s_at_s"`           // where the busiest 1 s window starts
	ClientMax1sAt   float64 `json:"client_max_1s_at_s"`    // the same for the dials
	Bound1s         int     `json:"bound_1s,omitempty"`    // R·1 s + B
	Bound100ms      int     `json:"bound_100ms,omitempty"` // R·0.1 s + B
	Exceeded        bool    `json:"exceeded_bound_1s"`     // Max1s > Bound1s
	ExceededClient  bool    `json:"client_exceeded_bound_1s"`
	DialErrors      int     `json:"dial_errors"` // failed attempts reported after the drop
	DisconnectsSeen int     `json:"disconnects"` // OnDisconnect calls after the drop

	PerSecond []int           `json:"per_second"` // handshakes per second from the drop
	Per100ms  []int           `json:"per_100ms"`  // handshakes per 100 ms from the drop
	Arrivals  []time.Duration `json:"-"`          // every handshake, sorted
}

// OK reports whether a limited fleet stayed within R + B in every 1 s
// window, as the server saw it.
func (r Result) OK() bool { return r.Limited && !r.Exceeded }

// server is the fleet's Server in this process: a dropserver that
// accepts everyone and, from the drop on, records every handshake and
// each client's first admission (the client's id is in the URL).
type server struct {
	*dropserver.Server
	n int

	mu       sync.Mutex
	storming bool
	t0       time.Time
	arrivals []time.Duration
	backAt   []time.Duration
	back     int
	allBack  chan struct{}
}

// StartServer starts a Server in this process, on 127.0.0.1.
func StartServer(n int) (Server, error) { return startServer(n) }

func startServer(n int) (*server, error) {
	s := &server{n: n, allBack: make(chan struct{}), backAt: make([]time.Duration, n)}
	for i := range s.backAt {
		s.backAt[i] = -1
	}
	ds, err := dropserver.Start(s.admit)
	if err != nil {
		return nil, err
	}
	s.Server = ds
	return s, nil
}

// admit accepts every client with an id, recording its handshake from the
// drop on, and its first admission once it is held.
func (s *server) admit(w http.ResponseWriter, r *http.Request) (held func(), ok bool) {
	id, err := strconv.Atoi(r.URL.Query().Get("id"))
	if err != nil || id < 0 || id >= s.n {
		http.Error(w, "bad id", http.StatusBadRequest)
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.storming {
		return nil, true
	}
	t := time.Since(s.t0)
	s.arrivals = append(s.arrivals, t)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.backAt[id] < 0 {
			s.backAt[id] = t
			if s.back++; s.back == s.n {
				close(s.allBack)
			}
		}
	}, true
}

// Drop shuts every socket down at once (dropserver.Server.DropTCP) and
// starts recording.
func (s *server) Drop() (time.Time, error) {
	t0 := time.Now()
	s.mu.Lock()
	s.storming, s.t0 = true, t0
	s.mu.Unlock()
	s.DropTCP()
	return t0, nil
}

func (s *server) AllBack() <-chan struct{} { return s.allBack }

func (s *server) Report() (arrivals, backAt []time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.storming = false
	return slices.Clone(s.arrivals), slices.Clone(s.backAt), nil
}

func (s *server) Close() error {
	s.Server.Close()
	return nil
}

// Run connects cfg.N Conns, drops them all at once, and records their
// return. With cfg.Rate > 0 every Conn gets WithDialLimiter of one shared
// rate.Limiter: it is opened (rate.Inf) while the fleet connects, so that
// connecting does not take N/R seconds, and set to cfg.Rate just before
// the drop, with its bucket full (cfg.Burst tokens). The heartbeat is off.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = 32
	}
	if cfg.Rate > 0 && cfg.Burst < 1 {
		return nil, fmt.Errorf("fleet: burst %d with a limiter of %v/s", cfg.Burst, cfg.Rate)
	}
	if cfg.Server == nil {
		cfg.Server = StartServer
	}
	srv, err := cfg.Server(cfg.N)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: -1}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	var lim *rate.Limiter
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Inf, cfg.Burst)
	}
	var (
		storming    atomic.Bool
		early       atomic.Int64 // disconnects before the drop
		dialErrs    atomic.Int64
		disconnects atomic.Int64
		startsMu    sync.Mutex
		starts      []time.Time
		notices     []time.Time     // when each Conn reported the drop
		delays      []time.Duration // and the delay its schedule chose
	)
	conns := make([]*wsreconnect.Conn, cfg.N)
	defer closeAll(conns, cfg.Parallel)
	t := time.Now()
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		errMu sync.Mutex
		first error
	)
	for range cfg.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < cfg.N; i = int(next.Add(1) - 1) {
				url := srv.URL() + "?id=" + strconv.Itoa(i)
				opts := []wsreconnect.Option{
					wsreconnect.WithHeartbeat(0, 0),
					wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
						if !storming.Load() {
							early.Add(1)
							return
						}
						disconnects.Add(1)
						if d.Code == 0 {
							dialErrs.Add(1)
							return
						}
						now := time.Now()
						startsMu.Lock()
						notices = append(notices, now)
						delays = append(delays, d.Delay)
						startsMu.Unlock()
					}),
				}
				if lim != nil {
					opts = append(opts, wsreconnect.WithDialLimiter(lim))
				}
				c, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
					if storming.Load() {
						now := time.Now()
						startsMu.Lock()
						starts = append(starts, now)
						startsMu.Unlock()
					}
					return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
				}, opts...)
				if err != nil {
					errMu.Lock()
					first = errors.Join(first, err)
					errMu.Unlock()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("connecting the fleet: %w", first)
	}
	setup := time.Since(t)
	time.Sleep(200 * time.Millisecond) // let the handshakes' goroutines settle
	if n := early.Load(); n > 0 {
		return nil, fmt.Errorf("%d disconnects before the drop", n)
	}

	if lim != nil {
		lim.SetLimit(rate.Limit(cfg.Rate))
		if tok := lim.Tokens(); math.Abs(tok-float64(cfg.Burst)) > 1e-6 {
			return nil, fmt.Errorf("fleet: the limiter holds %v tokens at the drop, want %d", tok, cfg.Burst)
		}
	}
	storming.Store(true)
	t0, err := srv.Drop()
	if err != nil {
		return nil, err
	}
	dropTook := time.Since(t0)
	allBack := true
	select {
	case <-srv.AllBack():
	case <-time.After(cfg.Timeout):
		allBack = false
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	arrivals, backAt, err := srv.Report()
	if err != nil {
		return nil, err
	}
	startsMu.Lock()
	var clientT, noticeT []time.Duration
	for _, s := range starts {
		clientT = append(clientT, s.Sub(t0))
	}
	for _, s := range notices {
		noticeT = append(noticeT, s.Sub(t0))
	}
	delaysS := slices.Clone(delays)
	startsMu.Unlock()
	slices.Sort(noticeT)
	slices.Sort(delaysS)
	slices.Sort(arrivals)
	slices.Sort(clientT)

	r := &Result{N: cfg.N, Limited: lim != nil, SetupSeconds: setup.Seconds(),
		Attempts: len(arrivals), DialStarts: len(clientT), Arrivals: arrivals,
		DropSeconds: dropTook.Seconds(),
		DialErrors:  int(dialErrs.Load()), DisconnectsSeen: int(disconnects.Load()), AllBack: -1, Back99: -1}
	if lim != nil {
		r.Rate, r.Burst = cfg.Rate, cfg.Burst
		r.Bound1s = int(math.Floor(cfg.Rate)) + cfg.Burst
		r.Bound100ms = int(math.Floor(cfg.Rate/10)) + cfg.Burst
	}
	var backs []time.Duration
	for _, b := range backAt {
		if b >= 0 {
			backs = append(backs, b)
		}
	}
	slices.Sort(backs)
	r.Back = len(backs)
	if allBack && len(backs) == cfg.N {
		r.AllBack = backs[len(backs)-1].Seconds()
	}
	if need := int(math.Ceil(0.99 * float64(cfg.N))); len(backs) >= need && need > 0 {
		r.Back99 = backs[need-1].Seconds()
	}
	var at, cat time.Duration
	r.Max1s, at = storm.BusiestWindow(arrivals, time.Second)
	r.Max100ms = storm.MaxInWindow(arrivals, 100*time.Millisecond)
	r.ClientMax1s, cat = storm.BusiestWindow(clientT, time.Second)
	r.ClientMax100ms = storm.MaxInWindow(clientT, 100*time.Millisecond)
	r.Max1sAt, r.ClientMax1sAt = at.Seconds(), cat.Seconds()
	if lim != nil {
		r.Exceeded = r.Max1s > r.Bound1s
		r.ExceededClient = r.ClientMax1s > r.Bound1s
	}
	if len(clientT) > 0 {
		q := func(p float64) float64 { return clientT[int(p*float64(len(clientT)-1))].Seconds() }
		r.DialSpan = (q(0.99) - q(0.01)) / 0.98
	}
	if len(noticeT) > 0 {
		r.NoticeP99 = noticeT[int(0.99*float64(len(noticeT)-1))].Seconds()
		var sum time.Duration
		for _, d := range delaysS {
			sum += d
		}
		r.DelayMin, r.DelayMax = delaysS[0].Seconds(), delaysS[len(delaysS)-1].Seconds()
		r.DelayMean = (sum / time.Duration(len(delaysS))).Seconds()
	}
	r.PerSecond = buckets(arrivals, time.Second)
	r.Per100ms = buckets(arrivals, 100*time.Millisecond)
	return r, nil
}

// buckets counts the sorted times ts per width from 0.
func buckets(ts []time.Duration, width time.Duration) []int {
	var out []int
	for _, t := range ts {
		i := int(max(t, 0) / width)
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i]++
	}
	return out
}

// closeAll closes the Conns in parallel (CloseNow waits for each Conn's
// goroutine).
func closeAll(conns []*wsreconnect.Conn, parallel int) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(conns)); i = next.Add(1) - 1 {
				if conns[i] != nil {
					_ = conns[i].CloseNow()
				}
			}
		}()
	}
	wg.Wait()
}
