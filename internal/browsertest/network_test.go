//go:build !js

package browsertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/wsreconnect/wsreconnect/internal/browsertest/report"
)

// The network scenarios take the page's network away and give it back,
// and hide and show the page, at the moments the browser program asks for
// (report.HostCall): the host exposes a function to the page,
// globalThis.__host, that runs the DevTools protocol's commands on the
// page's own tab and resolves once they have returned.
//
// What Chromium does (measured with Chromium 156, headless=new):
//
//   - Network.emulateNetworkConditionsByRule with a global offline rule
//     fails every new request of the tab at once: a new WebSocket gets an
//     error and a close event with 1006, and reaches no server. It does
//     not touch navigator.onLine: Network.overrideNetworkState does that,
//     and fires the offline and online events. (The deprecated
//     Network.emulateNetworkConditions does both at once.)
//   - An open WebSocket is not closed: its messages are held, both ways,
//     while the tab is offline (send() takes them; nothing arrives), and
//     delivered in order once it is back. No close event, no error: the
//     page cannot tell a held socket from a quiet one, except by asking
//     the server (WithPingFunc). A close frame is held behind the messages
//     written before it; with none ahead of it, it passes, and so does the
//     server's answer (a real outage would hold them too).
//   - navigator.onLine's override holds for the whole renderer process, so
//     a tab that shares it sees the offline and online events too (tried
//     with --renderer-process-limit=1); the network conditions hold for
//     the tab alone. So the network page runs in a browser of its own.
//   - Minimizing the page's window (Browser.setWindowBounds) makes it
//     hidden and restoring it visible again, with visibilitychange events,
//     as a user's would. (Activating another tab of the same window does
//     the same; it needs a second tab in that window.)

// hostCalls records what the host did for the pages' programs.
type hostCalls struct {
	mu    sync.Mutex
	calls []hostCall
}

// hostCall is one action the host took: when it began and when its
// commands had returned (on the host's clock, as the server's times).
type hostCall struct {
	report.HostCall
	Start, Done time.Time
	Err         string
}

func (h *hostCalls) snapshot(id string) []hostCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hostCall
	for _, c := range h.calls {
		if c.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// expose makes globalThis.__host available to the tab's pages: it runs
// each call's action on the tab and records it.
func (h *hostCalls) expose(tb *tab) error {
	return chromedp.Do(tb.ctx, chromedp.ExposeFunc("__host", func(ctx context.Context, call report.HostCall) (chromedp.Void, error) {
		hc := hostCall{HostCall: call, Start: time.Now()}
		err := hostAction(ctx, call.Action)
		hc.Done = time.Now()
		if err != nil {
			hc.Err = err.Error()
		}
		h.mu.Lock()
		h.calls = append(h.calls, hc)
		h.mu.Unlock()
		return chromedp.Void{}, err
	}))
}

// hostAction runs action on the tab of ctx. Going offline, the network
// goes first and navigator.onLine follows, so that the page's offline
// event finds the network gone; coming back, the other way round, so that
// its online event finds the network there.
func hostAction(ctx context.Context, action string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	state := func(offline bool) error {
		_, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: offline, DownloadThroughput: -1, UploadThroughput: -1,
		})
		return err
	}
	window := func(ws cdpbrowser.WindowState) error {
		w, err := chromedp.CallBrowser(ctx, cdpbrowser.GetWindowForTarget, cdpbrowser.GetWindowForTargetParams{
			TargetID: chromedp.FromContext(ctx).Target.TargetID,
		})
		if err != nil {
			return err
		}
		_, err = chromedp.CallBrowser(ctx, cdpbrowser.SetWindowBounds, cdpbrowser.SetWindowBoundsParams{
			WindowID: w.WindowID, Bounds: &cdpbrowser.Bounds{WindowState: ws},
		})
		return err
	}
	switch action {
	case report.HostOffline:
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}},
		})
		if err != nil {
			return err
		}
		return state(true)
	case report.HostOnline:
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{},
		})
		if err != nil {
			return err
		}
		return state(false)
	case report.HostHide:
		return window(cdpbrowser.WindowStateMinimized)
	case report.HostShow:
		return window(cdpbrowser.WindowStateNormal)
	}
	return fmt.Errorf("no host action %q", action)
}

// lastCall returns the time the host's last call of action for the
// scenario had returned.
func lastCall(res ran, action string) (time.Time, bool) {
	for _, c := range slices.Backward(res.host) {
		if c.Action == action {
			return c.Done, true
		}
	}
	return time.Time{}, false
}

// networkEvent returns the time of the page's first event of typ (for
// visibilitychange, to vis) after t, on the scenario's clock.
func networkEvent(r *report.Result, typ, vis string, after float64) (float64, bool) {
	for _, e := range r.Network {
		if e.T >= after && e.Type == typ && (vis == "" || e.Visibility == vis) {
			return e.T, true
		}
	}
	return 0, false
}

// logged counts the lines the Conn logged that contain s.
func logged(r *report.Result, s string) int {
	n := 0
	for _, l := range r.Log {
		if strings.Contains(l.What, s) {
			n++
		}
	}
	return n
}

// wantMs checks a measured duration against [lo, hi].
func wantMs(t *testing.T, r *report.Result, name string, lo, hi float64) {
	t.Helper()
	d, ok := r.Ms[name]
	switch {
	case !ok:
		t.Errorf("%s was not measured", name)
	case d < lo || d > hi:
		t.Errorf("%s: %.1fms, want within [%.0fms, %.0fms]", name, d, lo, hi)
	}
}

// noAttemptsBetween checks that the server saw no attempt while the page
// was offline: between the host's offline and online calls (or the end).
func noAttemptsBetween(t *testing.T, res ran) {
	t.Helper()
	off, ok := lastCall(res, report.HostOffline)
	if !ok {
		t.Error("the page never went offline")
		return
	}
	on, ok := lastCall(res, report.HostOnline)
	if !ok || on.Before(off) {
		on = time.Now()
	}
	for _, a := range res.server {
		if a.At.After(off) && a.At.Before(on) {
			t.Errorf("the server saw an attempt while the page was offline (%v after it went): %s", a.At.Sub(off).Round(time.Millisecond), a.String())
		}
	}
}

// sockets counts the WebSockets the scenario's page created: one per dial
// attempt. While offline, the browser fails a new one at once, before it
// reaches any server; this is where an attempt burnt offline would show.
func sockets(r *report.Result) int {
	n := 0
	for _, e := range r.Browser {
		n = max(n, e.Socket)
	}
	return n
}

// figure logs one of the figures the network scenarios measure (grep
// FIGURE in go test -v's output).
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURE: "+format, args...)
}

// reconnectFigure bounds how long after the page's online event the
// Conn may connect: a dial on loopback, well under any backoff delay.
const reconnectFigure = 3000.0 // ms

var networkChecks = map[string]func(*testing.T, ran){
	report.OfflineStall: func(t *testing.T, res ran) {
		r := res.r
		// The browser neither closes the socket nor reports an error: the
		// Conn, which cannot ping without a ping func, sees nothing; the
		// message written while offline is delivered once the network is
		// back, and its echo read.
		wantDisconnects(t, r, 0)
		wantAttempts(t, res, 1)
		if v := r.Values["writeWhileOffline"]; v != "<nil>" {
			t.Errorf("Write while offline returned %s, want nil (the browser takes it)", v)
		}
		if v := r.Values["readWhileOffline"]; !strings.Contains(v, "deadline exceeded") {
			t.Errorf("Read while offline returned %s, want its ctx's deadline: nothing arrives", v)
		}
		if v := r.Values["stateWhileOffline"]; v != "connected" {
			t.Errorf("state while offline %q, want connected", v)
		}
		if on, ok := networkEvent(r, "online", "", 0); ok {
			if e, closed := closeEvents(r)[1]; closed && e.T < on {
				t.Errorf("the browser closed the socket while offline: %+v", e)
			}
		} else {
			t.Error("no online event")
		}
		wantMs(t, r, "onlineToEcho", 0, reconnectFigure)
		figure(t, "online event → the echo of the message written while offline: %.1fms", r.Ms["onlineToEcho"])
		wantClosedBy(t, res, 1, 1000, "")
	},
	report.OfflineProbe: func(t *testing.T, res ran) {
		r := res.r
		// The offline event probes the connection at once: the ping is
		// held with the socket's traffic, so no answer comes, and the
		// connection is dropped a probe's timeout after the event, as a
		// heartbeat timeout, to be redialed at once. But the network is
		// gone: the Conn dials nothing until it is back (the page creates
		// no WebSocket, and reports no failed dial), and says so once.
		if wantDisconnects(t, r, 1) {
			d := r.Disconnects[0]
			if d.Code != 1006 || !d.HeartbeatTimeout || d.Decision != "retry" || !d.Reconnect || d.DelayMs != 0 {
				t.Errorf("Disconnect %+v, want 1006 with ErrHeartbeatTimeout, retry at once", d)
			}
		}
		// Not before the probe's timeout, and long before the heartbeat's
		// interval (a minute) would have sent a ping of its own. Timers in
		// a page on a busy machine fire late (half a second and more,
		// measured on two CPUs running both browsers): the bound is loose.
		wantMs(t, r, "offlineToDisconnect", report.ProbeTimeoutMs-slack/10, report.ProbeTimeoutMs+4*slack)
		wantAttempts(t, res, 1)
		noAttemptsBetween(t, res)
		if n := sockets(r); n != 1 {
			t.Errorf("the page created %d WebSockets, want 1: none while offline", n)
		}
		if n := logged(r, "offline: waiting for the network"); n != 1 {
			t.Errorf("the Conn logged %q %d times, want once", "offline: waiting for the network", n)
		}
		if calls := closeCalls(r)[1]; len(calls) > 0 {
			if off, ok := networkEvent(r, "offline", "", 0); ok {
				figure(t, "offline event → the probe's verdict closed the socket: %.1fms (probe timeout %dms); → OnDisconnect: %.1fms",
					calls[0].T-off, report.ProbeTimeoutMs, r.Ms["offlineToDisconnect"])
			}
		}
		figure(t, "Close while the Conn waits for the network: %.1fms", r.Ms["Close"])
		if v := r.Values["stateWhileOffline"]; v != "connecting" {
			t.Errorf("state while offline %q, want connecting", v)
		}
		// Close while the Conn waits for the network returns at once.
		wantPrompt(t, r, "Close")
		if r.Values["closeErr"] != "<nil>" {
			t.Errorf("Close while offline returned %s", r.Values["closeErr"])
		}
		if e, ok := closeEvents(r)[1]; ok && len(r.Disconnects) > 0 && e.T < r.Disconnects[0].T {
			t.Logf("the browser closed the socket itself while offline: %+v", e)
		}
	},
	report.OfflineClose: func(t *testing.T, res ran) {
		r := res.r
		// The close frame is held: Close waits out its grace (5 s in the
		// browser), says so, and the server sees the close once the
		// network is back.
		wantDisconnects(t, r, 0)
		if d := r.Ms["Close"]; d < 4500 || d > 5000+slack {
			t.Errorf("Close while offline took %.1fms, want about 5 s (the grace)", d)
		}
		if !strings.Contains(r.Values["closeErr"], "close handshake was cut short") {
			t.Errorf("Close while offline returned %s, want the handshake's failure", r.Values["closeErr"])
		}
		figure(t, "Close on a live connection whose network is gone: %.1fms", r.Ms["Close"])
	},
	report.OfflineDial: func(t *testing.T, res ran) {
		r := res.r
		// Dial while offline dials nothing until online, then at once.
		wantDisconnects(t, r, 0)
		wantAttempts(t, res, 1)
		noAttemptsBetween(t, res)
		if on, ok := networkEvent(r, "online", "", 0); ok {
			for _, e := range r.Browser {
				if e.T < on {
					t.Errorf("the page's WebSocket %d had an event before the online event: %+v", e.Socket, e)
				}
			}
		}
		if n := sockets(r); n != 1 {
			t.Errorf("the page created %d WebSockets, want 1", n)
		}
		if r.Values["dialReturnedOffline"] != "false" {
			t.Errorf("Dial returned while the page was offline: %s", r.Values["dialErr"])
		}
		if n := logged(r, "offline: waiting for the network"); n != 1 {
			t.Errorf("the Conn logged %q %d times, want once", "offline: waiting for the network", n)
		}
		wantMs(t, r, "onlineToConnect", 0, reconnectFigure)
		figure(t, "Dial while offline: online event → connected: %.1fms", r.Ms["onlineToConnect"])
		if on, ok := lastCall(res, report.HostOnline); ok && len(res.server) > 0 {
			t.Logf("the server saw the handshake %v after the host's online command returned",
				res.server[0].At.Sub(on).Round(100*time.Microsecond))
		}
	},
	report.OnlineBackoff: func(t *testing.T, res ran) {
		r := res.r
		// The drop's Disconnect announces the schedule's 30 s; the online
		// event cuts that wait short.
		if wantDisconnects(t, r, 1) {
			d := r.Disconnects[0]
			if d.Code != 1006 || !d.Reconnect || d.DelayMs < report.BackoffDelayMs-1 {
				t.Errorf("Disconnect %+v, want 1006, a retry in %dms", d, report.BackoffDelayMs)
			}
		}
		if len(r.Connects) != 2 {
			t.Errorf("%d connections, want 2", len(r.Connects))
		}
		wantAttempts(t, res, 2)
		noAttemptsBetween(t, res)
		if n := sockets(r); n != 2 {
			t.Errorf("the page created %d WebSockets, want 2", n)
		}
		wantMs(t, r, "onlineToConnect", 0, reconnectFigure)
		figure(t, "a %dms backoff wait: online event → connected: %.1fms", report.BackoffDelayMs, r.Ms["onlineToConnect"])
		if on, ok := lastCall(res, report.HostOnline); ok && len(res.server) == 2 {
			t.Logf("the server saw attempt 2 %v after the host's online command returned, %v after the drop",
				res.server[1].At.Sub(on).Round(100*time.Microsecond), res.server[1].At.Sub(res.server[0].Ended).Round(time.Millisecond))
		}
	},
	report.Visible: func(t *testing.T, res ran) {
		r := res.r
		// Hidden, nothing; visible again, one probe at once, answered:
		// the connection stays.
		wantDisconnects(t, r, 0)
		wantAttempts(t, res, 1)
		if _, ok := networkEvent(r, "visibilitychange", "hidden", 0); !ok {
			t.Error("the page never became hidden")
		}
		if v := r.Values["pingsBeforeVisible"]; v != "0" {
			t.Errorf("%s pings before the page was visible again, want none", v)
		}
		wantMs(t, r, "visibleToPing", 0, slack)
		wantMs(t, r, "visibleToPong", 0, slack)
		figure(t, "visibilitychange to visible → the ping func ran: %.1fms; → its pong read: %.1fms", r.Ms["visibleToPing"], r.Ms["visibleToPong"])
		if len(res.server) == 1 {
			a := res.server[0]
			if a.Pings != 1 {
				t.Errorf("the server received %d pings, want 1 (the probe's)", a.Pings)
			}
			if show, ok := lastCall(res, report.HostShow); ok && len(a.PingsAt) > 0 {
				t.Logf("the server received the ping %v after the host's show command returned",
					a.PingsAt[0].Sub(show).Round(100*time.Microsecond))
			}
		}
		if r.Values["state"] != "connected" {
			t.Errorf("state %q after the probe, want connected", r.Values["state"])
		}
	},
}
