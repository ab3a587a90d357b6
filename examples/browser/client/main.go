//go:build js

// Command client is the browser side of examples/browser: a wsreconnect
// client compiled to WebAssembly, which shows in the page what happens to
// its connection. Build and serve it with go run ./examples/browser.
//
// In the browser, a page cannot send WebSocket pings, so the heartbeat
// needs an application-level ping (WithPingFunc): the client writes
// {"op":"ping"} and the server answers {"op":"pong"}. A refused handshake
// shows up as a failed dial: the page cannot see its HTTP status.
//
// The Conn listens to the browser's view of the network: while the
// browser says it is offline, it dials nothing (an offline page would only
// burn attempts); when the network is back, it dials at once; when the
// network goes, or the page is shown again after being hidden, it probes
// its connection with the ping. The page shows what the browser says and
// what the Conn logs about it.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"syscall/js"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

const (
	ping        = `{"op":"ping"}`
	pong        = `{"op":"pong"}`
	maxMessages = 12
	maxEvents   = 8
)

var (
	document = js.Global().Get("document")
	start    = time.Now()
)

func main() {
	loc := js.Global().Get("location")
	scheme := "ws://"
	if loc.Get("protocol").String() == "https:" {
		scheme = "wss://"
	}
	url := scheme + loc.Get("host").String() + "/ws"

	ui := &page{}
	ui.setState("connecting", "dialling "+url)
	ui.watchNetwork()

	// The same websocket.Dial call a program makes without wsreconnect,
	// wrapped in a function the Conn calls for each attempt.
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, nil)
	}
	c, err := wsreconnect.Dial(context.Background(), dial,
		// Short delays keep the page lively; the defaults are 1 s and 30 s.
		wsreconnect.WithInitialDelay(500*time.Millisecond),
		wsreconnect.WithMaxDelay(5*time.Second),
		wsreconnect.WithStableUptime(5*time.Second),
		wsreconnect.WithHeartbeat(2*time.Second, time.Second),
		wsreconnect.WithPingFunc(func(ctx context.Context, ws *websocket.Conn) error {
			return ws.Write(ctx, websocket.MessageText, []byte(ping))
		}),
		wsreconnect.WithOnConnect(func(context.Context, *websocket.Conn) error {
			ui.connects++
			return nil
		}),
		wsreconnect.WithOnDisconnect(ui.addDisconnect),
		// Its log lines ("offline: waiting for the network", "connected")
		// go to the page's list of events.
		wsreconnect.WithLogger(slog.New(slog.NewTextHandler(eventWriter{ui}, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				switch {
				case a.Key == slog.TimeKey, a.Key == slog.LevelKey: // the page has its own clock
					return slog.Attr{}
				case a.Key == "subprotocol" && a.Value.String() == "":
					return slog.Attr{}
				}
				return a
			},
		}))),
	)
	if err != nil {
		ui.setState("closed", "Dial: "+err.Error())
		select {}
	}
	ui.enableButtons(c)

	go writeHellos(c)
	go ui.refresh(c)
	for {
		_, p, err := c.Read(context.Background())
		if err != nil {
			// The policy stopped (a *wsreconnect.StopError says why), or
			// the Close button was pressed.
			ui.setState("closed", err.Error())
			break
		}
		if string(p) == pong {
			ui.pongs++
			continue
		}
		ui.addMessage(string(p))
	}
	select {} // keep the page's callbacks working
}

// writeHellos writes a message every 2 s. While the Conn reconnects, Write
// waits for the next connection, bounded by its context.
func writeHellos(c *wsreconnect.Conn) {
	for i := 1; ; i++ {
		time.Sleep(2 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "hello %d", i))
		cancel()
		var stop *wsreconnect.StopError
		if errors.As(err, &stop) || errors.Is(err, wsreconnect.ErrClosed) {
			return
		}
	}
}

// page is what the page shows. Go in the browser runs on one thread: the
// callbacks and goroutines that update it never run at the same time.
type page struct {
	connects    int
	disconnects int
	pongs       int
	next        time.Time // when the next attempt is due
}

func byID(id string) js.Value { return document.Call("getElementById", id) }

func (p *page) setState(state, summary string) {
	el := byID("state")
	el.Set("textContent", state)
	el.Set("className", state)
	byID("summary").Set("textContent", summary)
	body := document.Get("body")
	body.Get("dataset").Set("state", state)
	body.Get("dataset").Set("connects", p.connects)
	body.Get("dataset").Set("disconnects", p.disconnects)
}

// refresh shows the Conn's state, with a countdown to the next attempt.
func (p *page) refresh(c *wsreconnect.Conn) {
	for {
		st := c.Stats()
		summary := fmt.Sprintf("%d connections, %d disconnects, %d pongs", p.connects, p.disconnects, p.pongs)
		switch st.State {
		case wsreconnect.StateConnected:
			summary = fmt.Sprintf("up %v · ", st.Uptime.Round(time.Second)) + summary
		case wsreconnect.StateConnecting:
			if !online() {
				summary = "offline: waiting for the network · " + summary
			} else if wait := time.Until(p.next); wait > 0 {
				summary = fmt.Sprintf("next attempt in %.1f s · ", wait.Seconds()) + summary
			} else {
				summary = "dialling · " + summary
			}
		case wsreconnect.StateClosed:
			return
		}
		p.setState(st.State.String(), summary)
		time.Sleep(200 * time.Millisecond)
	}
}

// online reports what the browser says: navigator.onLine.
func online() bool { return js.Global().Get("navigator").Get("onLine").Bool() }

// watchNetwork shows what the browser says about the network and the
// page's visibility, as the Conn hears it (the same events).
func (p *page) watchNetwork() {
	show := func() {
		state := "online"
		if !online() {
			state = "offline"
		}
		el := byID("network")
		el.Set("textContent", "network: "+state)
		el.Set("className", state)
		document.Get("body").Get("dataset").Set("network", state)
	}
	show()
	on := func(target js.Value, event string, fn func()) {
		target.Call("addEventListener", event, js.FuncOf(func(js.Value, []js.Value) any {
			fn()
			return nil
		}))
	}
	on(js.Global(), "offline", func() {
		show()
		p.addEvent("browser: offline (the Conn probes its connection, and dials nothing until online)")
	})
	on(js.Global(), "online", func() {
		show()
		p.addEvent("browser: online (the Conn dials at once if it has no connection)")
	})
	on(document, "visibilitychange", func() {
		if document.Get("visibilityState").String() == "visible" {
			p.addEvent("browser: the page is visible again (the Conn probes its connection)")
		}
	})
}

// eventWriter takes the Conn's log lines to the page, one per Write,
// except its disconnects: the table shows them.
type eventWriter struct{ p *page }

func (w eventWriter) Write(b []byte) (int, error) {
	if line := strings.TrimSpace(string(b)); !strings.Contains(line, `msg="wsreconnect: disconnected"`) {
		w.p.addEvent(line)
	}
	return len(b), nil
}

// addEvent shows a line at the top of the list of events.
func (p *page) addEvent(line string) {
	prepend(byID("events"), fmt.Sprintf("[%s] %s", time.Since(start).Round(100*time.Millisecond), line), maxEvents)
}

// addDisconnect is the OnDisconnect callback: one row per Disconnect.
func (p *page) addDisconnect(d wsreconnect.Disconnect) {
	p.disconnects++
	p.next = time.Now().Add(d.Delay)
	var what string
	switch {
	case d.HTTPStatus != 0:
		what = fmt.Sprintf("handshake refused: %d", d.HTTPStatus)
	case errors.Is(d.Err, wsreconnect.ErrHeartbeatTimeout):
		what = "1006: no answer to the heartbeat"
	case d.Code == websocket.StatusAbnormalClosure:
		what = "1006: dropped without a close frame"
	case d.Code != 0:
		what = fmt.Sprintf("%d %q", int(d.Code), d.Reason)
	default:
		// Refused (a 503, say) or unreachable: a page cannot tell which.
		what = "dial failed (refused or unreachable)"
	}
	decision, next := d.Decision.String(), d.Delay.Round(time.Millisecond).String()
	if !d.Reconnect {
		next = "never"
	}
	errText := ""
	if d.Err != nil {
		errText = d.Err.Error()
	}
	row := document.Call("createElement", "tr")
	cell(row, time.Since(start).Round(100*time.Millisecond).String(), "")
	cell(row, what, "")
	cell(row, fmt.Sprint(d.Attempt), "")
	cls := ""
	if !d.Reconnect {
		cls = "stop"
	}
	cell(row, decision, cls)
	cell(row, next, "")
	cell(row, errText, "err")
	tbody := byID("disconnects")
	tbody.Call("insertBefore", row, tbody.Get("firstChild"))
}

func cell(row js.Value, text, class string) {
	td := document.Call("createElement", "td")
	td.Set("textContent", text)
	if class != "" {
		td.Set("className", class)
	}
	row.Call("appendChild", td)
}

// addMessage shows a message at the top of the list, keeping the last few.
func (p *page) addMessage(msg string) {
	prepend(byID("messages"), fmt.Sprintf("[%s] %s", time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(msg)), maxMessages)
}

// prepend adds a line at the top of the list ul, keeping the last keep.
func prepend(ul js.Value, text string, keep int) {
	li := document.Call("createElement", "li")
	li.Set("textContent", text)
	ul.Call("insertBefore", li, ul.Get("firstChild"))
	for ul.Get("children").Length() > keep {
		ul.Call("removeChild", ul.Get("lastChild"))
	}
}

// enableButtons wires the Reconnect and Close buttons to the Conn.
func (p *page) enableButtons(c *wsreconnect.Conn) {
	on := func(id string, fn func()) {
		b := byID(id)
		b.Set("disabled", false)
		b.Call("addEventListener", "click", js.FuncOf(func(js.Value, []js.Value) any {
			go fn() // never block the browser's event loop
			return nil
		}))
	}
	on("reconnect", c.Reconnect)
	on("close", func() { c.Close(websocket.StatusNormalClosure, "closed by the user") })
}
