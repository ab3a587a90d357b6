//go:build !js

package wsreconnect

// TestSimulation explores the Conn's lifecycle by itself, in the spirit of
// deterministic simulation testing: each schedule, drawn from a seed, runs
// a Conn against the scripted server of simserver_test.go (drops, cut
// frames, close codes of every class, refused and hanging handshakes,
// stalls, silent and pinging peers) while several goroutines Read, Write,
// Reconnect and Close, with random contexts, and callbacks that call back
// into the Conn. Most schedules run on a fake clock (testing/synctest) over
// net.Pipe; the rest over real loopback TCP. After each run, invariants
// check everything that was recorded:
//
//   - Read returned only whole messages the server sent, in the order sent,
//     none twice, and none skipped: of each connection, a prefix of what
//     the server wrote, all of it when the server ended the connection;
//   - each Write that returned nil reached the server (or, with a send
//     queue, was counted unsent by Close); a Write whose ctx had ended
//     returned an error and sent nothing;
//   - never two live connections: a dial starts only once the previous
//     connection's socket is closed;
//   - each Disconnect agrees with what the server did, with DefaultPolicy
//     and with the schedules' bounds, and the next dial comes when it says;
//     a requested reconnect was asked for, and acted on at once; the
//     heartbeat judges only a peer that was silent for interval + timeout;
//   - Dial returns within its ctx; Close and CloseNow return within their
//     bounds, with Done closed, and every blocked call returns at once; no
//     callback starts after Close returned; no goroutine is left;
//   - with a healthy server, the Conn comes back and makes progress.
//
// WSRECONNECT_SIM sets the number of schedules (default 2000);
// WSRECONNECT_SIM_SEED runs one schedule (a failing one prints its seed).
// The goroutines' interleaving is the runtime's: a seed replays the same
// schedule, server plans and callbacks, not always the same interleaving.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

func TestSimulation(t *testing.T) {
	noLeaks(t)
	if v := os.Getenv("WSRECONNECT_SIM_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("WSRECONNECT_SIM_SEED=%q: %v", v, err)
		}
		runSim(t, seed)
		return
	}
	n := 2000
	if v := os.Getenv("WSRECONNECT_SIM"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("WSRECONNECT_SIM=%q: %v", v, err)
		}
	}
	base := uint64(1)
	if v := os.Getenv("WSRECONNECT_SIM_BASE"); v != "" {
		base, _ = strconv.ParseUint(v, 10, 64)
	}
	var failed atomic.Int64
	t.Run("schedules", func(t *testing.T) {
		for i := range n {
			seed := base + uint64(i)
			t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
				t.Parallel()
				if failed.Load() >= 5 && os.Getenv("WSRECONNECT_SIM_ALL") == "" {
					t.Skip("five schedules failed already")
				}
				runSim(t, seed)
				if t.Failed() {
					failed.Add(1)
				}
			})
		}
	})
}

// simConfig is one schedule: the Conn's options and what the world does.
type simConfig struct {
	tcp                     bool // real loopback TCP and real time: every duration is scaled down
	hbInterval, hbTimeout   time.Duration
	sendQueue               int
	dialTimeout             time.Duration
	initialDelay, maxDelay  time.Duration
	stableUptime            time.Duration
	onConnect, readGreeting bool
	policy                  bool
	raiseReadLimit          bool
	writers                 int
	dialCtx, chaos          time.Duration
	finalGraceful           bool
	finalCode               websocket.StatusCode
}

func newSimConfig(r *rand.Rand, tcp bool) simConfig {
	cfg := simConfig{
		tcp:            tcp,
		sendQueue:      []int{0, 0, 1, 4, 16}[r.IntN(5)],
		dialTimeout:    []time.Duration{time.Second, 3 * time.Second, 10 * time.Second}[r.IntN(3)],
		initialDelay:   time.Duration(10+r.IntN(990)) * time.Millisecond,
		stableUptime:   time.Duration(100+r.IntN(4900)) * time.Millisecond,
		onConnect:      r.IntN(10) < 7,
		policy:         r.IntN(5) == 0,
		raiseReadLimit: r.IntN(10) < 9,
		writers:        1 + r.IntN(3),
		dialCtx:        time.Duration(1+r.IntN(60)) * time.Second,
		chaos:          time.Duration(3+r.IntN(17)) * time.Second,
		finalGraceful:  r.IntN(2) == 0,
		finalCode:      []websocket.StatusCode{1000, 1001, 4000}[r.IntN(3)],
	}
	cfg.readGreeting = cfg.onConnect && r.IntN(2) == 0
	cfg.maxDelay = cfg.initialDelay + time.Duration(r.IntN(5000))*time.Millisecond
	if r.IntN(2) == 0 {
		cfg.hbInterval = []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second}[r.IntN(3)]
		cfg.hbTimeout = []time.Duration{100 * time.Millisecond, time.Second}[r.IntN(2)]
	}
	if tcp {
		for _, d := range []*time.Duration{&cfg.dialTimeout, &cfg.initialDelay, &cfg.maxDelay, &cfg.stableUptime,
			&cfg.dialCtx, &cfg.chaos, &cfg.hbInterval, &cfg.hbTimeout} {
			*d = simScale(*d, true)
		}
		cfg.dialCtx = max(cfg.dialCtx, time.Second)
		if cfg.hbInterval > 0 {
			cfg.hbInterval, cfg.hbTimeout = max(cfg.hbInterval, 20*time.Millisecond), max(cfg.hbTimeout, 20*time.Millisecond)
		}
	}
	return cfg
}

// simScaleTCP divides the durations of the schedules that run in real
// time, over TCP.
const simScaleTCP = 20

func simScale(d time.Duration, tcp bool) time.Duration {
	if !tcp || d == 0 {
		return d
	}
	return max(d/simScaleTCP, time.Millisecond)
}

func (cfg simConfig) String() string {
	return fmt.Sprintf("heartbeat %v/%v, queue %d, dial timeout %v, delays %v..%v, stable %v, OnConnect %v (reads greeting %v), policy %v, writers %d, chaos %v",
		cfg.hbInterval, cfg.hbTimeout, cfg.sendQueue, cfg.dialTimeout, cfg.initialDelay, cfg.maxDelay, cfg.stableUptime,
		cfg.onConnect, cfg.readGreeting, cfg.policy, cfg.writers, cfg.chaos)
}

func (cfg simConfig) options() []Option {
	return []Option{
		WithHeartbeat(cfg.hbInterval, cfg.hbTimeout),
		WithSendQueue(cfg.sendQueue),
		WithDialTimeout(cfg.dialTimeout),
		WithInitialDelay(cfg.initialDelay),
		WithMaxDelay(cfg.maxDelay),
		WithStableUptime(cfg.stableUptime),
		WithMaxRetryAfter(simMaxRetryAfter),
	}
}

// simTrace keeps the events of each schedule, to print a failing one's.
var simTrace = os.Getenv("WSRECONNECT_SIM_TRACE") != ""

const (
	simMaxRetryAfter = 10 * time.Second
	// simDialIgnoresCtx bounds how long a DialFunc that ignores its ctx
	// goes on.
	simDialIgnoresCtx = 10 * time.Second
)

// simPlanFor draws the server's plan for the client's dial n: in the chaos
// phase anything; once calm, a healthy server.
func simPlanFor(seed uint64, n int, calm, tcp bool) simPlan {
	p := simPlanDraw(seed, n, calm, tcp)
	for _, d := range []*time.Duration{&p.pingEvery, &p.sendEvery, &p.stallAfter, &p.stall, &p.endAfter} {
		*d = simScale(*d, tcp)
	}
	return p
}

func simPlanDraw(seed uint64, n int, calm, tcp bool) simPlan {
	r := rand.New(rand.NewPCG(seed, uint64(n)*7919))
	p := simPlan{readLimit: 1 << 20}
	if calm {
		// Healthy, and no pings: coder/websocket answers a ping from its
		// reader, under its write lock, so over net.Pipe (no buffer) a ping
		// that comes while the client writes to a server that echoes can
		// stop both ends, until coder/websocket's 5 s bound on the pong.
		p.ack = r.IntN(2) == 0
		return p
	}
	if r.IntN(3) == 0 {
		p.pingEvery = time.Duration(50+r.IntN(950)) * time.Millisecond
	}
	switch x := r.IntN(100); {
	case x < 1:
		p.reject = 401
		return p
	case x < 5 && !tcp: // the overload schedule waits at least 1 s
		p.reject = []int{429, 503}[r.IntN(2)]
		if r.IntN(3) > 0 {
			p.retryAfter = strconv.Itoa(1 + r.IntN(5))
		}
		return p
	case x < 8:
		p.reject = []int{500, 502}[r.IntN(2)]
		return p
	case x < 11:
		p.hang = true
		return p
	}
	p.greet = r.IntN(3) == 0
	p.ack = r.IntN(3) == 0
	p.noPong = r.IntN(6) == 0
	p.sends = r.IntN(20)
	p.sendEvery = time.Duration(r.IntN(500)) * time.Millisecond
	p.sendMax = []int{16, 16, 16, 200, 200, 200, 2000, 2000, 8000, 40 << 10}[r.IntN(10)]
	p.trickle = r.IntN(8) == 0
	if r.IntN(7) == 0 {
		p.stallAfter = time.Duration(r.IntN(1000)) * time.Millisecond
		p.stall = time.Duration(1+r.IntN(3000)) * time.Millisecond
	}
	if r.IntN(30) == 0 {
		p.readLimit = 64 << 10
	}
	p.endAfter = time.Duration(r.IntN(3000)) * time.Millisecond
	switch x := r.IntN(100); {
	case x < 10:
		p.end = simEndNone
	case x < 45:
		p.end = simEndClose
		p.code = []websocket.StatusCode{1001, 1011, 1012, 4000, 4999, 1013, 1000, 1008}[r.IntN(16)%8]
		if (p.code == 1000 || p.code == 1008) && r.IntN(4) > 0 || p.code == 1013 && tcp {
			p.code = 1001 // stops are rarer: they end the schedule
		}
	case x < 50:
		p.end = simEndEmptyClose
	case x < 75:
		p.end = simEndDrop
	default:
		p.end = simEndCut
		p.cutAt = []int{0, 0, 1, 100, 511, 512, 4096, 1 + r.IntN(8000)}[r.IntN(8)]
	}
	return p
}

// simWorld is one schedule's world: the Conn, its server, and the ledgers
// of what both did, under mu, ordered by a sequence number every event
// takes (next).
type simWorld struct {
	t    *testing.T
	seed uint64
	cfg  simConfig
	seq  atomic.Int64
	srv  *simServer
	conn atomic.Pointer[Conn]
	calm atomic.Bool

	closeReturned    atomic.Bool
	callbacksRunning atomic.Int64

	tmu   sync.Mutex // a leaf: ev may be called under the other locks
	t0    time.Time
	trace []string
	stop  chan struct{} // closed once the final Close has returned: the actors end

	mu           sync.Mutex
	violations   []string
	dials        []*simDial
	discs        []*simDisc
	reconnects   []int64     // when Reconnect was called (sequence numbers)
	reconnectAt  []time.Time // and when, on the clock
	probes       []int64     // when Probe was called (sequence numbers)
	probeAt      []time.Time // and when, on the clock
	writes       map[string]*simWrite
	reads        []simRead
	readStop     error       // the Read error that ended the reader, if not ErrClosed
	nextK        map[int]int // of each connection, the index of the next message due
	lastReadDial int         // the connection of the last message Read returned
	sockets      []*simSocket
	marker       chan struct{}
	markerID     string
	unsentCount  int
}

type simDial struct {
	n               int
	at, returnAt    time.Time
	seq, returnSeq  int64
	ok              bool
	ignoredCtx      bool
	onConnectFailed bool
}

type simDisc struct {
	d         Disconnect
	at        time.Time
	dial      int // the dial it reports
	seq       int64
	returnAt  time.Time // when OnDisconnect returned: the wait starts then
	returnSeq int64
}

type simWrite struct {
	id          string
	queued      bool // the Conn had a send queue
	precanceled bool
	seq, endSeq int64
	err         error
}

type simRead struct {
	dial, k int
	seq     int64
	viaHook bool // read by OnConnect with ReadOnConnect
}

// simSocket is the client's end of a connection, watched for Close.
type simSocket struct {
	net.Conn
	closed atomic.Bool
}

func (s *simSocket) Close() error {
	s.closed.Store(true)
	return s.Conn.Close()
}

func (w *simWorld) next() int64 { return w.seq.Add(1) }

// ev records an event in the trace printed when a schedule fails, and
// returns its sequence number.
func (w *simWorld) ev(format string, args ...any) int64 {
	seq := w.next()
	if !simTrace {
		return seq
	}
	w.tmu.Lock()
	defer w.tmu.Unlock()
	if w.t0.IsZero() {
		w.t0 = time.Now()
	}
	w.trace = append(w.trace, fmt.Sprintf("%5d %8v  ", seq, time.Since(w.t0).Round(time.Millisecond))+fmt.Sprintf(format, args...))
	if len(w.trace) > 20000 {
		w.trace = w.trace[len(w.trace)-10000:]
	}
	return seq
}

// d scales a duration of the schedule (see simScale).
func (w *simWorld) d(x time.Duration) time.Duration { return simScale(x, w.cfg.tcp) }

func (w *simWorld) violate(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, fmt.Sprintf(format, args...))
}

// callbackStarts records that a callback starts (none may after Close
// returned); the function it returns records that it returned. The world
// waits for its callbacks before it ends: the Conn does not wait for a
// callback Close abandoned.
func (w *simWorld) callbackStarts(name string) (returned func()) {
	if w.closeReturned.Load() {
		w.violate("%s started after Close returned", name)
	}
	w.callbacksRunning.Add(1)
	return func() { w.callbacksRunning.Add(-1) }
}

// waitCallbacks waits until the world's callbacks have returned. (Not a
// sync.WaitGroup: a callback the Conn began just before Close may reach
// its first line after Close returned, which a WaitGroup forbids.)
func (w *simWorld) waitCallbacks() {
	for w.callbacksRunning.Load() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *simWorld) rng(stream, n int) *rand.Rand {
	return rand.New(rand.NewPCG(w.seed, uint64(stream)<<32|uint64(n)))
}

func (w *simWorld) lastDial() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.dials)
}

func runSim(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	cfg := newSimConfig(r, r.IntN(50) == 0)
	w := &simWorld{t: t, seed: seed, cfg: cfg, writes: map[string]*simWrite{}}
	defer func() {
		if len(w.violations) > 0 || t.Failed() {
			if simTrace {
				t.Logf("trace (the last events):\n%s", strings.Join(w.trace, "\n"))
			}
			t.Errorf("schedule %d (%v; tcp %v):\n  %s\nreplay: WSRECONNECT_SIM_SEED=%d go test -race -count=1 -run '^TestSimulation$' . (WSRECONNECT_SIM_TRACE=1 prints the events)",
				seed, cfg, cfg.tcp, strings.Join(w.violations, "\n  "), seed)
		} else if testing.Verbose() {
			t.Logf("tcp %v: %d dials, %d disconnects, %d reads, %d writes, %d reconnects", cfg.tcp, len(w.dials), len(w.discs), len(w.reads), len(w.writes), len(w.reconnects))
		}
	}()
	if cfg.tcp {
		w.run(r)
		return
	}
	synctest.Test(t, func(t *testing.T) { w.run(r) })
}

// run plays the schedule, then checks the ledgers.
func (w *simWorld) run(r *rand.Rand) {
	cfg := w.cfg
	w.stop = make(chan struct{}) // in the bubble: a select on it blocks durably
	w.srv = newSimServer(w, func(n int) simPlan { return simPlanFor(w.seed, n, w.calm.Load(), cfg.tcp) })
	defer w.srv.Close()
	var client *http.Client
	url := "ws://sim.test/"
	if cfg.tcp {
		hs := httptest.NewServer(w.srv)
		defer hs.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
		url = "ws" + strings.TrimPrefix(hs.URL, "http")
	} else {
		client = &http.Client{Transport: wstest.PipeTransport{Handler: w.srv, Wrap: w.wrapSocket}}
	}

	opts := append(cfg.options(), w.callbacks()...)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.dialCtx)
	defer cancel()
	start := time.Now()
	c, err := Dial(dctx, w.dialFunc(client, url), opts...)
	if el := time.Since(start); !cfg.tcp && el > cfg.dialCtx {
		w.violate("Dial returned %v after it began, its ctx ended after %v", el, cfg.dialCtx)
	}
	if err != nil {
		w.checkDialError(err)
		w.waitCallbacks()
		w.srv.Close()
		w.checkLedgers(nil)
		return
	}
	w.conn.Store(c)

	var actors sync.WaitGroup
	w.marker = make(chan struct{})
	actors.Add(1)
	go func() { defer actors.Done(); w.reader(c) }()
	for i := 1; i <= cfg.writers; i++ {
		actors.Add(1)
		go func() { defer actors.Done(); w.writer(c, i) }()
	}
	ctrlDone := make(chan struct{})
	actors.Add(1)
	go func() { defer actors.Done(); defer close(ctrlDone); w.controller(c) }()

	w.sleepOrEnd(c, cfg.chaos)
	w.calm.Store(true)
	// The connection up now may be a chaos one; the next is healthy.
	w.reconnect()
	<-ctrlDone
	if !w.ended(c) {
		w.checkProgress(c)
	}
	// The final close.
	start = time.Now()
	var closeErr error
	if cfg.finalGraceful {
		closeErr = c.Close(cfg.finalCode, "bye")
	} else {
		closeErr = c.CloseNow()
	}
	el := time.Since(start)
	w.closeReturned.Store(true)
	w.checkClosed(c, closeErr, el, cfg.finalGraceful)
	close(w.stop)
	stopStart := time.Now()
	actors.Wait()
	if el := time.Since(stopStart); !cfg.tcp && el > 0 {
		w.violate("the Reads and Writes blocked at Close took %v more to return", el)
	}
	w.waitCallbacks()
	w.srv.Close()
	w.checkLedgers(c)
}

// sleepOrEnd sleeps d, or until c ends.
func (w *simWorld) sleepOrEnd(c *Conn, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.Done():
	}
}

func (w *simWorld) ended(c *Conn) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// pause waits d, or until the actors are stopped; it reports whether to go
// on.
func (w *simWorld) pause(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-w.stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
		return false
	}
}

func (w *simWorld) wrapSocket(c net.Conn) net.Conn {
	s := &simSocket{Conn: c}
	w.mu.Lock()
	w.sockets = append(w.sockets, s)
	w.mu.Unlock()
	return s
}

// dialFunc dials through client, checking first that no earlier
// connection is still open; some dials call CloseNow, or ignore their ctx.
func (w *simWorld) dialFunc(client *http.Client, url string) DialFunc {
	return func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		defer w.callbackStarts("the DialFunc")()
		w.mu.Lock()
		n := len(w.dials) + 1
		d := &simDial{n: n, at: time.Now(), seq: w.ev("dial %d", n)}
		w.dials = append(w.dials, d)
		for i, s := range w.sockets {
			if !s.closed.Load() {
				w.violations = append(w.violations, fmt.Sprintf("dial %d began while the socket of an earlier connection (%d of %d) was open", n, i+1, len(w.sockets)))
			}
		}
		w.mu.Unlock()
		r := w.rng(1, n)
		switch x := r.IntN(100); {
		case w.calm.Load():
		case x < 2:
			if c := w.conn.Load(); c != nil {
				_ = c.CloseNow()
				return nil, nil, errors.New("sim: the DialFunc closed the Conn")
			}
		case x < 5 && !w.cfg.tcp:
			// A DialFunc that ignores its ctx for a while.
			d.ignoredCtx = true
			time.Sleep(time.Duration(r.IntN(int(simDialIgnoresCtx))))
		}
		ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
			HTTPClient: client,
			HTTPHeader: http.Header{"X-Sim-Dial": {strconv.Itoa(n)}},
		})
		if ws != nil && w.cfg.raiseReadLimit {
			ws.SetReadLimit(1 << 20)
		}
		w.mu.Lock()
		d.returnSeq, d.returnAt, d.ok = w.ev("dial %d returned: %v", n, err), time.Now(), err == nil
		w.mu.Unlock()
		return ws, resp, err
	}
}

// callbacks are the options that make the Conn call back into the world.
func (w *simWorld) callbacks() []Option {
	opts := []Option{WithOnDisconnect(func(d Disconnect) {
		defer w.callbackStarts("OnDisconnect")()
		w.mu.Lock()
		rec := &simDisc{d: d, at: time.Now(), dial: len(w.dials), seq: w.ev("OnDisconnect: %v", d)}
		w.discs = append(w.discs, rec)
		i := len(w.discs)
		w.mu.Unlock()
		r := w.rng(2, i)
		switch x := r.IntN(100); {
		case w.calm.Load():
		case x < 3:
			w.reconnect()
		case x < 4:
			if c := w.conn.Load(); c != nil {
				_ = c.Close(websocket.StatusNormalClosure, "from OnDisconnect")
			}
		case x < 10:
			time.Sleep(w.d(time.Duration(r.IntN(2000)) * time.Millisecond))
		}
		w.mu.Lock()
		rec.returnAt, rec.returnSeq = time.Now(), w.ev("OnDisconnect returns")
		w.mu.Unlock()
	})}
	if simTrace {
		// The heartbeat's pings and the states, among the events printed
		// (the hooks run as they happen: the fake clock stands still).
		opts = append(opts, WithTrace(&Trace{
			PingSent:     func() { w.ev("client: ping sent") },
			PingAnswered: func(i PingAnsweredInfo) { w.ev("client: pong after %v", i.RTT) },
			StateChanged: func(s State) { w.ev("client: state %v", s) },
		}))
	}
	if w.cfg.onConnect {
		opts = append(opts, WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
			defer w.callbackStarts("OnConnect")()
			n := w.lastDial()
			r := w.rng(3, n)
			if w.cfg.readGreeting && simPlanFor(w.seed, n, w.calm.Load(), w.cfg.tcp).greet {
				typ, p, err := ReadOnConnect(ctx)
				if err != nil {
					w.mu.Lock()
					if dl := w.dialRec(n); dl != nil {
						dl.onConnectFailed = true
					}
					w.mu.Unlock()
					return err
				}
				w.gotMessage(typ, p, true)
			}
			hello := simClientMessage(0, n, websocket.MessageText, []byte("hello"))
			err := ws.Write(ctx, websocket.MessageText, hello)
			if err != nil {
				w.mu.Lock()
				if dl := w.dialRec(n); dl != nil {
					dl.onConnectFailed = true
				}
				w.mu.Unlock()
			}
			switch x := r.IntN(100); {
			case w.calm.Load():
			case x < 2:
				w.reconnect()
			case x < 3:
				if c := w.conn.Load(); c != nil {
					_ = c.CloseNow()
				}
			case x < 6:
				time.Sleep(w.d(time.Duration(r.IntN(500)) * time.Millisecond))
			}
			return err
		}))
	}
	if w.cfg.policy {
		var calls atomic.Int64
		opts = append(opts, WithPolicy(func(d Disconnect) Decision {
			defer w.callbackStarts("the policy")()
			if w.rng(4, int(calls.Add(1))).IntN(100) == 0 && !w.calm.Load() {
				if c := w.conn.Load(); c != nil {
					_ = c.Close(websocket.StatusNormalClosure, "from the policy")
				}
			}
			return DefaultPolicy(d)
		}))
	}
	return opts
}

func (w *simWorld) reconnect() {
	c := w.conn.Load()
	if c == nil {
		return
	}
	w.mu.Lock()
	w.reconnects = append(w.reconnects, w.ev("Reconnect"))
	w.reconnectAt = append(w.reconnectAt, time.Now())
	w.mu.Unlock()
	c.Reconnect()
}

func (w *simWorld) probe() {
	c := w.conn.Load()
	if c == nil {
		return
	}
	w.mu.Lock()
	w.probes = append(w.probes, w.ev("Probe"))
	w.probeAt = append(w.probeAt, time.Now())
	w.mu.Unlock()
	c.Probe()
}

// firstProbeBetween returns when Probe was first called between the events
// lo and hi (sequence numbers), not before since.
func (w *simWorld) firstProbeBetween(lo, hi int64, since time.Time) (time.Time, bool) {
	for i, s := range w.probes {
		if s > lo && s < hi && !w.probeAt[i].Before(since) {
			return w.probeAt[i], true
		}
	}
	return time.Time{}, false
}

// controller disrupts the Conn during the chaos phase.
func (w *simWorld) controller(c *Conn) {
	r := w.rng(5, 0)
	for !w.calm.Load() && !w.ended(c) {
		if !w.pause(w.d(time.Duration(r.IntN(2000)) * time.Millisecond)) {
			return
		}
		if w.calm.Load() {
			return
		}
		switch x := r.IntN(100); {
		case x < 50:
			w.reconnect()
		case x < 60:
			w.probe()
		case x < 70:
			_ = c.State()
			_ = c.Stats()
		case x < 72:
			w.finalCloseEarly(c, false)
			return
		case x < 73:
			w.finalCloseEarly(c, true)
			return
		}
	}
}

// finalCloseEarly closes the Conn in the middle of the chaos; the main
// goroutine's final Close then finds it closed.
func (w *simWorld) finalCloseEarly(c *Conn, graceful bool) {
	start := time.Now()
	var err error
	if graceful {
		err = c.Close(websocket.StatusGoingAway, "early")
	} else {
		err = c.CloseNow()
	}
	w.checkClosed(c, err, time.Since(start), graceful)
}

// reader reads until the Conn ends, checking each message.
func (w *simWorld) reader(c *Conn) {
	r := w.rng(6, 0)
	for {
		var d time.Duration
		switch x := r.IntN(100); {
		case x < 25:
			d = time.Duration(r.IntN(300)) * time.Millisecond
		case x < 30:
			d = time.Duration(r.IntN(3000)) * time.Millisecond
		}
		if !w.pause(w.d(d)) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if r.IntN(10) < 3 {
			ctx, cancel = context.WithTimeout(context.Background(), w.d(time.Duration(1+r.IntN(1000))*time.Millisecond))
		}
		typ, p, err := c.Read(ctx)
		ctxErr := ctx.Err()
		cancel()
		var se *StopError
		switch {
		case err == nil:
			w.gotMessage(typ, p, false)
		case errors.Is(err, ErrClosed):
			return
		case errors.As(err, &se):
			w.mu.Lock()
			w.readStop = err
			w.mu.Unlock()
			return
		case ctxErr != nil && errors.Is(err, ctxErr):
		default:
			w.violate("Read returned %v", err)
			return
		}
	}
}

// gotMessage checks a message read, and records it.
func (w *simWorld) gotMessage(typ websocket.MessageType, p []byte, viaHook bool) {
	prefix, f, body, err := parseSimMessage(p)
	switch {
	case err != nil:
		w.violate("Read returned a message the server never sent (%v)", err)
		return
	case prefix != 's' || len(f) != 2 || len(body) == 0:
		w.violate("Read returned a message the server never sent: %q", clip(p))
		return
	}
	switch body[0] {
	case 'e':
		pre, cf, _, err := parseSimMessage(body[1:])
		if err != nil || pre != 'c' || len(cf) != 3 {
			w.violate("an echo holds a corrupt message: %v %q", err, clip(body))
		} else if websocket.MessageType(cf[2]) != typ {
			w.violate("an echo of a %v message came as %v", websocket.MessageType(cf[2]), typ)
		}
		w.mu.Lock()
		if id := fmt.Sprintf("%d.%d", cf[0], cf[1]); id == w.markerID && w.marker != nil {
			close(w.marker)
			w.marker = nil
		}
		w.mu.Unlock()
	case 'a':
		w.mu.Lock()
		if string(body[1:]) == w.markerID && w.marker != nil {
			close(w.marker)
			w.marker = nil
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	rd := simRead{dial: f[0], k: f[1], seq: w.ev("read s%d.%d (OnConnect %v)", f[0], f[1], viaHook), viaHook: viaHook}
	// Each connection's messages come in the order sent, none skipped
	// (OnConnect's first, then Read's); Read returns the connections in
	// order.
	if w.nextK == nil {
		w.nextK = map[int]int{}
	}
	switch want := w.nextK[rd.dial]; {
	case rd.k < want:
		w.violations = append(w.violations, fmt.Sprintf("s%d.%d read again, or out of order (s%d.%d came before)", rd.dial, rd.k, rd.dial, want-1))
	case rd.k > want:
		w.violations = append(w.violations, fmt.Sprintf("Read skipped messages: s%d.%d came where s%d.%d was due", rd.dial, rd.k, rd.dial, want))
	}
	w.nextK[rd.dial] = rd.k + 1
	if !viaHook {
		if rd.dial < w.lastReadDial {
			w.violations = append(w.violations, fmt.Sprintf("Read out of order: s%d.%d after a message of connection %d", rd.dial, rd.k, w.lastReadDial))
		}
		w.lastReadDial = max(w.lastReadDial, rd.dial)
	}
	w.reads = append(w.reads, rd)
}

// writer writes numbered messages until the Conn ends.
func (w *simWorld) writer(c *Conn, id int) {
	r := w.rng(7, id)
	for n := 0; ; n++ {
		gap := time.Duration(r.IntN(500)) * time.Millisecond
		if w.calm.Load() {
			gap *= 8 // the calm phase checks progress; a few writes do
		}
		if !w.pause(w.d(gap)) {
			return
		}
		var size int
		switch x := r.IntN(100); {
		case x < 85:
			size = r.IntN(200)
		case x < 97:
			size = 200 + r.IntN(8<<10)
		case x < 99:
			size = 8<<10 + r.IntN(62<<10)
		default:
			size = 64<<10 + r.IntN(64<<10) // past the read limit of some plans
		}
		if w.calm.Load() && !w.cfg.raiseReadLimit {
			size = min(size, 30<<10) // its echo must not stop the Conn (1009)
		}
		typ := websocket.MessageBinary
		if r.IntN(2) == 0 {
			typ = websocket.MessageText
		}
		msg := simClientMessage(id, n, typ, simPayload(r, size, typ))
		rec := &simWrite{id: fmt.Sprintf("%d.%d", id, n), queued: w.cfg.sendQueue > 0}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		switch x := r.IntN(100); {
		case w.calm.Load():
			// A ctx that ends in the middle of a frame closes the
			// connection: the calm phase is for progress.
		case x < 8:
			cancel()
			rec.precanceled = true
		case x < 25:
			ctx, cancel = context.WithTimeout(context.Background(), w.d(time.Duration(1+r.IntN(200))*time.Millisecond))
		}
		w.mu.Lock()
		rec.seq = w.ev("write %s (%d bytes, precanceled %v)", rec.id, len(msg), rec.precanceled)
		w.writes[rec.id] = rec
		w.mu.Unlock()
		err := c.Write(ctx, typ, msg)
		cancel()
		w.mu.Lock()
		rec.err, rec.endSeq = err, w.ev("write %s: %v", rec.id, err)
		w.mu.Unlock()
		if rec.precanceled && err == nil {
			w.violate("Write %s with an ended ctx returned nil", rec.id)
		}
		var se *StopError
		if errors.Is(err, ErrClosed) || errors.As(err, &se) {
			return
		}
	}
}

// checkProgress writes a marker once the server is healthy again: it must
// come back, after the send queue.
func (w *simWorld) checkProgress(c *Conn) {
	// The longest a chaos plan can delay the next healthy connection: its
	// end or stall, a hanging handshake, a Retry-After, a backoff wait.
	wait := w.d(6*time.Second) + w.cfg.dialTimeout + max(w.cfg.maxDelay, time.Second) + 2*w.cfg.hbInterval + w.cfg.hbTimeout
	if !w.cfg.tcp {
		wait += simMaxRetryAfter + simDialIgnoresCtx
	}
	w.sleepOrEnd(c, wait)
	if w.ended(c) {
		return
	}
	w.mu.Lock()
	w.markerID = "99.0"
	marker := w.marker
	rec := &simWrite{id: w.markerID, queued: w.cfg.sendQueue > 0, seq: w.next()}
	w.writes[rec.id] = rec
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := c.Write(ctx, websocket.MessageText, simClientMessage(99, 0, websocket.MessageText, []byte("marker")))
	w.mu.Lock()
	rec.err, rec.endSeq = err, w.next()
	w.mu.Unlock()
	if err != nil {
		// A Write from the chaos (too big for the client's read limit,
		// say) may still stop the Conn: then the marker is excused.
		w.sleepOrEnd(c, 15*time.Second)
		var se *StopError
		if !errors.As(c.Err(), &se) && !errors.Is(c.Err(), ErrClosed) {
			w.violate("with a healthy server, the marker's Write failed after %v: %v (Stats %+v)", time.Since(start), err, c.Stats())
		}
		return
	}
	select {
	case <-marker:
	case <-ctx.Done():
		if !w.ended(c) {
			w.violate("with a healthy server, the marker came back not within 30 s (Stats %+v)", c.Stats())
		}
	case <-c.Done():
	}
}

// checkClosed checks what Close or CloseNow did.
func (w *simWorld) checkClosed(c *Conn, err error, el time.Duration, graceful bool) {
	bound := time.Duration(0)
	if graceful {
		bound = 11 * time.Second
	}
	if !w.cfg.tcp && el > bound {
		w.violate("Close (graceful %v) took %v", graceful, el)
	}
	var ue *UnsentError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		w.mu.Lock()
		w.unsentCount = max(w.unsentCount, ue.Count)
		w.mu.Unlock()
	case graceful:
		// The handshake may fail: a peer that is gone, or cut short.
	default:
		w.violate("CloseNow returned %v", err)
	}
	if !w.ended(c) {
		w.violate("Done was not closed when Close returned")
	}
	if c.State() != StateClosed {
		w.violate("State %v after Close", c.State())
	}
	var se *StopError
	if e := c.Err(); !errors.Is(e, ErrClosed) && !errors.As(e, &se) {
		w.violate("Err after Close: %v", e)
	}
	id := fmt.Sprintf("98.%d", w.next())
	msg := simClientMessage(98, 0, websocket.MessageText, []byte(id))
	w.mu.Lock()
	rec := &simWrite{id: "98.0", seq: w.next()}
	w.mu.Unlock()
	if e := c.Write(context.Background(), websocket.MessageText, msg); e == nil {
		w.violate("Write after Close returned nil")
		w.mu.Lock()
		w.writes[rec.id] = rec
		w.mu.Unlock()
	}
	if _, _, e := c.Read(context.Background()); e == nil {
		w.violate("Read after Close returned a message")
	}
}

// checkDialError checks an error from Dial against what the server did.
func (w *simWorld) checkDialError(err error) {
	var se *StopError
	switch {
	case errors.As(err, &se):
		w.mu.Lock()
		n := len(w.dials)
		w.mu.Unlock()
		if se.Disconnect.Reconnect || se.Disconnect.Decision != Stop {
			w.violate("Dial's StopError says it would reconnect: %v", se.Disconnect)
		}
		_ = n
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrClosed):
	default:
		w.violate("Dial returned %v", err)
	}
}

// checkLedgers checks what the client and the server recorded.
func (w *simWorld) checkLedgers(c *Conn) {
	w.srv.mu.Lock()
	defer w.srv.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	violate := func(format string, args ...any) {
		w.violations = append(w.violations, fmt.Sprintf(format, args...))
	}
	logs := map[int]*simConnLog{}
	received := map[string]bool{}
	for _, l := range w.srv.logs {
		logs[l.dial] = l
		for _, id := range l.received {
			received[id] = true
		}
	}

	// Writes.
	var lostQueued int
	var lostIDs []string
	for _, rec := range w.writes {
		switch {
		case rec.precanceled && received[rec.id]:
			violate("Write %s with an ended ctx reached the server", rec.id)
		case rec.err == nil && rec.endSeq != 0 && !received[rec.id]:
			if rec.queued {
				lostQueued++
				lostIDs = append(lostIDs, rec.id)
			} else if !w.cfg.tcp {
				violate("Write %s returned nil, and the server never received it", rec.id)
			}
		}
	}
	if lostQueued > w.unsentCount && !w.cfg.tcp {
		slices.Sort(lostIDs)
		violate("%d queued Writes returned nil and never reached the server (%v), but Close counted %d unsent", lostQueued, lostIDs, w.unsentCount)
	}

	// Reads: of each connection, all the server sent, when it ended it.
	readCount := map[int]int{}
	for _, rd := range w.reads {
		readCount[rd.dial]++
	}
	lastRead := w.lastReadDial

	// Disconnects.
	for i, dr := range w.discs {
		d := dr.d
		n := i + 1
		l := logs[n]
		dl := w.dialRec(n)
		requested := errors.Is(d.Err, ErrReconnectRequested)
		asked := w.reconnectDuring(dl, dr)
		if requested {
			if !asked {
				violate("disconnect %d is a requested reconnect, but no Reconnect was called during dial %d's connection", n, n)
			}
			if d.Decision != Retry || !d.Reconnect || d.Delay != 0 {
				violate("disconnect %d (requested): %v", n, d)
			}
			// Acted on at once: the connection ended within the close
			// frame's grace of the call (and of what OnConnect still did).
			if at, ok := w.firstReconnectDuring(dl, dr); ok && !w.cfg.tcp {
				if late := dr.at.Sub(at); late > reconnectGrace+600*time.Millisecond {
					violate("disconnect %d: Reconnect was called %v before the requested reconnect ended the connection", n, late)
				}
			}
		} else {
			clean := d
			clean.Decision, clean.Reconnect, clean.Delay = 0, false, 0
			if want := DefaultPolicy(clean); d.Decision != want {
				violate("disconnect %d: decision %v, DefaultPolicy says %v: %v", n, d.Decision, want, d)
			}
			w.checkDelay(n, d)
		}
		if l == nil {
			continue
		}
		hbDeath := errors.Is(d.Err, ErrHeartbeatTimeout)
		if hbDeath {
			timeout := w.cfg.hbTimeout
			if w.cfg.hbInterval == 0 {
				timeout = DefaultHeartbeatTimeout // Probe's
			}
			step := max(min(w.cfg.hbInterval, timeout)/8, time.Millisecond)
			if w.cfg.hbInterval == 0 {
				step = max(timeout/8, time.Millisecond)
			}
			var death time.Time
			if dl != nil {
				death = w.dialReturnTime(dl).Add(d.Uptime)
				if d.Uptime == 0 {
					death = dr.at // it died while being set up: no uptime
				}
			}
			// Silent for the heartbeat's interval and timeout, or for a
			// probe's timeout (a Probe while the heartbeat's own probe
			// was out leaves that one to judge).
			// A frame that completes at the instant of the death was read
			// while the connection was drained (the client's reader was
			// stuck until the kill: say, in a pong to a server that stopped
			// reading): the one before was the last evidence.
			last := l.lastWrite
			if !last.Before(death) {
				last = l.prevWrite
			}
			silence := death.Sub(last)
			// The probe that judged: the first after the last evidence
			// (one before it was answered by it).
			var probedAt time.Time
			probed := false
			if dl != nil {
				probedAt, probed = w.firstProbeBetween(dl.returnSeq, dr.seq, last)
			}
			silent := last.IsZero() || w.cfg.hbInterval > 0 && silence >= w.cfg.hbInterval+w.cfg.hbTimeout-step
			switch {
			case w.cfg.hbInterval == 0 && !probed:
				violate("disconnect %d: a heartbeat timeout with the heartbeat off and no Probe", n)
			case dl == nil || w.cfg.tcp || silent:
			case probed && death.Sub(probedAt) >= timeout-step:
			case probed:
				violate("disconnect %d: a heartbeat timeout %v after Probe (timeout %v) and %v after the server's last frame (interval %v; plan %v)",
					n, death.Sub(probedAt), timeout, silence, w.cfg.hbInterval, l.plan)
			default:
				born := w.dialReturnTime(dl)
				violate("disconnect %d: heartbeat timeout %v after the server's last frame (interval %v, timeout %v; up at %v, last frame %v later, died %v later; plan %v)",
					n, silence, w.cfg.hbInterval, w.cfg.hbTimeout, born.Sub(w.t0), last.Sub(born), death.Sub(born), l.plan)
			}
		}
		switch {
		case dl != nil && dl.ignoredCtx:
			// The DialFunc dialled with an expired ctx.
		case l.plan.reject != 0:
			if d.HTTPStatus != l.plan.reject {
				violate("disconnect %d: the server answered %d, reported %v", n, l.plan.reject, d)
			}
		case l.plan.hang:
			if d.HTTPStatus != 0 || d.Code != 0 {
				violate("disconnect %d: the handshake hung, reported %v", n, d)
			}
		case l.accepted && !requested:
			clientCause := hbDeath || w.writeCtxDuring(dl, dr) || asked
			serverFirst := l.sentClose != 0 && (!l.gotClose || l.sentCloseSeq < l.gotCloseSeq)
			switch {
			case serverFirst && !clientCause && d.Code != l.sentClose:
				violate("disconnect %d: the server closed with %d first, reported %v (plan %v)", n, l.sentClose, d, l.plan)
			case d.Code != 0 && d.Code != websocket.StatusAbnormalClosure && d.Code != l.sentClose &&
				!(d.Code == websocket.StatusMessageTooBig && !w.cfg.raiseReadLimit):
				violate("disconnect %d: code %d, which the server never sent (it sent %d): %v", n, d.Code, l.sentClose, d)
			}
			// A connection OnConnect rejected delivers nothing.
			clientCause = clientCause || dl != nil && dl.onConnectFailed
			serverEnded := l.endedSeq != 0 && (l.peerGoneSeq == 0 || l.endedSeq < l.peerGoneSeq) && (!l.gotClose || l.endedSeq < l.gotCloseSeq)
			laterRead := lastRead > n || (w.readStop != nil && i == len(w.discs)-1)
			if serverEnded && !clientCause && laterRead && readCount[n] != l.sent && !w.cfg.tcp {
				violate("connection %d: the server ended it (%v) after sending %d messages, Read returned %d of them", n, l.plan.end, l.sent, readCount[n])
			}
		}
	}
	if c != nil && len(w.discs) > 0 {
		st := c.Stats()
		var total uint64
		for _, v := range st.Disconnects {
			total += v
		}
		if total != uint64(len(w.discs)) && total != uint64(len(w.discs))+1 {
			violate("Stats counts %d disconnects, OnDisconnect was told of %d", total, len(w.discs))
		}
	}
}

func (w *simWorld) dialRec(n int) *simDial {
	if n >= 1 && n <= len(w.dials) {
		return w.dials[n-1]
	}
	return nil
}

// dialReturnTime is when the connection was born: when the dial
// returned (the fake clock reads the same at the handshake's end).
func (w *simWorld) dialReturnTime(dl *simDial) time.Time { return dl.returnAt }

// reconnectDuring reports whether Reconnect was called between the dial's
// return and the Disconnect that reports it.
func (w *simWorld) reconnectDuring(dl *simDial, dr *simDisc) bool {
	if dl == nil {
		return false
	}
	for _, s := range w.reconnects {
		if s > dl.seq && s < dr.seq {
			return true
		}
	}
	return false
}

// firstReconnectDuring returns when Reconnect was first called between the
// dial's return and the Disconnect that reports it.
func (w *simWorld) firstReconnectDuring(dl *simDial, dr *simDisc) (time.Time, bool) {
	if dl == nil {
		return time.Time{}, false
	}
	for i, s := range w.reconnects {
		if s > dl.returnSeq && s < dr.seq {
			return w.reconnectAt[i], true
		}
	}
	return time.Time{}, false
}

// writeCtxDuring reports whether a Write's ctx ended during the
// connection (coder/websocket closes a connection whose write ctx ends
// mid-frame).
func (w *simWorld) writeCtxDuring(dl *simDial, dr *simDisc) bool {
	if dl == nil {
		return false
	}
	for _, rec := range w.writes {
		if rec.err != nil && rec.endSeq > dl.seq && rec.seq < dr.seq &&
			(errors.Is(rec.err, context.DeadlineExceeded) || errors.Is(rec.err, context.Canceled)) {
			return true
		}
	}
	return false
}

// checkDelay checks a retry's delay against the schedules, and the next
// dial's time against the delay. w.mu is held.
func (w *simWorld) checkDelay(n int, d Disconnect) {
	if !d.Reconnect {
		return
	}
	violate := func(format string, args ...any) {
		w.violations = append(w.violations, fmt.Sprintf(format, args...))
	}
	// A Reconnect or Probe during the connection or its end asks for the
	// next dial at once (a Probe that found it dead; a Reconnect that
	// came once it was ending): no wait.
	dialSeq := int64(0)
	if n-1 < len(w.dials) {
		dialSeq = w.dials[n-1].seq
	}
	discSeq := w.discs[n-1].seq
	asked := func(seqs []int64) bool {
		return slices.ContainsFunc(seqs, func(s int64) bool { return s > dialSeq && s < discSeq })
	}
	switch {
	case d.Delay == 0 && (asked(w.reconnects) || asked(w.probes)):
	case d.RetryAfter > 0:
		hi := min(d.RetryAfter+d.RetryAfter/10+1, simMaxRetryAfter)
		lo := d.RetryAfter
		if d.Decision == RetryOverload {
			lo, hi = max(lo, minOverloadDelay), max(hi, minOverloadDelay)
		}
		if d.Delay < lo || d.Delay > hi {
			violate("disconnect %d: delay %v outside [%v, %v] for Retry-After %v", n, d.Delay, lo, hi, d.RetryAfter)
		}
	case d.Decision == RetryOverload:
		if d.Delay < minOverloadDelay || d.Delay > max(w.cfg.maxDelay, minOverloadDelay) {
			violate("disconnect %d: overload delay %v outside [1s, %v]", n, d.Delay, max(w.cfg.maxDelay, minOverloadDelay))
		}
	default:
		if d.Delay < 0 || d.Delay > w.cfg.maxDelay {
			violate("disconnect %d: delay %v outside [0, %v]", n, d.Delay, w.cfg.maxDelay)
		}
	}
	if w.cfg.tcp || n >= len(w.dials) {
		return
	}
	dr, next := w.discs[n-1], w.dials[n]
	gap := next.at.Sub(dr.returnAt)
	cuts := func(s int64) bool { return s > w.dials[n-1].seq && s < next.seq }
	cut := slices.ContainsFunc(w.reconnects, cuts) || slices.ContainsFunc(w.probes, cuts)
	switch {
	case dr.returnAt.IsZero():
	case cut && gap > d.Delay:
		violate("disconnect %d: the next dial came %v after OnDisconnect returned; its delay was %v", n, gap, d.Delay)
	case !cut && gap != d.Delay:
		violate("disconnect %d: the next dial came %v after OnDisconnect returned; its delay was %v", n, gap, d.Delay)
	}
}
