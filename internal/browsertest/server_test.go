//go:build !js

package browsertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/browsertest/report"
)

// indexHTML is the page of the browser program. Before Go starts, it wraps
// the WebSocket constructor so that every socket records what the browser
// reports (open, error, close with code, reason and wasClean) and each
// close() call the Go code makes, with what it threw, in
// globalThis.__wsEvents. coder/websocket creates its sockets with
// js.Global().Get("WebSocket").New, so it gets the wrapper. It also records
// the page's online, offline and visibilitychange events in
// globalThis.__netEvents; its listeners come before the Go program's, so
// each time is when the browser dispatched the event.
const indexHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>wsreconnect browser tests</title></head>
<body style="font: 14px monospace">
<h3>wsreconnect in the browser</h3>
<pre id="out"></pre>
<script>
globalThis.__wsEvents = [];
globalThis.__netEvents = [];
(() => {
	const record = (e) => __netEvents.push({t: performance.now(), type: e.type,
		onLine: navigator.onLine, visibility: document.visibilityState});
	addEventListener("online", record);
	addEventListener("offline", record);
	document.addEventListener("visibilitychange", record);
})();
(() => {
	const Native = globalThis.WebSocket;
	let sockets = 0;
	globalThis.WebSocket = class extends Native {
		constructor(url, protocols) {
			super(url, protocols);
			const n = ++sockets, u = String(url);
			this.__record = (type, e, t) => __wsEvents.push({t: t ?? performance.now(), socket: n, url: u, type,
				code: e.code ?? 0, reason: e.reason ?? "", wasClean: e.wasClean ?? false, thrown: e.thrown ?? ""});
			for (const type of ["open", "error", "close"]) {
				this.addEventListener(type, (e) => this.__record(type, e));
			}
		}
		close(...args) {
			const t = performance.now();
			try {
				super.close(...args);
				this.__record("close()", {code: args[0], reason: args[1]}, t);
			} catch (err) {
				this.__record("close()", {code: args[0], reason: args[1], thrown: String(err)}, t);
				throw err;
			}
		}
	};
})();
</script>
<script src="/wasm_exec.js"></script>
<script>
const go = new Go();
go.exit = (code) => { globalThis.__goExitCode = code; };
WebAssembly.instantiateStreaming(fetch("/main.wasm"), go.importObject)
	.then((r) => go.run(r.instance))
	.then(() => { globalThis.__goDone = true; })
	.catch((e) => { globalThis.__goError = String(e); globalThis.__goDone = true; console.error(e); });
</script>
</body></html>`

// server serves the page, the browser program and the WebSocket endpoints
// the scenarios dial, on 127.0.0.1. Each endpoint misbehaves in its own
// way, counting the attempts of each scenario (by the URL's id) to know
// which one it is on; it records what it saw of each attempt.
type server struct {
	*httptest.Server

	ctx     context.Context // ends at shutdown: ends the handlers' waits and reads
	cancel  context.CancelFunc
	handler sync.WaitGroup // WebSocket handlers (httptest does not wait for hijacked ones)

	mu       sync.Mutex
	attempts map[string][]*attempt // by id
}

// attempt is what the server saw of one connection attempt.
type attempt struct {
	N      int       // 1, 2, … within its id
	Path   string    // the endpoint
	At     time.Time // when the request came
	What   string    // what the server did with it
	Opened time.Time // when the handshake was answered with 101, if it was
	Ended  time.Time // when the server saw the connection end
	// Sent is the close frame the server sent, if it closed the
	// connection itself; its Close returned SentErr.
	Sent    string
	SentErr string
	// Close is the close frame the server received, if any: its code
	// (-1 for none) and reason. ReadErr is the error that ended reading.
	Close       websocket.StatusCode
	CloseReason string
	ReadErr     string
	Pings       int // application-level pings received
	Pongs       int // and answered
	PingsAt     []time.Time
}

func (a *attempt) String() string {
	s := fmt.Sprintf("attempt %d %s: %s", a.N, a.Path, a.What)
	if !a.Opened.IsZero() {
		s += fmt.Sprintf("; opened at +%v", a.Opened.Sub(a.At).Round(time.Millisecond))
	}
	if a.Pings > 0 {
		s += fmt.Sprintf("; %d pings, %d answered", a.Pings, a.Pongs)
	}
	switch {
	case a.Sent != "":
		s += fmt.Sprintf("; sent close %s, its Close returned %s", a.Sent, a.SentErr)
	case !a.Ended.IsZero() && a.Close >= 0:
		s += fmt.Sprintf("; received close %d %q after %v", a.Close, a.CloseReason, a.Ended.Sub(a.Opened).Round(time.Millisecond))
	case !a.Ended.IsZero():
		s += fmt.Sprintf("; ended without a close frame after %v (%s)", a.Ended.Sub(a.Opened).Round(time.Millisecond), a.ReadErr)
	case !a.Opened.IsZero():
		s += "; still open"
	}
	return s
}

// newServer starts the server; a cleanup closes it and waits for its
// handlers.
func newServer(t *testing.T, files map[string]string) *server {
	s := &server{attempts: map[string][]*attempt{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, indexHTML)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for name, path := range files {
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, path) // application/wasm, text/javascript: by extension
		})
	}
	mux.HandleFunc("GET /ws/{endpoint}", s.serveWS)
	s.Server = httptest.NewServer(mux) // on 127.0.0.1
	t.Cleanup(func() {
		s.cancel()
		s.Server.Close()
		s.handler.Wait()
	})
	return s
}

// snapshot returns copies of what the server saw of id's attempts.
func (s *server) snapshot(id string) []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []attempt
	for _, a := range s.attempts[id] {
		c := *a
		c.PingsAt = slices.Clone(a.PingsAt)
		out = append(out, c)
	}
	return out
}

func (s *server) update(a *attempt, f func(*attempt)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(a)
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	s.handler.Add(1)
	defer s.handler.Done()
	id, path := r.URL.Query().Get("id"), r.PathValue("endpoint")
	s.mu.Lock()
	a := &attempt{N: len(s.attempts[id]) + 1, Path: path, At: time.Now(), Close: -1}
	s.attempts[id] = append(s.attempts[id], a)
	s.mu.Unlock()

	accept := func(what string) *websocket.Conn {
		ws, err := websocket.Accept(w, r, nil) // same origin: no options needed
		if err != nil {
			s.update(a, func(a *attempt) { a.What = "accept failed: " + err.Error() })
			return nil
		}
		s.update(a, func(a *attempt) { a.What, a.Opened = what, time.Now() })
		return ws
	}
	refuse := func(status int, retryAfter string) {
		s.update(a, func(a *attempt) { a.What = fmt.Sprintf("refused with %d, Retry-After %q", status, retryAfter) })
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		http.Error(w, http.StatusText(status), status)
	}

	switch {
	case path == "echo", path == "drop", path == "overload" && a.N > 2, path == "503" && a.N > 2,
		path == "hb" && a.N > 1, path == "hang" && a.N > 1:
		if ws := accept("echo"); ws != nil {
			s.echo(ws, a, path == "drop" && a.N == 1, -1)
		}
	case path == "overload":
		if ws := accept("close 1013"); ws != nil {
			s.close(ws, a, websocket.StatusTryAgainLater, "try again later")
		}
	case path == "policy" && a.N == 1:
		if ws := accept("close 1008 after the first message"); ws != nil {
			if _, _, err := ws.Read(s.ctx); err != nil {
				s.ended(a, err)
				return
			}
			s.close(ws, a, websocket.StatusPolicyViolation, "policy violation")
		}
	case path == "policy":
		refuse(http.StatusForbidden, "") // never expected: 1008 stops the client
	case path == "503":
		refuse(http.StatusServiceUnavailable, "1")
	case path == "hb":
		if ws := accept("answer 3 pings, then go silent"); ws != nil {
			s.echo(ws, a, false, 3)
		}
	case path == "silent":
		if ws := accept("never read"); ws != nil {
			<-s.ctx.Done()
			ws.CloseNow()
			s.ended(a, errors.New("silent until the server shut down"))
		}
	case path == "hang":
		// Hold the handshake past the client's dial timeout, then answer it.
		select {
		case <-time.After(1500 * time.Millisecond):
		case <-s.ctx.Done():
			return
		}
		if ws := accept("answered the handshake after 1.5 s"); ws != nil {
			s.echo(ws, a, false, -1)
		}
	default:
		refuse(http.StatusNotFound, "")
	}
}

// echo echoes messages and answers application pings with pongs until the
// connection ends. drop makes it drop the connection (no close frame) on
// the message "drop". After pongLimit pongs (if ≥ 0) it goes silent: it
// reads nothing more until the server shuts down.
func (s *server) echo(ws *websocket.Conn, a *attempt, drop bool, pongLimit int) {
	for {
		typ, p, err := ws.Read(s.ctx)
		if err != nil {
			s.ended(a, err)
			return
		}
		msg := string(p)
		switch {
		case drop && msg == "drop":
			ws.CloseNow() // the TCP connection, without a close frame
			s.ended(a, errors.New("dropped by the server"))
			return
		case msg == report.Ping:
			silent := false
			s.update(a, func(a *attempt) {
				a.Pings++
				a.PingsAt = append(a.PingsAt, time.Now())
				silent = pongLimit >= 0 && a.Pongs >= pongLimit
				if !silent {
					a.Pongs++
				}
			})
			if silent {
				<-s.ctx.Done()
				ws.CloseNow()
				s.ended(a, errors.New("silent until the server shut down"))
				return
			}
			err = ws.Write(s.ctx, websocket.MessageText, []byte(report.Pong))
		default:
			err = ws.Write(s.ctx, typ, p)
		}
		if err != nil {
			s.ended(a, err)
			return
		}
	}
}

// close closes ws with code and reason, and records it.
func (s *server) close(ws *websocket.Conn, a *attempt, code websocket.StatusCode, reason string) {
	err := ws.Close(code, reason)
	s.update(a, func(a *attempt) {
		a.Ended = time.Now()
		a.Sent = fmt.Sprintf("%d %q", int(code), reason)
		a.SentErr = fmt.Sprint(err)
	})
}

// ended records how a connection ended: err is what ended its reading.
func (s *server) ended(a *attempt, err error) {
	var ce websocket.CloseError
	s.update(a, func(a *attempt) {
		a.Ended = time.Now()
		if err != nil {
			a.ReadErr = err.Error()
		}
		if errors.As(err, &ce) {
			a.Close, a.CloseReason = ce.Code, ce.Reason
		}
	})
}

// describe lists what the server saw, one attempt a line.
func describe(as []attempt) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "\n    server: %s", a.String())
	}
	return b.String()
}
