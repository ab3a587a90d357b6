// Package detect measures how long the heartbeat takes to find a dead
// peer: N wsreconnect Conns, each through its own TCP proxy on 127.0.0.1
// to a server that answers pings. At a random instant the server sends a
// marker message; right after it the peer goes dead, in one of three ways:
//
//   - proxy: the proxy drops everything in both directions after
//     forwarding the marker (a blackholed path; the sockets stay open);
//   - stopread: the server stops reading after sending the marker (a hung
//     server: no pong, no frame, socket open);
//   - inflight: the proxy first drops everything the client sends, waits
//     until it has swallowed a ping, lets the marker through while that
//     ping waits for its pong, then drops everything: the last sign of
//     life arrives while a ping is outstanding.
//
// Detection time is from the moment the application reads the marker (the
// last frame that arrived) to the Disconnect reporting
// ErrHeartbeatTimeout; the ideal is interval + timeout.
package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/internal/bench/rawws"
)

// Modes are the ways a peer dies.
var Modes = []string{"proxy", "stopread", "inflight"}

var marker = []byte("wsreconnect-bench: last frame before the blackhole")

// Config is one measurement.
type Config struct {
	Mode              string
	N                 int
	Interval, Timeout time.Duration
	Spread            time.Duration // the markers are sent at random over this; 1 s when 0
}

// Result is what one measurement found.
type Result struct {
	Mode       string    `json:"mode"`
	N          int       `json:"n"`
	Interval   string    `json:"interval"`
	Timeout    string    `json:"timeout"`
	Ratios     []float64 `json:"ratios"` // detection ÷ (interval + timeout), sorted
	Median     float64   `json:"median"`
	Max        float64   `json:"max"`
	Min        float64   `json:"min"`
	OtherEnds  int       `json:"other_ends"` // disconnects not caused by the heartbeat
	Undetected int       `json:"undetected"`
}

// server is the peer: it answers pings until told to send the marker.
type server struct {
	url string
	hs  *http.Server
	wg  sync.WaitGroup

	mu    sync.Mutex
	conns map[int]*rawws.Conn // latest connection of each client
	all   []*rawws.Conn
	up    map[int]chan struct{}
}

func startServer(n int) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{url: ln.Addr().String(), conns: map[int]*rawws.Conn{}, up: map[int]chan struct{}{}}
	for i := range n {
		s.up[i] = make(chan struct{})
	}
	s.hs = &http.Server{Handler: http.HandlerFunc(s.serve)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.hs.Serve(ln)
	}()
	return s, nil
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.URL.Query().Get("id"))
	if err != nil {
		http.Error(w, "missing id", http.StatusBadRequest)
		return
	}
	c, err := rawws.Upgrade(w, r)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.wg.Add(1)
	first := s.conns[id] == nil
	s.conns[id] = c
	s.all = append(s.all, c)
	s.mu.Unlock()
	if first {
		close(s.up[id])
	}
	defer s.wg.Done()
	c.ReadLoop()
	// A server that stopped reading keeps its socket open until close.
}

func (s *server) conn(id int) *rawws.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[id]
}

func (s *server) close() {
	_ = s.hs.Close()
	s.mu.Lock()
	for _, c := range s.all {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// proxy forwards one client's connections to the server, and can go dead.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	cur   *pipe
	pipes []*pipe
}

type pipe struct {
	client, server net.Conn
	upDead         atomic.Bool   // drop client → server
	downDead       atomic.Bool   // drop server → client
	armed          atomic.Bool   // once the marker passes, drop everything
	swallowed      chan struct{} // closed when a dropped chunk held a ping
	swallowOnce    sync.Once
}

func startProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pp := &pipe{client: c, server: s, swallowed: make(chan struct{})}
		p.mu.Lock()
		p.cur = pp
		p.pipes = append(p.pipes, pp)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); pp.up() }()
		go func() { defer p.wg.Done(); pp.down() }()
	}
}

func (p *proxy) current() *pipe {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, pp := range p.pipes {
		_ = pp.client.Close()
		_ = pp.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// up copies client → server; once dead it reads and drops.
func (pp *pipe) up() {
	defer pp.client.Close()
	defer pp.server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := pp.client.Read(buf)
		if n > 0 {
			if pp.upDead.Load() {
				// A client frame with opcode ping (masked: 0x89 first).
				if buf[0] == 0x89 {
					pp.swallowOnce.Do(func() { close(pp.swallowed) })
				}
			} else if _, werr := pp.server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// down copies server → client; once dead it reads and drops. When armed,
// the chunk holding the marker is the last one through.
func (pp *pipe) down() {
	defer pp.client.Close()
	defer pp.server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := pp.server.Read(buf)
		if n > 0 && !pp.downDead.Load() {
			if _, werr := pp.client.Write(buf[:n]); werr != nil {
				return
			}
			if pp.armed.Load() && bytes.Contains(buf[:n], marker) {
				pp.upDead.Store(true)
				pp.downDead.Store(true)
			}
		}
		if err != nil {
			return
		}
	}
}

type probe struct {
	conn     *wsreconnect.Conn
	lastSeen atomic.Int64 // unix nanos when the application read the marker
	ended    chan wsreconnect.Disconnect
	endedAt  atomic.Int64
	reader   sync.WaitGroup
}

// Run measures cfg.N connections at once.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Spread == 0 {
		cfg.Spread = time.Second
	}
	res := Result{Mode: cfg.Mode, N: cfg.N, Interval: cfg.Interval.String(), Timeout: cfg.Timeout.String()}
	if !slices.Contains(Modes, cfg.Mode) {
		return res, fmt.Errorf("unknown mode %q", cfg.Mode)
	}
	srv, err := startServer(cfg.N)
	if err != nil {
		return res, err
	}
	defer srv.close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	proxies := make([]*proxy, cfg.N)
	probes := make([]*probe, cfg.N)
	defer func() {
		for _, pr := range probes {
			if pr != nil && pr.conn != nil {
				_ = pr.conn.CloseNow()
				pr.reader.Wait()
			}
		}
		for _, p := range proxies {
			if p != nil {
				p.close()
			}
		}
	}()
	for i := range cfg.N {
		p, err := startProxy(srv.url)
		if err != nil {
			return res, err
		}
		proxies[i] = p
		pr := &probe{ended: make(chan wsreconnect.Disconnect, 1)}
		probes[i] = pr
		url := "ws://" + p.ln.Addr().String() + "/?id=" + strconv.Itoa(i)
		c, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
		},
			wsreconnect.WithHeartbeat(cfg.Interval, cfg.Timeout),
			wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
				if pr.endedAt.CompareAndSwap(0, time.Now().UnixNano()) {
					pr.ended <- d
				}
			}))
		if err != nil {
			return res, err
		}
		pr.conn = c
		pr.reader.Add(1)
		go func() {
			defer pr.reader.Done()
			for {
				_, p, err := c.Read(context.Background())
				if err != nil {
					return
				}
				if bytes.Equal(p, marker) {
					pr.lastSeen.Store(time.Now().UnixNano())
				}
			}
		}()
		select {
		case <-srv.up[i]:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	// Let every connection go through a few heartbeat periods first.
	time.Sleep(2 * (cfg.Interval + cfg.Timeout))

	var wg sync.WaitGroup
	errs := make([]error, cfg.N)
	for i := range cfg.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(rand.N(cfg.Spread))
			errs[i] = kill(ctx, cfg, srv.conn(i), proxies[i].current())
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	deadline := time.After(3*(cfg.Interval+cfg.Timeout) + 2*time.Second)
	period := cfg.Interval + cfg.Timeout
	for _, pr := range probes {
		select {
		case d := <-pr.ended:
			if !errors.Is(d.Err, wsreconnect.ErrHeartbeatTimeout) {
				res.OtherEnds++
				continue
			}
			seen := pr.lastSeen.Load()
			if seen == 0 {
				res.OtherEnds++
				continue
			}
			res.Ratios = append(res.Ratios, float64(pr.endedAt.Load()-seen)/float64(period))
		case <-deadline:
			res.Undetected++
		}
	}
	slices.Sort(res.Ratios)
	if k := len(res.Ratios); k > 0 {
		res.Min, res.Max = res.Ratios[0], res.Ratios[k-1]
		if k%2 == 1 {
			res.Median = res.Ratios[k/2]
		} else {
			res.Median = (res.Ratios[k/2-1] + res.Ratios[k/2]) / 2
		}
	}
	return res, nil
}

// kill sends the marker and makes the peer dead right after it.
func kill(ctx context.Context, cfg Config, c *rawws.Conn, pp *pipe) error {
	if c == nil || pp == nil {
		return errors.New("detect: connection not up")
	}
	switch cfg.Mode {
	case "stopread":
		c.StopReading()
	case "proxy":
		pp.armed.Store(true)
	case "inflight":
		pp.upDead.Store(true)
		select {
		case <-pp.swallowed:
		case <-time.After(4 * (cfg.Interval + cfg.Timeout)):
			return errors.New("detect: no ping within 4 periods")
		case <-ctx.Done():
			return ctx.Err()
		}
		// The ping now waits for a pong that cannot come; let the marker
		// arrive somewhere in its timeout.
		time.Sleep(rand.N(cfg.Timeout * 8 / 10))
		pp.armed.Store(true)
	}
	if err := c.WriteText(marker); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
