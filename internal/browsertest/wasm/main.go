//go:build js

// Command wasm runs wsreconnect in a browser page, in the scenarios the
// host tests name (?s=name,name,…), against the misbehaving endpoints of the
// host's server (same origin: the URLs are built from location.host). It
// reports one report.Result per scenario, as JSON in
// globalThis.__wsResult, which the host polls; its progress goes to the
// console (wasm_exec.js turns stdout into console.log) and to the page.
//
// The program only observes and measures; the host decides what passes.
// The page's wrapper of the WebSocket constructor (the host's index.html)
// records what the browser itself reported: open, error and close events,
// and each close() call with what it threw.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/internal/browsertest/report"
)

// scenarioLimit bounds one scenario: past it, the program reports what it
// has, with a goroutine dump, instead of hanging the page.
const scenarioLimit = 30 * time.Second

// Heartbeat of the heartbeat scenarios.
const (
	hbInterval = report.HeartbeatIntervalMs * time.Millisecond
	hbTimeout  = report.HeartbeatTimeoutMs * time.Millisecond
)

var (
	base string // ws://host:port
	out  js.Value
)

func main() {
	loc := js.Global().Get("location")
	base = "ws://" + loc.Get("host").String()
	q, _ := url.ParseQuery(strings.TrimPrefix(loc.Get("search").String(), "?"))
	out = js.Global().Get("document").Call("getElementById", "out")

	var results []*report.Result
	for _, name := range strings.Split(q.Get("s"), ",") {
		id := name
		if p := q.Get("id"); p != "" {
			id = p + "-" + name
		}
		r := run(name, id)
		results = append(results, r)
		if slices.ContainsFunc(r.Failures, func(f string) bool { return strings.HasPrefix(f, "did not finish") }) {
			break // its goroutines may still run: the next counts would be off
		}
	}
	b, err := json.Marshal(results)
	if err != nil {
		b, _ = json.Marshal(err.Error())
	}
	show("done")
	js.Global().Set("__wsResult", string(b))
	// Stay: a WebSocket the program no longer uses may still fire events
	// (the browser's close event comes up to a minute after close()), and
	// coder/websocket's listeners on it must find the program running.
	select {}
}

var scenarios = map[string]func(*scen){
	report.Drop:             drop,
	report.Overload:         overload,
	report.Policy:           policy,
	report.Close:            closeGraceful,
	report.CloseNow:         closeNow,
	report.CloseSilent:      closeSilent,
	report.CloseNowInClose:  closeNowInClose,
	report.CloseRefused:     closeRefused,
	report.Reconnect:        reconnect,
	report.HeartbeatHealthy: heartbeatHealthy,
	report.HeartbeatDead:    heartbeatDead,
	report.Handshake503:     handshake503,
	report.DialTimeout:      dialTimeout,
	report.OfflineStall:     offlineStall,
	report.OfflineProbe:     offlineProbe,
	report.OfflineClose:     offlineClose,
	report.OfflineDial:      offlineDial,
	report.OnlineBackoff:    onlineBackoff,
	report.Visible:          visible,
}

// run runs one scenario and returns what it saw. The goroutine count is
// taken before the scenario dials and after it returns, by which time the
// scenario has ended its Conn and waited for its own goroutines.
func run(name, id string) *report.Result {
	sc := &scen{r: &report.Result{Scenario: name, ID: id, Ms: map[string]float64{}, Values: map[string]string{}}, t0: now()}
	f, ok := scenarios[name]
	if !ok {
		sc.fail("unknown scenario %q", name)
		return sc.r
	}
	show("%s: running", name)
	sc.r.GoroutinesBefore, _ = goroutines()
	sc.val("numGoroutineBefore", fmt.Sprint(runtime.NumGoroutine()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				sc.fail("panic: %v", p)
			}
		}()
		f(sc)
	}()
	select {
	case <-done:
	case <-time.After(scenarioLimit):
		sc.fail("did not finish in %v", scenarioLimit)
	}
	n, dump := goroutines()
	sc.val("numGoroutineAfter", fmt.Sprint(runtime.NumGoroutine()))
	sc.mu.Lock()
	sc.r.GoroutinesAfter = n
	sc.mu.Unlock()
	if n != sc.r.GoroutinesBefore {
		sc.mu.Lock()
		sc.r.GoroutineDump = dump
		sc.mu.Unlock()
		// Say whether they were only on their way out.
		for i := 0; i < 100 && n != sc.r.GoroutinesBefore; i++ {
			time.Sleep(10 * time.Millisecond)
			n, _ = goroutines()
		}
		sc.val("goroutinesAfter1s", fmt.Sprint(n))
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.r.Browser = browserEvents(id, sc.t0)
	sc.r.Network = networkEvents(sc.t0)
	show("%s: %d disconnects, %d failures", name, len(sc.r.Disconnects), len(sc.r.Failures))
	return sc.r
}

// goroutines counts the program's goroutines, and returns their stacks.
// It leaves out the goroutines of JavaScript events that wait to return to
// the browser (runtime.handleEvent): whether one is there depends on what
// woke the caller (a timer, or a WebSocket event handled in Go), not on
// what the program runs.
func goroutines() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var kept []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "runtime.handleEvent(") {
			kept = append(kept, g)
		}
	}
	return len(kept), strings.Join(kept, "\n\n")
}

// scen is a running scenario: it records into r.
type scen struct {
	r  *report.Result
	t0 float64

	offline, hidden bool // what the host was asked to do to the page (network.go)

	mu    sync.Mutex
	pings []float64 // when the ping func was called (network.go)
}

func now() float64 { return js.Global().Get("performance").Call("now").Float() }

func (sc *scen) since() float64 { return now() - sc.t0 }

func (sc *scen) step(format string, args ...any) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	s := report.Step{T: sc.since(), What: fmt.Sprintf(format, args...)}
	sc.r.Steps = append(sc.r.Steps, s)
	fmt.Printf("[%s %7.1fms] %s\n", sc.r.Scenario, s.T, s.What)
}

func (sc *scen) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	sc.step("FAIL: %s", msg)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.r.Failures = append(sc.r.Failures, msg)
}

func (sc *scen) ms(name string, d float64) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.r.Ms[name] = d
}

func (sc *scen) val(name, v string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.r.Values[name] = v
}

func (sc *scen) counts() (connects, disconnects int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.r.Connects), len(sc.r.Disconnects)
}

// dial dials path on the host's server with wsreconnect, recording every
// connect and disconnect; opts come after the scenario defaults.
func (sc *scen) dial(path string, opts ...wsreconnect.Option) *wsreconnect.Conn {
	u := base + path + "?id=" + url.QueryEscape(sc.r.ID)
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, u, nil)
	}
	all := append([]wsreconnect.Option{
		wsreconnect.WithInitialDelay(50 * time.Millisecond),
		wsreconnect.WithMaxDelay(time.Second),
		wsreconnect.WithDialTimeout(5 * time.Second),
		wsreconnect.WithOnConnect(func(context.Context, *websocket.Conn) error {
			sc.mu.Lock()
			sc.r.Connects = append(sc.r.Connects, sc.since())
			n := len(sc.r.Connects)
			sc.mu.Unlock()
			sc.step("OnConnect: connection %d", n)
			return nil
		}),
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			rd := report.Disconnect{
				T: sc.since(), Code: int(d.Code), Reason: d.Reason, HTTPStatus: d.HTTPStatus,
				Attempt: d.Attempt, Decision: d.Decision.String(), Reconnect: d.Reconnect,
				DelayMs: ms(d.Delay), UptimeMs: ms(d.Uptime),
				HeartbeatTimeout:   errors.Is(d.Err, wsreconnect.ErrHeartbeatTimeout),
				ReconnectRequested: errors.Is(d.Err, wsreconnect.ErrReconnectRequested),
			}
			if d.Err != nil {
				rd.Err = d.Err.Error()
			}
			sc.mu.Lock()
			sc.r.Disconnects = append(sc.r.Disconnects, rd)
			sc.mu.Unlock()
			sc.step("OnDisconnect: %v", d)
		}),
	}, opts...)
	start := now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsreconnect.Dial(ctx, dial, all...)
	sc.ms("Dial", now()-start)
	if err != nil {
		sc.fail("Dial %s: %v", path, err)
		return nil
	}
	sc.step("Dial returned after %.1fms", now()-start)
	return c
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// waitFor polls cond until it holds or limit passes.
func (sc *scen) waitFor(what string, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			sc.fail("waited %v for %s", limit, what)
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func (sc *scen) waitConnects(n int, limit time.Duration) bool {
	return sc.waitFor(fmt.Sprintf("connection %d", n), limit, func() bool { c, _ := sc.counts(); return c >= n })
}

func (sc *scen) waitDisconnects(n int, limit time.Duration) bool {
	return sc.waitFor(fmt.Sprintf("disconnect %d", n), limit, func() bool { _, d := sc.counts(); return d >= n })
}

// echo writes msg and reads until the server's echo of it, skipping pongs.
// Write waits for a connection while the Conn reconnects.
func (sc *scen) echo(c *wsreconnect.Conn, msg string) bool {
	start := now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		sc.fail("Write %q: %v", msg, err)
		return false
	}
	for {
		_, p, err := c.Read(ctx)
		if err != nil {
			sc.fail("Read the echo of %q: %v", msg, err)
			return false
		}
		if string(p) == msg {
			sc.step("echo %q after %.1fms", msg, now()-start)
			return true
		}
		if string(p) != report.Pong {
			sc.fail("Read %q while waiting for the echo of %q", p, msg)
			return false
		}
	}
}

// close calls Close(code, reason), timed.
func (sc *scen) close(c *wsreconnect.Conn, code websocket.StatusCode, reason string) {
	start := now()
	err := c.Close(code, reason)
	d := now() - start
	sc.ms("Close", d)
	sc.val("closeErr", errText(err))
	sc.step("Close(%d, %q) returned %v after %.1fms", code, reason, err, d)
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// heartbeat are the options of the heartbeat scenarios: an application
// ping the server answers with a pong.
func heartbeat() []wsreconnect.Option {
	return []wsreconnect.Option{
		wsreconnect.WithHeartbeat(hbInterval, hbTimeout),
		wsreconnect.WithPingFunc(func(ctx context.Context, ws *websocket.Conn) error {
			return ws.Write(ctx, websocket.MessageText, []byte(report.Ping))
		}),
	}
}

// drop: the server drops the TCP connection (no close frame) when told;
// the Conn reports 1006, reconnects, and echoes again.
func drop(sc *scen) {
	c := sc.dial("/ws/drop")
	if c == nil {
		return
	}
	sc.echo(c, "one")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("drop")); err != nil {
		sc.fail("Write drop: %v", err)
	}
	sc.waitDisconnects(1, 5*time.Second)
	sc.echo(c, "two") // waits for the next connection
	sc.close(c, websocket.StatusNormalClosure, "")
}

// overload: the server closes with 1013 on the first two connections.
func overload(sc *scen) {
	c := sc.dial("/ws/overload")
	if c == nil {
		return
	}
	sc.waitDisconnects(2, 10*time.Second)
	sc.waitConnects(3, 10*time.Second)
	sc.echo(c, "after the overload")
	sc.close(c, websocket.StatusNormalClosure, "")
}

// policy: the server closes with 1008 after the first message. Read returns
// the *StopError; nothing is dialled again.
func policy(sc *scen) {
	c := sc.dial("/ws/policy")
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("something the server forbids")); err != nil {
		sc.fail("Write: %v", err)
	}
	_, p, err := c.Read(ctx)
	var stop *wsreconnect.StopError
	sc.val("readErr", errText(err))
	sc.val("readMsg", string(p))
	sc.val("stopError", fmt.Sprint(errors.As(err, &stop)))
	sc.val("closeStatus", fmt.Sprint(int(websocket.CloseStatus(err))))
	sc.step("Read returned %v", err)
	select {
	case <-c.Done():
		sc.step("Done")
	case <-time.After(5 * time.Second):
		sc.fail("the Conn did not end after the policy stopped it")
	}
	// Nothing more may happen: no attempt (the host counts them), no
	// callback.
	time.Sleep(time.Second)
	sc.val("errAfter", errText(c.Err()))
	sc.val("writeErr", errText(c.Write(ctx, websocket.MessageText, []byte("x"))))
	sc.val("state", c.State().String())
	start := now()
	err = c.CloseNow()
	sc.ms("CloseNow", now()-start)
	sc.val("closeNowErr", errText(err))
}

// closeGraceful: Close(1000, "bye") on a live connection.
func closeGraceful(sc *scen) {
	c := sc.dial("/ws/echo")
	if c == nil {
		return
	}
	sc.echo(c, "one")
	sc.close(c, websocket.StatusNormalClosure, "bye")
	_, _, err := c.Read(context.Background())
	sc.val("readAfter", errText(err))
	sc.val("readAfterIsErrClosed", fmt.Sprint(errors.Is(err, wsreconnect.ErrClosed)))
}

// closeNow: CloseNow on a live connection, with a Read blocked in it.
func closeNow(sc *scen) {
	c := sc.dial("/ws/echo")
	if c == nil {
		return
	}
	sc.echo(c, "one")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, err := c.Read(context.Background())
		sc.val("blockedRead", errText(err))
		sc.val("blockedReadIsErrClosed", fmt.Sprint(errors.Is(err, wsreconnect.ErrClosed)))
	}()
	time.Sleep(50 * time.Millisecond) // let it block
	start := now()
	err := c.CloseNow()
	sc.ms("CloseNow", now()-start)
	sc.val("closeNowErr", errText(err))
	sc.step("CloseNow returned %v after %.1fms", err, now()-start)
	wg.Wait()
	sc.ms("blockedReadReturned", now()-start)
	sc.val("writeAfter", errText(c.Write(context.Background(), websocket.MessageText, []byte("x"))))
}

// closeRefused: Close with 1001, a code the browser's close() refuses.
func closeRefused(sc *scen) {
	c := sc.dial("/ws/echo")
	if c == nil {
		return
	}
	sc.echo(c, "one")
	sc.close(c, websocket.StatusGoingAway, "bye")
	err := c.Err()
	sc.val("err", errText(err))
	sc.val("errIsErrClosed", fmt.Sprint(errors.Is(err, wsreconnect.ErrClosed)))
}

// closeSilent: Close against a server that never reads, so never answers
// the close frame.
func closeSilent(sc *scen) {
	c := sc.dial("/ws/silent")
	if c == nil {
		return
	}
	sc.close(c, websocket.StatusNormalClosure, "bye")
}

// closeNowInClose: Close against a silent server, cut short by CloseNow.
func closeNowInClose(sc *scen) {
	c := sc.dial("/ws/silent")
	if c == nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	start := now()
	go func() {
		defer wg.Done()
		err := c.Close(websocket.StatusNormalClosure, "bye")
		sc.ms("Close", now()-start)
		sc.val("closeErr", errText(err))
		sc.step("Close returned %v", err)
	}()
	time.Sleep(200 * time.Millisecond)
	t := now()
	err := c.CloseNow()
	sc.ms("CloseNow", now()-t)
	sc.val("closeNowErr", errText(err))
	sc.step("CloseNow returned %v after %.1fms", err, now()-t)
	wg.Wait()
	sc.ms("CloseAfterCloseNow", now()-t)
}

// reconnect: Reconnect on a live connection.
func reconnect(sc *scen) {
	c := sc.dial("/ws/echo")
	if c == nil {
		return
	}
	sc.echo(c, "one")
	start := now()
	c.Reconnect()
	sc.ms("Reconnect", now()-start)
	if sc.waitConnects(2, 5*time.Second) {
		sc.ms("reconnected", now()-start)
	}
	sc.echo(c, "two")
	sc.close(c, websocket.StatusNormalClosure, "")
}

// reader reads c until ctx ends or c does, recording when each pong came.
type reader struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	pongs []float64
	other int
}

func (sc *scen) startReader(ctx context.Context, c *wsreconnect.Conn) *reader {
	rd := &reader{}
	rd.wg.Add(1)
	go func() {
		defer rd.wg.Done()
		for {
			_, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			rd.mu.Lock()
			if string(p) == report.Pong {
				rd.pongs = append(rd.pongs, sc.since())
			} else {
				rd.other++
			}
			rd.mu.Unlock()
		}
	}()
	return rd
}

// heartbeatHealthy: an app-level heartbeat on a server that answers.
func heartbeatHealthy(sc *scen) {
	c := sc.dial("/ws/echo", heartbeat()...)
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	rd := sc.startReader(ctx, c)
	rd.wg.Wait()
	sc.val("pongs", fmt.Sprint(len(rd.pongs)))
	sc.val("state", c.State().String())
	sc.close(c, websocket.StatusNormalClosure, "")
}

// heartbeatDead: the server answers a few pings, then stops reading; the
// heartbeat finds it dead and the Conn reconnects.
func heartbeatDead(sc *scen) {
	c := sc.dial("/ws/hb", heartbeat()...)
	if c == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	rd := sc.startReader(ctx, c)
	sc.waitDisconnects(1, 5*time.Second)
	sc.waitConnects(2, 5*time.Second)
	cancel()
	rd.wg.Wait()
	sc.mu.Lock()
	var dt float64
	if len(sc.r.Disconnects) > 0 {
		dt = sc.r.Disconnects[0].T
	}
	sc.mu.Unlock()
	last := 0.0
	for _, p := range rd.pongs {
		if p < dt {
			last = p
		}
	}
	sc.ms("lastPong", last)
	sc.ms("foundDeadAfterLastPong", dt-last)
	sc.val("pongsBeforeDeath", fmt.Sprint(len(rd.pongs)))
	sc.echo(c, "alive again")
	sc.close(c, websocket.StatusNormalClosure, "")
}

// handshake503: the server refuses the handshake twice with 503 and
// Retry-After: 1, then accepts; Dial rides through.
func handshake503(sc *scen) {
	c := sc.dial("/ws/503")
	if c == nil {
		return
	}
	sc.echo(c, "in")
	sc.close(c, websocket.StatusNormalClosure, "")
}

// dialTimeout: the server holds the first handshake for 1.5 s, longer than
// the dial timeout; the second attempt connects. The scenario then waits
// to see what becomes of the browser socket of the first attempt.
func dialTimeout(sc *scen) {
	c := sc.dial("/ws/hang", wsreconnect.WithDialTimeout(500*time.Millisecond))
	if c == nil {
		return
	}
	sc.echo(c, "in")
	if d := 2500 - sc.since(); d > 0 {
		time.Sleep(time.Duration(d * float64(time.Millisecond)))
	}
	sc.close(c, websocket.StatusNormalClosure, "")
}

// browserEvents returns the events the page's WebSocket wrapper recorded
// for the sockets whose URL carries id, on the scenario's clock.
func browserEvents(id string, t0 float64) []report.BrowserEvent {
	all := js.Global().Get("__wsEvents")
	if all.IsUndefined() {
		return nil
	}
	want := "id=" + url.QueryEscape(id)
	var evs []report.BrowserEvent
	sockets := map[int]int{} // the page's numbers → the scenario's, from 1
	for i := 0; i < all.Length(); i++ {
		e := all.Index(i)
		u, err := url.Parse(e.Get("url").String())
		if err != nil || "id="+url.QueryEscape(u.Query().Get("id")) != want {
			continue
		}
		n, ok := sockets[e.Get("socket").Int()]
		if !ok {
			n = len(sockets) + 1
			sockets[e.Get("socket").Int()] = n
		}
		evs = append(evs, report.BrowserEvent{
			T:        e.Get("t").Float() - t0,
			Socket:   n,
			Type:     e.Get("type").String(),
			Code:     e.Get("code").Int(),
			Reason:   e.Get("reason").String(),
			WasClean: e.Get("wasClean").Bool(),
			Thrown:   e.Get("thrown").String(),
		})
	}
	return evs
}

// show appends a line to the page.
func show(format string, args ...any) {
	if out.IsUndefined() || out.IsNull() {
		return
	}
	out.Set("textContent", out.Get("textContent").String()+fmt.Sprintf(format, args...)+"\n")
}
