package storm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/internal/bench/dropserver"
)

// RealConfig is one storm of real clients on 127.0.0.1.
type RealConfig struct {
	N        int
	Cause    Cause
	Capacity float64       // admitted connections per second after the drop; 0: everyone
	Variant  Variant       // must have Options
	Timeout  time.Duration // how long to wait for everyone to come back; 3 min when 0
	Parallel int           // concurrent dials while connecting the clients; 32 when 0
	Server   Server        // how the server at capacity answers those it refuses
}

// stormServer accepts everyone until the storm starts; from then on it
// records every handshake (the client's id is in the URL) and admits
// through the admission of its Server mode (the token bucket), refusing
// the rest with 503, with a Retry-After when the mode gives one.
type stormServer struct {
	*dropserver.Server

	mu       sync.Mutex
	storming bool
	t0       time.Time
	adm      admission
	out      *Outcome

	back    atomic.Int64
	allBack chan struct{}
}

func startStormServer() (*stormServer, error) {
	s := &stormServer{allBack: make(chan struct{})}
	ds, err := dropserver.Start(s.admit)
	if err != nil {
		return nil, err
	}
	s.Server = ds
	return s, nil
}

// admit records a handshake during the storm and decides on it; the
// first admission of each client counts it as back once it is held.
func (s *stormServer) admit(w http.ResponseWriter, r *http.Request) (held func(), ok bool) {
	id, err := strconv.Atoi(r.URL.Query().Get("id"))
	if err != nil {
		http.Error(w, "missing id", http.StatusBadRequest)
		return nil, false
	}
	s.mu.Lock()
	admitted, recorded := true, false
	var retryAfter time.Duration
	var n int // clients in the storm
	if s.storming && id >= 0 && id < s.out.N {
		n = s.out.N
		t := time.Since(s.t0)
		admitted, retryAfter = s.adm.admit(id, t)
		wasBack := s.out.Back[id] >= 0
		s.out.attempt(id, t, admitted, retryAfter)
		recorded = admitted && !wasBack
	}
	s.mu.Unlock()
	if !admitted {
		if retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return nil, false
	}
	if !recorded {
		return nil, true
	}
	return func() {
		if s.back.Add(1) == int64(n) {
			close(s.allBack)
		}
	}, true
}

// storm drops every connection at once, by cause, and starts recording.
func (s *stormServer) storm(cause Cause, out *Outcome, capacity float64, server Server) {
	s.mu.Lock()
	s.out, s.adm = out, newAdmission(server, capacity)
	s.storming, s.t0 = true, time.Now()
	s.mu.Unlock()
	if cause == TryAgainLater {
		s.CloseAll(websocket.StatusTryAgainLater, "try again later")
		return
	}
	s.DropTCP()
}

// endStorm stops recording.
func (s *stormServer) endStorm() {
	s.mu.Lock()
	s.storming = false
	s.mu.Unlock()
}

// RunReal connects cfg.N wsreconnect Conns (the variant's options) to a
// loopback server, waits until all are up, drops them all at once by
// cfg.Cause, and records what the server sees until every client is back
// or cfg.Timeout passes. A client whose first connection failed before the
// storm is an error: its schedule would not start fresh.
func RunReal(ctx context.Context, cfg RealConfig) (*Outcome, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Minute
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = 32
	}
	if cfg.Variant.Options == nil {
		return nil, fmt.Errorf("variant %q runs only in the simulation", cfg.Variant.Name)
	}
	srv, err := startStormServer()
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: -1}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	conns := make([]*wsreconnect.Conn, cfg.N)
	defer func() {
		// CloseNow waits for each Conn's goroutines; close in parallel.
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range cfg.Parallel {
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
	}()
	var early atomic.Int64 // disconnects before the storm
	var storming atomic.Bool
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
				opts := append(cfg.Variant.Options(), wsreconnect.WithOnDisconnect(func(wsreconnect.Disconnect) {
					if !storming.Load() {
						early.Add(1)
					}
				}))
				c, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
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
		return nil, fmt.Errorf("connecting the clients: %w", first)
	}
	if n := early.Load(); n > 0 {
		return nil, fmt.Errorf("%d disconnects before the storm", n)
	}
	time.Sleep(200 * time.Millisecond) // let the handshakes' goroutines settle

	out := newOutcome(cfg.N, cfg.Cause, cfg.Capacity, cfg.Variant.Name, true)
	out.Server = cfg.Server
	storming.Store(true)
	srv.storm(cfg.Cause, out, cfg.Capacity, cfg.Server)
	select {
	case <-srv.allBack:
	case <-time.After(cfg.Timeout):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	srv.endStorm()
	out.finish()
	return out, nil
}
