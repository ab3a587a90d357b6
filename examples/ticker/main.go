//go:build !js

// Command ticker is a market-data subscriber built on wsreconnect: on every
// connection it authenticates with a token and subscribes to its symbols,
// then prints the ticks it receives, riding through server restarts and
// dropped connections.
//
//	go run ./examples/ticker
//
// It starts its own exchange server on 127.0.0.1 (a random port). The
// server drops a connection without a close frame, restarts with 1012
// "service restart" and stays down for a moment, and drops again; the
// client reconnects, re-authenticates and resubscribes each time. After
// about 11 s the client closes and the program exits with status 0; with
// status 1 if anything unexpected happened, including the token appearing
// in a log line.
//
// The token travels in the first message of each connection, never in the
// URL, so that it cannot end up in a logged URL or error.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/wsreconnect/wsreconnect"
)

// The subscriber's settings. In a real program they come from flags or the
// environment; TICKER_TOKEN overrides the generated token.
var (
	symbols  = []string{"BTC-USD", "ETH-USD"}
	runFor   = 11 * time.Second
	tokenEnv = "TICKER_TOKEN"
)

// Close codes of the exchange's protocol (4000-4999: private use).
const (
	codeUnauthorized websocket.StatusCode = 4001 // bad or expired token
	codeBadRequest   websocket.StatusCode = 4002 // unknown message
)

// message is every message of the exchange's protocol.
type message struct {
	Type    string   `json:"type"`
	Token   string   `json:"token,omitempty"`
	Symbols []string `json:"symbols,omitempty"`
	Symbol  string   `json:"symbol,omitempty"`
	Price   float64  `json:"price,omitempty"`
	Seq     int64    `json:"seq,omitempty"`
}

func main() {
	token := os.Getenv(tokenEnv)
	if token == "" {
		token = newToken()
	}
	// Every log line goes through a guard that fails the run if the token
	// shows up in it.
	out := &guard{w: os.Stdout, secret: []byte(token)}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the lines short
			}
			return a
		},
	}))

	err := run(log, token)
	if out.leaked.Load() {
		err = errors.Join(err, errors.New("the token appeared in a log line"))
	}
	if err != nil {
		log.Error("ticker: UNEXPECTED", "err", err)
		os.Exit(1)
	}
	log.Info("ticker: done")
}

func run(log *slog.Logger, token string) error {
	ex, err := startExchange(log.With("component", "exchange"), token)
	if err != nil {
		return err
	}
	defer ex.stop()

	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	httpClient := &http.Client{Transport: transport}
	url := ex.url()
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
	}

	clog := log.With("component", "client")
	var connects, disconnects atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), runFor+10*time.Second)
	defer cancel()
	c, err := wsreconnect.Dial(ctx, dial,
		// Authenticate and subscribe on every connection, before Read and
		// Write resume on it.
		wsreconnect.WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
			if err := authenticate(ctx, ws, token); err != nil {
				return err
			}
			if err := subscribe(ctx, ws, symbols); err != nil {
				return err
			}
			n := connects.Add(1)
			clog.Info("ticker: authenticated and subscribed", "connection", n, "symbols", symbols)
			return nil
		}),
		// A rejected token will not become valid by retrying: stop. The
		// default policy already retries other 4xxx codes.
		wsreconnect.WithPolicy(func(d wsreconnect.Disconnect) wsreconnect.Decision {
			switch d.Code {
			case codeUnauthorized, codeBadRequest:
				return wsreconnect.Stop
			}
			return wsreconnect.DefaultPolicy(d)
		}),
		wsreconnect.WithOnDisconnect(func(wsreconnect.Disconnect) { disconnects.Add(1) }),
		// The library logs each connect and disconnect (code, reason,
		// http_status, attempt, decision, delay).
		wsreconnect.WithLogger(clog),
		// This example runs on a compressed clock; the defaults suit a
		// real exchange (1 s, 30 s, 20 s / 10 s, 10 s).
		wsreconnect.WithInitialDelay(250*time.Millisecond),
		wsreconnect.WithMaxDelay(2*time.Second),
		wsreconnect.WithHeartbeat(2*time.Second, time.Second),
		wsreconnect.WithDialTimeout(2*time.Second),
	)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.CloseNow()

	ticks, err := consume(clog, c, time.Now().Add(runFor))
	if err != nil {
		return err
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	clog.Info("ticker: closed", "ticks", ticks, "connections", connects.Load(), "disconnects", disconnects.Load())

	switch {
	case connects.Load() != 4 || disconnects.Load() < 4:
		return fmt.Errorf("%d connections and %d disconnects, want 4 and at least 4 (drop, restart, refused dial(s), drop)",
			connects.Load(), disconnects.Load())
	case ticks < 20:
		return fmt.Errorf("only %d ticks received", ticks)
	}
	return nil
}

// authenticate sends the token and waits for "auth ok".
func authenticate(ctx context.Context, ws *websocket.Conn, token string) error {
	if err := wsjson.Write(ctx, ws, message{Type: "auth", Token: token}); err != nil {
		return err
	}
	var reply message
	if err := wsjson.Read(ctx, ws, &reply); err != nil {
		// A 4001 close arrives here as a websocket.CloseError, which the
		// policy sees as Disconnect.Code.
		return fmt.Errorf("auth: %w", err)
	}
	if reply.Type != "auth ok" {
		return fmt.Errorf("auth: unexpected reply %q", reply.Type)
	}
	return nil
}

// subscribe asks for symbols and waits for the confirmation.
func subscribe(ctx context.Context, ws *websocket.Conn, symbols []string) error {
	if err := wsjson.Write(ctx, ws, message{Type: "subscribe", Symbols: symbols}); err != nil {
		return err
	}
	var reply message
	if err := wsjson.Read(ctx, ws, &reply); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if reply.Type != "subscribed" || !slices.Equal(reply.Symbols, symbols) {
		return fmt.Errorf("subscribe: unexpected reply %+v", reply)
	}
	return nil
}

// consume prints ticks until the deadline. It tracks each symbol's sequence
// number: a gap means ticks were missed while reconnecting, which a real
// client would repair by fetching a snapshot.
func consume(log *slog.Logger, c *wsreconnect.Conn, deadline time.Time) (int, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	last := map[string]int64{}
	n := 0
	for {
		_, p, err := c.Read(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read: %w", err)
		}
		var m message
		if err := json.Unmarshal(p, &m); err != nil || m.Type != "tick" {
			return n, fmt.Errorf("unexpected message %q", p)
		}
		if !slices.Contains(symbols, m.Symbol) {
			return n, fmt.Errorf("tick for %s, which we did not subscribe to", m.Symbol)
		}
		if prev, ok := last[m.Symbol]; ok && m.Seq != prev+1 {
			if m.Seq <= prev {
				return n, fmt.Errorf("%s: seq %d after %d", m.Symbol, m.Seq, prev)
			}
			log.Info("ticker: gap, would fetch a snapshot", "symbol", m.Symbol, "missed", m.Seq-prev-1)
		}
		last[m.Symbol] = m.Seq
		n++
		fmt.Printf("%-8s %10.2f  #%d\n", m.Symbol, m.Price, m.Seq)
	}
}

func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "tok_" + hex.EncodeToString(b)
}

// guard passes log output through and records whether secret appeared in
// it (masking it, so that a leak is visible without repeating it).
type guard struct {
	w      io.Writer
	secret []byte
	leaked atomic.Bool
	mu     sync.Mutex
}

func (g *guard) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if bytes.Contains(p, g.secret) {
		g.leaked.Store(true)
		p = bytes.ReplaceAll(p, g.secret, []byte("[LEAKED TOKEN]"))
	}
	if _, err := g.w.Write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// exchange is a toy market-data server. Its market moves every 250 ms
// whether anyone listens or not; each authenticated connection receives the
// ticks of the symbols it subscribed to. It misbehaves on a script, one
// fault per connection: see fault.
type exchange struct {
	log   *slog.Logger
	token string
	addr  string       // kept across restarts
	conns atomic.Int64 // accepted connections, numbering them

	mu      sync.Mutex
	hs      *http.Server
	live    map[*websocket.Conn]struct{}
	feeds   map[chan message]struct{} // one per subscribed connection
	wg      sync.WaitGroup            // the market, connections, a restart in progress
	quit    chan struct{}
	stopped bool
}

// market lists the exchange's symbols; the client subscribes to some.
var market = []string{"BTC-USD", "ETH-USD", "SOL-USD"}

func startExchange(log *slog.Logger, token string) (*exchange, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &exchange{
		log: log, token: token, addr: l.Addr().String(),
		live:  map[*websocket.Conn]struct{}{},
		feeds: map[chan message]struct{}{},
		quit:  make(chan struct{}),
	}
	e.serve(l)
	e.wg.Add(1)
	go e.run()
	e.log.Info("exchange: listening", "addr", e.addr)
	return e, nil
}

// run moves the market: every 250 ms a tick per symbol, numbered per
// symbol, sent to every subscribed connection.
func (e *exchange) run() {
	defer e.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	seq := map[string]int64{}
	for {
		select {
		case <-e.quit:
			return
		case <-t.C:
		}
		e.mu.Lock()
		for _, sym := range market {
			seq[sym]++
			m := message{Type: "tick", Symbol: sym, Price: price(sym, seq[sym]), Seq: seq[sym]}
			for feed := range e.feeds {
				select {
				case feed <- m:
				default: // a slow connection misses ticks, as on a real feed
				}
			}
		}
		e.mu.Unlock()
	}
}

func (e *exchange) url() string { return "ws://" + e.addr + "/v1/stream" }

// serve starts an http.Server on l. e.mu is held or e is not yet shared.
func (e *exchange) serve(l net.Listener) {
	e.hs = &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
	hs := e.hs
	go hs.Serve(l)
}

// fault is what the exchange does to connection n after serving it for a
// while: the script of this example.
func fault(n int64) (after time.Duration, what string) {
	switch n {
	case 1:
		return 2 * time.Second, "drop"
	case 2:
		return 2 * time.Second, "restart"
	case 3:
		return 2 * time.Second, "drop"
	}
	return 0, "" // behave
}

func (e *exchange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		ws.CloseNow()
		return
	}
	e.live[ws] = struct{}{}
	e.wg.Add(1)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.live, ws)
		e.mu.Unlock()
		ws.CloseNow()
		e.wg.Done()
	}()
	e.session(ws, e.conns.Add(1))
}

// session serves one connection: auth, subscribe, then ticks.
func (e *exchange) session(ws *websocket.Conn, n int64) {
	ctx := context.Background()
	log := e.log.With("connection", n)
	var m message
	if err := wsjson.Read(ctx, ws, &m); err != nil {
		return
	}
	if m.Type != "auth" || m.Token != e.token {
		log.Warn("exchange: rejected credentials")
		ws.Close(codeUnauthorized, "unauthorized")
		return
	}
	if wsjson.Write(ctx, ws, message{Type: "auth ok"}) != nil {
		return
	}
	if err := wsjson.Read(ctx, ws, &m); err != nil {
		return
	}
	if m.Type != "subscribe" {
		ws.Close(codeBadRequest, "expected subscribe")
		return
	}
	subscribed := m.Symbols
	if wsjson.Write(ctx, ws, message{Type: "subscribed", Symbols: subscribed}) != nil {
		return
	}
	log.Info("exchange: subscribed", "symbols", subscribed)
	feed := make(chan message, 16)
	e.mu.Lock()
	e.feeds[feed] = struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.feeds, feed)
		e.mu.Unlock()
	}()

	// Keep reading, so that pings are answered and a close is seen.
	readCtx := ws.CloseRead(ctx)

	after, what := fault(n)
	var faultC <-chan time.Time
	if what != "" {
		faultC = time.After(after)
	}
	for {
		var m message
		select {
		case <-readCtx.Done():
			return
		case <-faultC:
			switch what {
			case "drop":
				log.Info("exchange: dropping the connection without a close frame")
				ws.CloseNow()
			case "restart":
				e.restart(ws, time.Second)
			}
			return
		case m = <-feed:
		}
		if !slices.Contains(subscribed, m.Symbol) {
			continue
		}
		p, _ := json.Marshal(m)
		if ws.Write(ctx, websocket.MessageText, p) != nil {
			return
		}
	}
}

// restart closes every connection with 1012 "service restart", stops
// listening for down, and listens again on the same address.
func (e *exchange) restart(ws *websocket.Conn, down time.Duration) {
	e.log.Info("exchange: restarting", "down_for", down)
	e.mu.Lock()
	hs := e.hs
	e.hs = nil
	e.wg.Add(1)
	e.mu.Unlock()
	hs.Close()
	ws.Close(websocket.StatusServiceRestart, "service restart")
	go func() {
		defer e.wg.Done()
		time.Sleep(down)
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.stopped {
			return
		}
		l, err := net.Listen("tcp", e.addr)
		if err != nil {
			e.log.Error("exchange: cannot listen again", "err", err)
			return
		}
		e.serve(l)
		e.log.Info("exchange: back up")
	}()
}

// stop ends the exchange: the listener and every connection.
func (e *exchange) stop() {
	e.mu.Lock()
	e.stopped = true
	close(e.quit)
	if e.hs != nil {
		e.hs.Close()
	}
	for ws := range e.live {
		ws.CloseNow()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// price makes up a plausible price.
func price(sym string, seq int64) float64 {
	base := map[string]float64{"BTC-USD": 64000, "ETH-USD": 3100, "SOL-USD": 150}[sym]
	return math.Round(base*(1+0.002*math.Sin(float64(seq)/7))*100) / 100
}
