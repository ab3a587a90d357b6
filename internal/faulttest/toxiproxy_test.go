package faulttest

// Toxiproxy, embedded in the test process, sits between the client and a
// coder/websocket server on 127.0.0.1. Each fault runs three times: while
// the connection is idle (only the heartbeat talks), while the client reads
// the server's stream, and while it writes a stream the server echoes.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	"github.com/wsreconnect/wsreconnect"
)

type mode int

const (
	idle mode = iota
	reading
	writingMode
)

func (m mode) String() string { return [...]string{"idle", "reading", "writing"}[m] }

var modes = []mode{idle, reading, writingMode}

// toxEnv is one scenario: server, proxy, client, and the load of its mode.
type toxEnv struct {
	t     *testing.T
	mode  mode
	w     *world
	srv   *server
	proxy *toxiproxy.Proxy
	c     *client

	hbInterval, hbTimeout time.Duration
	maxDelay              time.Duration
}

type envConfig struct {
	hbInterval, hbTimeout time.Duration
	initialDelay          time.Duration
	maxDelay              time.Duration
	stableUptime          time.Duration
	dialTimeout           time.Duration
	writeEvery            time.Duration
	writeTimeout          time.Duration
}

func defaultEnvConfig() envConfig {
	return envConfig{
		hbInterval:   200 * time.Millisecond,
		hbTimeout:    200 * time.Millisecond,
		initialDelay: 50 * time.Millisecond,
		maxDelay:     500 * time.Millisecond,
		stableUptime: time.Second,
		dialTimeout:  2 * time.Second,
		writeEvery:   5 * time.Millisecond,
		writeTimeout: 2 * time.Second,
	}
}

func newToxEnv(t *testing.T, m mode, cfg envConfig) *toxEnv {
	w := newWorld()
	noLeaks(t, w)
	srv := newServer(w).start(t)

	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(api, strings.ReplaceAll(t.Name(), "/", "_"), "127.0.0.1:0", srv.addr)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)

	e := &toxEnv{t: t, mode: m, w: w, srv: srv, proxy: p,
		hbInterval: cfg.hbInterval, hbTimeout: cfg.hbTimeout, maxDelay: cfg.maxDelay}
	e.c = dialClient(t, w, w.dialer(t, fixedURL("ws://"+p.Listen+"/"), nil),
		wsreconnect.WithHeartbeat(cfg.hbInterval, cfg.hbTimeout),
		wsreconnect.WithInitialDelay(cfg.initialDelay),
		wsreconnect.WithMaxDelay(cfg.maxDelay),
		wsreconnect.WithStableUptime(cfg.stableUptime),
		wsreconnect.WithDialTimeout(cfg.dialTimeout),
	)
	switch m {
	case reading:
		srv.streaming.Store(true)
	case writingMode:
		e.c.writeTimeout = cfg.writeTimeout
		e.c.startWriter(cfg.writeEvery, sizeMix)
	}
	return e
}

// progress waits until the mode's load has moved on by n messages: the
// client read n more stream messages or echoes, or, when idle, the server
// answered n/25+1 more heartbeat pings.
func (e *toxEnv) progress(n int) {
	e.t.Helper()
	switch e.mode {
	case idle:
		want := e.srv.pings.Load() + int64(n/25+1)
		e.w.waitFor(e.t, waitTimeout, fmt.Sprintf("%d heartbeat pings", n/25+1), func() bool { return e.srv.pings.Load() >= want })
	case reading:
		_, s := e.w.progress()
		e.w.waitFor(e.t, waitTimeout, fmt.Sprintf("%d more stream messages", n), func() bool { return e.w.streamGot >= s+n })
	case writingMode:
		ec, _ := e.w.progress()
		e.w.waitFor(e.t, waitTimeout, fmt.Sprintf("%d more echoes", n), func() bool { return e.w.echoes >= ec+n })
	}
}

func (e *toxEnv) addToxic(name, typ, stream string, attrs map[string]any) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attrs})
	if _, err := e.proxy.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		e.t.Fatalf("add toxic %s: %v", body, err)
	}
}

func (e *toxEnv) removeToxic(names ...string) {
	e.t.Helper()
	for _, name := range names {
		if err := e.proxy.Toxics.RemoveToxic(e.t.Context(), name); err != nil {
			e.t.Fatalf("remove toxic %s: %v", name, err)
		}
	}
}

// both adds the same toxic to both directions, named name_up and name_down.
func (e *toxEnv) both(name, typ string, attrs map[string]any) []string {
	e.addToxic(name+"_down", typ, "downstream", attrs)
	e.addToxic(name+"_up", typ, "upstream", attrs)
	return []string{name + "_down", name + "_up"}
}

// recovered waits for a new connection after the fault (one beyond n
// connections) and for the load to flow on it again.
func (e *toxEnv) recovered(n int) {
	e.t.Helper()
	e.w.waitConnect(e.t, n, waitTimeout)
	e.progress(20)
}

// finish flushes, checks every invariant, closes the client and checks that
// Close was prompt.
func (e *toxEnv) finish() {
	e.t.Helper()
	marker := e.c.flush(waitTimeout)
	if got := e.c.conn.State(); got != wsreconnect.StateConnected {
		e.t.Errorf("state after the fault healed = %v", got)
	}
	a := e.w.check(e.t, checkOpts{serverRecords: true, marker: marker, maxDelay: e.maxDelay, slack: slack})
	took := e.c.close(true)
	if took > 3*time.Second {
		e.t.Errorf("Close took %v on a healthy connection", took)
	}
	e.t.Logf("%v; Close took %v", a, took)
}

func (e *toxEnv) expect(ev discEvent, code int, heartbeat bool) {
	e.t.Helper()
	d := ev.d
	if int(d.Code) != code || !d.Reconnect || d.Decision != wsreconnect.Retry {
		e.t.Errorf("disconnect %v: want code %d and a retry on the standard schedule", d, code)
	}
	if isHeartbeat(d) != heartbeat {
		e.t.Errorf("disconnect %v: heartbeat timeout %v, want %v", d, isHeartbeat(d), heartbeat)
	}
	if d.Uptime <= 0 {
		e.t.Errorf("disconnect %v: an established connection ended, yet Uptime is %v", d, d.Uptime)
	}
}

func eachMode(t *testing.T, cfg func(mode) envConfig, run func(*toxEnv)) {
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) {
			c := defaultEnvConfig()
			if cfg != nil {
				c = cfg(m)
			}
			run(newToxEnv(t, m, c))
		})
	}
}

// reset_peer: the proxy closes both sides at the first byte that passes
// (with RST when it still had unread data): 1006, found at once (not by the
// heartbeat), and a reconnect.
func TestToxiproxyResetPeer(t *testing.T) {
	eachMode(t, nil, func(e *toxEnv) {
		e.progress(20)
		n, conns := e.w.numDisconnects(), e.w.numConnects()
		toxics := e.both("reset", "reset_peer", map[string]any{"timeout": 0})
		ev := e.w.waitDisconnect(e.t, n, waitTimeout)
		e.removeToxic(toxics...)
		e.expect(ev, 1006, false)
		e.t.Logf("reset found: %v", ev.d)
		e.recovered(conns)
		e.finish()
	})
}

// timeout with 0: a blackhole; both directions swallow everything and the
// sockets stay open. Only the heartbeat can find it: 1006 with
// ErrHeartbeatTimeout within interval + timeout (+ slack).
func TestToxiproxyTimeoutBlackhole(t *testing.T) {
	eachMode(t, nil, func(e *toxEnv) {
		e.progress(20)
		n, conns := e.w.numDisconnects(), e.w.numConnects()
		start := time.Now()
		toxics := e.both("blackhole", "timeout", map[string]any{"timeout": 0})
		ev := e.w.waitDisconnect(e.t, n, waitTimeout)
		found := ev.at.Sub(start)
		// Removing a timeout toxic closes the links it swallowed,
		// including a handshake hanging in it.
		e.removeToxic(toxics...)
		e.expect(ev, 1006, true)
		if bound := e.hbInterval + e.hbTimeout + slack; found > bound {
			e.t.Errorf("blackhole found after %v, want within %v", found, bound)
		}
		e.t.Logf("blackhole found after %v: %v", found, ev.d)
		e.recovered(conns)
		e.finish()
	})
}

// latency with jitter: while the round trip stays below the heartbeat
// timeout nothing is mistaken for a dead peer; once the latency exceeds it
// (a gap in the stream, or a pong later than the timeout) the heartbeat
// reconnects; back to low latency, the client settles again.
func TestToxiproxyLatency(t *testing.T) {
	cfg := func(mode) envConfig {
		c := defaultEnvConfig()
		c.hbTimeout = 500 * time.Millisecond
		c.dialTimeout = 8 * time.Second // a handshake crosses the slow link twice
		return c
	}
	low := map[string]any{"latency": 60, "jitter": 30}     // round trip at most 180 ms
	high := map[string]any{"latency": 1500, "jitter": 100} // round trip about 3 s
	eachMode(t, cfg, func(e *toxEnv) {
		e.progress(20)
		n, conns := e.w.numDisconnects(), e.w.numConnects()
		// toxiproxy's UpdateToxicJson rewrites a running toxic's fields
		// without a lock (a data race); swap toxics instead.
		toxics := e.both("latency_low", "latency", low)
		// Ten heartbeat periods' worth of load over the slow link.
		e.progress(200)
		if ds := e.w.disconnectsSince(n); len(ds) != 0 {
			e.t.Fatalf("latency below the heartbeat timeout caused %d disconnects, first: %v", len(ds), ds[0].d)
		}
		high := e.both("latency_high", "latency", high)
		e.removeToxic(toxics...)
		ev := e.w.waitDisconnect(e.t, n, waitTimeout)
		toxics = e.both("latency_low2", "latency", low)
		// Removing the slow toxic releases what it held at once.
		e.removeToxic(high...)
		e.expect(ev, 1006, true)
		e.t.Logf("latency above the timeout found: %v", ev.d)
		e.recovered(conns)
		n = e.w.numDisconnects()
		e.progress(100)
		if ds := e.w.disconnectsSince(n); len(ds) != 0 {
			e.t.Errorf("back at low latency, %d more disconnects, first: %v", len(ds), ds[0].d)
		}
		e.removeToxic(toxics...)
		e.finish()
	})
}

// slicer: the proxy cuts the byte stream into slices of 4 to 44 bytes (and
// the 16-32 KiB messages into hundreds): every message still arrives whole,
// and nothing disconnects.
func TestToxiproxySlicer(t *testing.T) {
	// A timeout that a pong, sliced into bytes, meets on a loaded machine
	// under the race detector (with 200 ms it sometimes did not: a false
	// death, of the test's making).
	cfg := func(mode) envConfig {
		c := defaultEnvConfig()
		c.hbTimeout = time.Second
		return c
	}
	eachMode(t, cfg, func(e *toxEnv) {
		e.progress(20)
		n := e.w.numDisconnects()
		toxics := e.both("slicer", "slicer", map[string]any{"average_size": 24, "size_variation": 20, "delay": 10})
		if e.mode == reading {
			e.srv.big.Store(64 << 10)
		}
		if e.mode == writingMode {
			if err := e.c.writeOne(64 << 10); err != nil {
				e.t.Errorf("writing 64 KiB through the slicer: %v", err)
			}
		}
		e.progress(200)
		if ds := e.w.disconnectsSince(n); len(ds) != 0 {
			e.t.Errorf("the slicer caused %d disconnects, first: %v", len(ds), ds[0].d)
		}
		e.removeToxic(toxics...)
		e.finish()
	})
}

// limit_data: the proxy closes the connection after a few more bytes, in the
// middle of a frame (a pong's header; a 64 KiB message; the echoes and
// writes): a clean 1006, and the partial message is never delivered (every
// message read is checked).
func TestToxiproxyLimitData(t *testing.T) {
	eachMode(t, nil, func(e *toxEnv) {
		e.progress(20)
		n, conns := e.w.numDisconnects(), e.w.numConnects()
		var toxics []string
		switch e.mode {
		case idle:
			// The next pong is cut after its first byte.
			e.addToxic("limit_down", "limit_data", "downstream", map[string]any{"bytes": 1})
			toxics = []string{"limit_down"}
		case reading:
			e.srv.streaming.Store(false)
			e.addToxic("limit_down", "limit_data", "downstream", map[string]any{"bytes": 100})
			toxics = []string{"limit_down"}
			e.srv.big.Store(64 << 10)
		case writingMode:
			e.addToxic("limit_down", "limit_data", "downstream", map[string]any{"bytes": 100})
			e.addToxic("limit_up", "limit_data", "upstream", map[string]any{"bytes": 1000})
			toxics = []string{"limit_down", "limit_up"}
		}
		ev := e.w.waitDisconnect(e.t, n, waitTimeout)
		e.removeToxic(toxics...)
		e.srv.streaming.Store(e.mode == reading)
		e.expect(ev, 1006, false)
		e.t.Logf("cut found: %v", ev.d)
		e.recovered(conns)
		e.finish()
	})
}

// bandwidth: 64 KB/s each way. A 96 KiB message takes 1.5 s to trickle in,
// far longer than heartbeat interval + timeout: a slow link is not a dead
// one. When writing, a ping queues behind the client's own writes, so the
// heartbeat timeout must exceed that queue (here 3 s) and the writer slows.
func TestToxiproxyBandwidth(t *testing.T) {
	cfg := func(m mode) envConfig {
		c := defaultEnvConfig()
		if m == writingMode {
			c.hbTimeout = 3 * time.Second
			c.writeEvery = 20 * time.Millisecond
		}
		return c
	}
	eachMode(t, cfg, func(e *toxEnv) {
		e.progress(20)
		n := e.w.numDisconnects()
		toxics := e.both("bandwidth", "bandwidth", map[string]any{"rate": 64})
		start := time.Now()
		switch e.mode {
		case idle:
			e.progress(40) // five heartbeat pings answered over the slow link
		case reading:
			e.srv.streaming.Store(false)
			e.srv.big.Store(96 << 10)
			e.w.waitFor(e.t, waitTimeout, "the 96 KiB message", func() bool {
				for _, n := range e.w.gotBytes {
					if n > 96<<10 {
						return true
					}
				}
				return false
			})
			took := time.Since(start)
			e.t.Logf("96 KiB arrived over the slow link in %v", took)
			if took < e.hbInterval+e.hbTimeout {
				e.t.Errorf("96 KiB arrived in %v: the link was not slow enough to test anything", took)
			}
			e.srv.streaming.Store(true)
			e.progress(20)
		case writingMode:
			if err := e.c.writeOneTimeout(96<<10, 10*time.Second); err != nil {
				e.t.Errorf("writing 96 KiB over the slow link: %v", err)
			}
			e.progress(40)
			e.t.Logf("96 KiB written and echoes flowing after %v", time.Since(start))
		}
		if ds := e.w.disconnectsSince(n); len(ds) != 0 {
			e.t.Errorf("a slow link caused %d disconnects, first: %v", len(ds), ds[0].d)
		}
		e.removeToxic(toxics...)
		e.finish()
	})
}

// The proxy disabled (listener closed, connections cut), then enabled: 1006,
// then refused dials whose delays follow the standard schedule (attempt n
// waits within [init·2^(n-2), init·2^(n-1)], capped), and the first dial
// after the proxy is back connects.
func TestToxiproxyDisabled(t *testing.T) {
	const initial, maxDelay = 100 * time.Millisecond, 800 * time.Millisecond
	cfg := func(m mode) envConfig {
		c := defaultEnvConfig()
		c.initialDelay, c.maxDelay, c.stableUptime = initial, maxDelay, 300*time.Millisecond
		c.writeTimeout = 300 * time.Millisecond // Writes during the outage fail
		return c
	}
	eachMode(t, cfg, func(e *toxEnv) {
		e.progress(20)
		// Let the connection become stable, so the schedule starts afresh.
		e.w.mu.Lock()
		up := e.w.connects[len(e.w.connects)-1]
		e.w.mu.Unlock()
		time.Sleep(time.Until(up.Add(400 * time.Millisecond)))

		n, conns := e.w.numDisconnects(), e.w.numConnects()
		e.proxy.Stop()
		ev := e.w.waitDisconnect(e.t, n, waitTimeout)
		e.expect(ev, 1006, false)
		// Four refused dials.
		e.w.waitFor(e.t, waitTimeout, "4 refused dials", func() bool { return len(e.w.disconnects) >= n+5 })
		restart := time.Now()
		if err := e.proxy.Start(); err != nil {
			e.t.Fatalf("toxiproxy restart: %v", err)
		}
		e.w.waitConnect(e.t, conns, waitTimeout)
		e.w.mu.Lock()
		back := e.w.connects[conns]
		ds := append([]discEvent(nil), e.w.disconnects[n:]...)
		e.w.mu.Unlock()

		for i, ev := range ds {
			d := ev.d
			if d.Attempt != i+1 {
				e.t.Errorf("disconnect %v: attempt %d, want %d", d, d.Attempt, i+1)
			}
			if i > 0 && (d.Code != 0 || d.Uptime != 0) {
				e.t.Errorf("disconnect %v: a refused dial should have code 0 and no uptime", d)
			}
			hi := min(initial<<max(d.Attempt-1, 0), maxDelay)
			lo := hi / 2
			if d.Attempt == 1 {
				lo = 0
			}
			if d.Delay < lo || d.Delay > hi {
				e.t.Errorf("disconnect %v: delay %v outside the schedule's window [%v, %v] for attempt %d", d, d.Delay, lo, hi, d.Attempt)
			}
		}
		last := ds[len(ds)-1]
		if !last.at.Before(restart) && last.d.Code == 0 {
			e.t.Errorf("a dial after the proxy came back failed: %v", last.d)
		}
		if wait := back.Sub(restart); wait > maxDelay+slack {
			e.t.Errorf("reconnected %v after the proxy came back; the schedule allows at most %v", wait, maxDelay)
		}
		e.t.Logf("outage: %d disconnects, back %v after the restart", len(ds), back.Sub(restart))
		e.progress(20)
		e.finish()
	})
}
