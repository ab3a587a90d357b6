//go:build !js

// Command demo runs a misbehaving WebSocket server and a wsreconnect client
// that rides through it.
//
//	go run ./examples/demo
//
// The server, on 127.0.0.1 at a random port, streams numbered messages and
// echoes what the client writes. It misbehaves on purpose, one way per
// connection attempt:
//
//  1. it accepts, then drops the TCP connection without a close frame (1006);
//  2. it accepts, then closes with 1013 "try again later";
//  3. it answers the handshake with 503 and Retry-After: 1;
//  4. it accepts, then closes with 1008 "policy violation".
//
// The client prints each disconnect with the decision the default policy
// took and the delay before the next attempt, and the messages that made
// it through. The last close, 1008, stops it. The program checks that all of
// this happened as described and exits with status 0; with status 1 if
// anything else happened.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// ticksPerConn is how many numbered messages the server sends on each
// connection before it misbehaves, one every tickEvery.
const (
	ticksPerConn = 5
	tickEvery    = 400 * time.Millisecond
)

var start = time.Now()

// logf prints a line prefixed with the time since the program started.
func logf(format string, args ...any) {
	fmt.Printf("[%5.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	if err := run(); err != nil {
		logf("UNEXPECTED: %v", err)
		os.Exit(1)
	}
	logf("done: everything happened as expected")
}

func run() error {
	srv, url, err := startServer()
	if err != nil {
		return err
	}
	defer srv.shutdown()
	logf("server listening on %s", url)

	// The client's own http.Client, so that the program can close the
	// transport's idle connections at the end: nothing is left running.
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	httpClient := &http.Client{Transport: transport}

	var (
		mu          sync.Mutex
		disconnects []wsreconnect.Disconnect
	)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	// The same call an application makes without wsreconnect, wrapped in a
	// function the Conn calls for each attempt.
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
	}
	c, err := wsreconnect.Dial(ctx, dial,
		// Short delays keep the demo short; the defaults are 1 s and 30 s.
		wsreconnect.WithInitialDelay(200*time.Millisecond),
		wsreconnect.WithMaxDelay(5*time.Second),
		wsreconnect.WithOnConnect(func(context.Context, *websocket.Conn) error {
			logf("connected")
			return nil
		}),
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			mu.Lock()
			disconnects = append(disconnects, d)
			mu.Unlock()
			logf("disconnect: %s", describe(d))
		}),
	)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.CloseNow()

	// A writer: one message every 700 ms. While the client reconnects,
	// Write waits for the next connection (up to its context's deadline).
	var (
		wg      sync.WaitGroup
		sent    atomic.Int64
		stopped = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stopped:
				return
			case <-time.After(700 * time.Millisecond):
			}
			logf("-> hello %d", i)
			began := time.Now()
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Write(wctx, websocket.MessageText, fmt.Appendf(nil, "hello %d", i))
			wcancel()
			if err != nil {
				var stop *wsreconnect.StopError
				if errors.As(err, &stop) || errors.Is(err, wsreconnect.ErrClosed) {
					return // the Conn has ended; the reader reports why
				}
				logf("write hello %d failed: %v", i, err)
				continue
			}
			sent.Add(1)
			if waited := time.Since(began); waited > 100*time.Millisecond {
				logf("   hello %d written after waiting %v for the next connection", i, waited.Round(time.Millisecond))
			}
		}
	}()

	// The reader: every message that made it through, until the Conn ends.
	ticks := map[int]int{} // connection number → numbered messages received
	echoes := 0
	var readErr error
	for {
		_, p, err := c.Read(ctx)
		if err != nil {
			readErr = err
			break
		}
		msg := string(p)
		logf("<- %s", msg)
		var n, conn int
		switch {
		case strings.HasPrefix(msg, "echo: "):
			echoes++
		case scan(msg, "message %d (connection %d)", &n, &conn):
			ticks[conn]++
		default:
			return fmt.Errorf("unexpected message %q", msg)
		}
	}
	close(stopped)
	wg.Wait()
	logf("Read: %v", readErr)

	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return check(readErr, disconnects, ticks, echoes, int(sent.Load()))
}

// describe formats a Disconnect for the log.
func describe(d wsreconnect.Disconnect) string {
	var b strings.Builder
	switch {
	case d.HTTPStatus != 0:
		fmt.Fprintf(&b, "handshake answered %d", d.HTTPStatus)
		if d.RetryAfter > 0 {
			fmt.Fprintf(&b, " (Retry-After %v)", d.RetryAfter)
		}
	case d.Code != 0:
		fmt.Fprintf(&b, "code %d", int(d.Code))
		if d.Reason != "" {
			fmt.Fprintf(&b, " %q", d.Reason)
		}
		if d.Code == websocket.StatusAbnormalClosure {
			b.WriteString(" (no close frame)")
		}
	default:
		fmt.Fprintf(&b, "dial failed: %v", d.Err)
	}
	fmt.Fprintf(&b, ", attempt %d → %v", d.Attempt, d.Decision)
	if d.Reconnect {
		fmt.Fprintf(&b, " in %v", d.Delay.Round(time.Millisecond))
	}
	return b.String()
}

func scan(s, format string, args ...any) bool {
	n, err := fmt.Sscanf(s, format, args...)
	return err == nil && n == len(args)
}

// check compares what happened with what the server's script should cause.
func check(readErr error, ds []wsreconnect.Disconnect, ticks map[int]int, echoes, sent int) error {
	var stop *wsreconnect.StopError
	if !errors.As(readErr, &stop) {
		return fmt.Errorf("the final Read ended with %v, want a *wsreconnect.StopError", readErr)
	}
	if code := websocket.CloseStatus(readErr); code != websocket.StatusPolicyViolation {
		return fmt.Errorf("final close status %v, want 1008", code)
	}
	type want struct {
		code     websocket.StatusCode
		status   int
		decision wsreconnect.Decision
		minDelay time.Duration
	}
	wants := []want{
		{code: websocket.StatusAbnormalClosure, decision: wsreconnect.Retry},
		{code: websocket.StatusTryAgainLater, decision: wsreconnect.RetryOverload, minDelay: time.Second},
		{status: http.StatusServiceUnavailable, decision: wsreconnect.RetryOverload, minDelay: time.Second},
		{code: websocket.StatusPolicyViolation, decision: wsreconnect.Stop},
	}
	if len(ds) != len(wants) {
		return fmt.Errorf("%d disconnects, want %d", len(ds), len(wants))
	}
	for i, w := range wants {
		d := ds[i]
		switch {
		case d.Code != w.code || d.HTTPStatus != w.status || d.Decision != w.decision:
			return fmt.Errorf("disconnect %d: %v", i+1, d)
		case d.Attempt != i+1:
			// No connection lasted the stable uptime (10 s): the count
			// must not reset on a bare connect.
			return fmt.Errorf("disconnect %d: attempt %d, want %d", i+1, d.Attempt, i+1)
		case d.Reconnect && d.Delay < w.minDelay:
			return fmt.Errorf("disconnect %d: delay %v, want at least %v", i+1, d.Delay, w.minDelay)
		}
	}
	if ra := ds[2].RetryAfter; ra != time.Second {
		return fmt.Errorf("503: RetryAfter %v, want 1s", ra)
	}
	// Messages sent before a close frame all arrive; the ones in flight
	// when a TCP connection drops may be lost.
	if ticks[1] < 1 || ticks[2] != ticksPerConn || ticks[3] != 0 || ticks[4] != ticksPerConn {
		return fmt.Errorf("numbered messages per connection: %v", ticks)
	}
	if sent == 0 || echoes == 0 {
		return fmt.Errorf("%d messages written, %d echoes read", sent, echoes)
	}
	logf("checked: 4 disconnects as scripted, final status 1008, %d messages written, %d echoes read", sent, echoes)
	return nil
}

// server is the misbehaving WebSocket server. Each handshake request plays
// the next step of the script.
type server struct {
	hs       *http.Server
	attempts atomic.Int64
	seq      atomic.Int64 // numbers the messages across connections

	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
	wg    sync.WaitGroup // one per accepted connection
}

func startServer() (*server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	s := &server{conns: map[*websocket.Conn]struct{}{}}
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go s.hs.Serve(l)
	return s, "ws://" + l.Addr().String() + "/", nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(s.attempts.Add(1))
	var end func(ws *websocket.Conn)
	switch n {
	case 1:
		end = func(ws *websocket.Conn) {
			logf("server: connection 1: dropping TCP without a close frame")
			ws.CloseNow()
		}
	case 2:
		end = func(ws *websocket.Conn) {
			logf("server: connection 2: closing with 1013")
			ws.Close(websocket.StatusTryAgainLater, "try again later")
		}
	case 3:
		logf("server: attempt 3: answering 503, Retry-After: 1")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	case 4:
		end = func(ws *websocket.Conn) {
			logf("server: connection 4: closing with 1008")
			ws.Close(websocket.StatusPolicyViolation, "policy violation")
		}
	default:
		logf("server: attempt %d: not in the script", n)
		http.Error(w, "not in the script", http.StatusGone)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns[ws] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, ws)
		s.mu.Unlock()
		s.wg.Done()
	}()
	s.serve(ws, n, end)
}

// serve streams numbered messages and echoes what the client writes, then
// ends the connection the script's way.
func (s *server) serve(ws *websocket.Conn, conn int, end func(*websocket.Conn)) {
	ctx := context.Background()
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		for {
			typ, p, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if ws.Write(ctx, typ, append([]byte("echo: "), p...)) != nil {
				return
			}
		}
	}()
	for range ticksPerConn {
		select {
		case <-echoDone:
			return
		case <-time.After(tickEvery):
		}
		msg := fmt.Sprintf("message %d (connection %d)", s.seq.Add(1), conn)
		if ws.Write(ctx, websocket.MessageText, []byte(msg)) != nil {
			break
		}
	}
	end(ws)
	ws.CloseNow()
	<-echoDone
}

// shutdown stops the listener and ends any connection still open.
func (s *server) shutdown() {
	s.hs.Close()
	s.mu.Lock()
	for ws := range s.conns {
		ws.CloseNow()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
