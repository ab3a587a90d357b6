//go:build js

package main

// The network scenarios: the program asks the host to take the page's
// network away and give it back, and to hide and show the page
// (report.HostCall), and measures on the page's clock what the Conn does,
// from the page's own online, offline and visibilitychange events (the
// host's index.html records them before the Conn's listeners run).

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"syscall/js"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/internal/browsertest/report"
)

const (
	probeTimeout  = report.ProbeTimeoutMs * time.Millisecond
	probeInterval = report.ProbeIntervalMs * time.Millisecond
	offlineHold   = report.OfflineHoldMs * time.Millisecond
	backoffDelay  = report.BackoffDelayMs * time.Millisecond
)

// host asks the host to do action to the page, and waits until it has.
func (sc *scen) host(action string) bool {
	fn := js.Global().Get("__host")
	if fn.Type() != js.TypeFunction {
		sc.fail("host %s: the host exposes no __host (a network scenario runs on a network page)", action)
		return false
	}
	done := make(chan string, 1)
	resolved := js.FuncOf(func(js.Value, []js.Value) any { done <- ""; return nil })
	rejected := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "rejected"
		if len(args) > 0 {
			msg = args[0].Call("toString").String()
		}
		done <- msg
		return nil
	})
	start := now()
	fn.Invoke(map[string]any{"action": action, "id": sc.r.ID}).Call("then", resolved, rejected)
	select {
	case msg := <-done:
		resolved.Release()
		rejected.Release()
		if msg != "" {
			sc.fail("host %s: %s", action, msg)
			return false
		}
	case <-time.After(10 * time.Second):
		sc.fail("host %s: no answer in 10 s", action) // its callbacks stay: they may still be called
		return false
	}
	sc.step("host: %s (%.1fms)", action, now()-start)
	switch action {
	case report.HostOffline:
		sc.offline = true
	case report.HostOnline:
		sc.offline = false
	case report.HostHide:
		sc.hidden = true
	case report.HostShow:
		sc.hidden = false
	}
	return true
}

// restore gives the page its network back and shows it, if the scenario
// left it without: the next scenario starts online and visible.
func (sc *scen) restore() {
	if sc.offline {
		sc.host(report.HostOnline)
	}
	if sc.hidden {
		sc.host(report.HostShow)
	}
}

// networkEvents returns the page's online, offline and visibilitychange
// events since t0, on the scenario's clock.
func networkEvents(t0 float64) []report.NetworkEvent {
	all := js.Global().Get("__netEvents")
	if all.IsUndefined() {
		return nil
	}
	var evs []report.NetworkEvent
	for i := 0; i < all.Length(); i++ {
		e := all.Index(i)
		if t := e.Get("t").Float() - t0; t >= 0 {
			evs = append(evs, report.NetworkEvent{
				T:          t,
				Type:       e.Get("type").String(),
				OnLine:     e.Get("onLine").Bool(),
				Visibility: e.Get("visibility").String(),
			})
		}
	}
	return evs
}

// waitEvent waits until the page has had an event of typ (for
// visibilitychange, to vis) since after, and returns its time.
func (sc *scen) waitEvent(typ, vis string, after float64) (float64, bool) {
	var t float64
	ok := sc.waitFor(fmt.Sprintf("the page's %s %s event", typ, vis), 5*time.Second, func() bool {
		for _, e := range networkEvents(sc.t0) {
			if e.T >= after && e.Type == typ && (vis == "" || e.Visibility == vis) {
				t = e.T
				return true
			}
		}
		return false
	})
	return t, ok
}

// goOffline takes the page's network away and returns the time of its
// offline event.
func (sc *scen) goOffline() (float64, bool) {
	t := sc.since()
	if !sc.host(report.HostOffline) {
		return 0, false
	}
	return sc.waitEvent("offline", "", t)
}

// goOnline gives the network back and returns the time of the page's
// online event.
func (sc *scen) goOnline() (float64, bool) {
	t := sc.since()
	if !sc.host(report.HostOnline) {
		return 0, false
	}
	return sc.waitEvent("online", "", t)
}

// logger is a logger for the Conn whose lines go to the result's Log.
func (sc *scen) logger() wsreconnect.Option {
	h := slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		sc.r.Log = append(sc.r.Log, report.Step{T: sc.since(), What: strings.TrimSpace(string(p))})
		return len(p), nil
	}), &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	return wsreconnect.WithLogger(slog.New(h))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// probing are the options of a Conn that can probe its connection: an
// application-level ping, whose calls are recorded, answered within
// probeTimeout; the heartbeat's interval is long enough that it sends none
// of its own while a scenario runs.
func (sc *scen) probing() []wsreconnect.Option {
	return []wsreconnect.Option{
		wsreconnect.WithHeartbeat(probeInterval, probeTimeout),
		wsreconnect.WithPingFunc(func(ctx context.Context, ws *websocket.Conn) error {
			sc.mu.Lock()
			sc.pings = append(sc.pings, sc.since())
			sc.mu.Unlock()
			return ws.Write(ctx, websocket.MessageText, []byte(report.Ping))
		}),
	}
}

// pingsSince returns the times the ping func was called since t.
func (sc *scen) pingsSince(t float64) []float64 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var ps []float64
	for _, p := range sc.pings {
		if p >= t {
			ps = append(ps, p)
		}
	}
	return ps
}

// offlineStall: without a ping func, a connection whose network goes
// away. The browser keeps the socket and holds its traffic: Write takes a
// message, nothing arrives, the Conn (which cannot ask the server) stays
// connected; once the network is back, the message goes through.
func offlineStall(sc *scen) {
	c := sc.dial("/ws/echo", sc.logger())
	if c == nil {
		return
	}
	defer sc.restore()
	sc.echo(c, "before")
	if _, ok := sc.goOffline(); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	sc.val("writeWhileOffline", errText(c.Write(ctx, websocket.MessageText, []byte("during"))))
	cancel()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	_, p, err := c.Read(ctx)
	cancel()
	sc.val("readWhileOffline", errText(err))
	if err == nil {
		sc.val("readWhileOfflineMsg", string(p))
	}
	sc.val("stateWhileOffline", c.State().String())
	on, ok := sc.goOnline()
	if !ok {
		return
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, p, err := c.Read(ctx)
		if err != nil {
			sc.fail("Read the echo of the message written while offline: %v", err)
			return
		}
		if string(p) == "during" {
			sc.ms("onlineToEcho", sc.since()-on)
			sc.step("read the echo of %q, written while offline", p)
			break
		}
	}
	sc.echo(c, "after")
	sc.close(c, websocket.StatusNormalClosure, "")
}

// offlineProbe: with a ping func, a connection whose network goes away is
// probed at once and found dead a probe's timeout later; the Conn then
// dials nothing while offline, and Close returns at once.
func offlineProbe(sc *scen) {
	c := sc.dial("/ws/echo", append(sc.probing(), sc.logger())...)
	if c == nil {
		return
	}
	defer sc.restore()
	sc.echo(c, "before")
	off, ok := sc.goOffline()
	if !ok {
		c.CloseNow()
		return
	}
	if sc.waitDisconnects(1, probeTimeout+5*time.Second) {
		sc.mu.Lock()
		d := sc.r.Disconnects[0].T
		sc.mu.Unlock()
		sc.ms("offlineToDisconnect", d-off)
	}
	time.Sleep(offlineHold) // nothing is to happen: the host counts the attempts
	_, n := sc.counts()
	sc.val("disconnectsWhileOffline", fmt.Sprint(n))
	sc.val("stateWhileOffline", c.State().String())
	sc.close(c, websocket.StatusNormalClosure, "")
}

// offlineClose: Close on a live connection (no ping func) whose network
// is gone, with a message written since: the browser holds the close
// frame behind it, so no answer comes, and Close returns after its grace,
// saying so. (Under emulation, a close frame with nothing ahead of it
// passes, and its answer comes back: a real outage holds it too.)
func offlineClose(sc *scen) {
	c := sc.dial("/ws/echo")
	if c == nil {
		return
	}
	defer sc.restore()
	sc.echo(c, "before")
	if _, ok := sc.goOffline(); !ok {
		c.CloseNow()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("held")); err != nil {
		sc.fail("Write while offline: %v", err)
	}
	sc.close(c, websocket.StatusNormalClosure, "bye")
}

// offlineDial: Dial while offline dials nothing until the network is
// back, then at once.
func offlineDial(sc *scen) {
	defer sc.restore()
	if _, ok := sc.goOffline(); !ok {
		return
	}
	dialed := make(chan *wsreconnect.Conn, 1)
	go func() { dialed <- sc.dial("/ws/echo", sc.logger()) }()
	var c *wsreconnect.Conn
	select {
	case c = <-dialed:
		sc.val("dialReturnedOffline", "true")
	case <-time.After(2 * time.Second):
		sc.val("dialReturnedOffline", "false")
	}
	on, ok := sc.goOnline()
	if c == nil {
		c = <-dialed // Dial's own ctx bounds it
	}
	if c == nil || !ok {
		return
	}
	sc.mu.Lock()
	if len(sc.r.Connects) > 0 {
		sc.r.Ms["onlineToConnect"] = sc.r.Connects[0] - on
	}
	sc.mu.Unlock()
	sc.echo(c, "in")
	sc.close(c, websocket.StatusNormalClosure, "")
}

// onlineBackoff: the server drops the connection and the schedule says 30
// s; the network goes and comes back, and the online event has the Conn
// dial at once.
func onlineBackoff(sc *scen) {
	c := sc.dial("/ws/drop",
		wsreconnect.WithBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(backoffDelay) }),
		wsreconnect.WithMaxDelay(2*backoffDelay),
		sc.logger())
	if c == nil {
		return
	}
	defer sc.restore()
	sc.echo(c, "one")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("drop")); err != nil {
		sc.fail("Write drop: %v", err)
	}
	if !sc.waitDisconnects(1, 5*time.Second) {
		c.CloseNow()
		return
	}
	if _, ok := sc.goOffline(); !ok {
		c.CloseNow()
		return
	}
	time.Sleep(500 * time.Millisecond)
	on, ok := sc.goOnline()
	if !ok {
		c.CloseNow()
		return
	}
	if sc.waitConnects(2, 10*time.Second) {
		sc.mu.Lock()
		sc.r.Ms["onlineToConnect"] = sc.r.Connects[1] - on
		sc.mu.Unlock()
	}
	sc.echo(c, "two")
	sc.close(c, websocket.StatusNormalClosure, "")
}

// visible: a page hidden for a second, then visible again, probes its
// connection at once: one ping, answered.
func visible(sc *scen) {
	c := sc.dial("/ws/echo", sc.probing()...)
	if c == nil {
		return
	}
	defer sc.restore()
	ctx, cancel := context.WithCancel(context.Background())
	rd := sc.startReader(ctx, c)
	defer func() {
		cancel()
		rd.wg.Wait()
	}()
	t := sc.since()
	if !sc.host(report.HostHide) {
		c.CloseNow()
		return
	}
	if _, ok := sc.waitEvent("visibilitychange", "hidden", t); !ok {
		c.CloseNow()
		return
	}
	time.Sleep(time.Second)
	sc.val("pingsBeforeVisible", fmt.Sprint(len(sc.pingsSince(0))))
	t = sc.since()
	if !sc.host(report.HostShow) {
		c.CloseNow()
		return
	}
	vis, ok := sc.waitEvent("visibilitychange", "visible", t)
	if !ok {
		c.CloseNow()
		return
	}
	var pong float64
	sc.waitFor("the pong after the page was visible again", 5*time.Second, func() bool {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		for _, p := range rd.pongs {
			if p >= vis {
				pong = p
				return true
			}
		}
		return false
	})
	if ps := sc.pingsSince(vis); len(ps) > 0 {
		sc.ms("visibleToPing", ps[0]-vis)
	}
	if pong > 0 {
		sc.ms("visibleToPong", pong-vis)
	}
	time.Sleep(probeTimeout + 200*time.Millisecond) // past the probe's verdict
	sc.val("state", c.State().String())
	sc.close(c, websocket.StatusNormalClosure, "")
}
