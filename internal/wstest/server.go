//go:build !js

// Package wstest holds a scriptable WebSocket server for the tests: each
// connection attempt takes the next Step from a script, so a test can say
// "refuse with 503, then accept and drop, then echo" and watch the client
// ride through it. The same server runs on a real loopback listener
// (Handler, with httptest) or over net.Pipe (PipeDial), which works inside
// testing/synctest bubbles.
package wstest

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// A Step serves one connection attempt. Reject, if set, answers the
// handshake with that status and header instead of accepting. Hang makes the
// handshake never complete (until the client gives up). Otherwise the
// connection is accepted and Serve runs on it; when Serve returns the
// server closes the connection at once (no close frame) unless Serve closed
// it itself.
type Step struct {
	Reject int
	Header http.Header
	Hang   bool
	// NoPong makes the server read pings but never answer them.
	NoPong bool
	// Subprotocols are offered to the client, in order of preference.
	Subprotocols []string
	Serve        func(ctx context.Context, ws *websocket.Conn)
	// Raw, if set, completes the handshake itself and serves the raw
	// connection, to write frames coder/websocket would not (one large
	// frame trickling in, say); the connection is closed when Raw returns
	// or the server closes.
	Raw func(ctx context.Context, conn net.Conn)
}

// Server is a scriptable WebSocket server. The zero value is not usable:
// call NewServer.
type Server struct {
	mu     sync.Mutex
	script []Step
	last   Step // repeated once the script is used up
	conns  map[*websocket.Conn]struct{}
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	times  []time.Time
	pings  []time.Time

	// Attempts counts handshake requests, Accepted accepted connections.
	Attempts atomic.Int64
	Accepted atomic.Int64
	// Pings counts pings received from clients.
	Pings atomic.Int64
}

// NewServer returns a server that plays script, then repeats its last step.
func NewServer(script ...Step) *Server {
	s := &Server{script: script, conns: map[*websocket.Conn]struct{}{}}
	if len(script) > 0 {
		s.last = script[len(script)-1]
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// AttemptTimes returns when each handshake request arrived.
func (s *Server) AttemptTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.times...)
}

// PingTimes returns when each ping from a client arrived.
func (s *Server) PingTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.pings...)
}

// SetScript replaces the rest of the script.
func (s *Server) SetScript(script ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = script
	if len(script) > 0 {
		s.last = script[len(script)-1]
	}
}

func (s *Server) next() Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.script) == 0 {
		return s.last
	}
	st := s.script[0]
	s.script = s.script[1:]
	return st
}

// ServeHTTP plays the next step of the script.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Attempts.Add(1)
	s.mu.Lock()
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	st := s.next()
	switch {
	case st.Hang:
		select {
		case <-r.Context().Done():
		case <-s.ctx.Done():
		}
		return
	case st.Reject != 0:
		for k, v := range st.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(st.Reject)
		return
	case st.Raw != nil:
		s.serveRaw(w, r, st.Raw)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: st.Subprotocols,
		OnPingReceived: func(context.Context, []byte) bool {
			s.Pings.Add(1)
			s.mu.Lock()
			s.pings = append(s.pings, time.Now())
			s.mu.Unlock()
			return !st.NoPong
		},
	})
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		ws.CloseNow()
		return
	}
	s.conns[ws] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.Accepted.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, ws)
			s.mu.Unlock()
		}()
		defer ws.CloseNow()
		if st.Serve != nil {
			st.Serve(s.ctx, ws)
		}
	}()
}

// serveRaw answers the handshake and runs raw on the hijacked connection.
func (s *Server) serveRaw(w http.ResponseWriter, r *http.Request, raw func(context.Context, net.Conn)) {
	conn, err := Upgrade(w, r)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.Accepted.Add(1)
	go func() {
		defer s.wg.Done()
		defer conn.Close()
		stop := context.AfterFunc(s.ctx, func() { conn.Close() })
		defer stop()
		raw(s.ctx, conn)
	}()
}

// Upgrade answers a WebSocket handshake with 101 and hijacks the
// connection, for a server that speaks the protocol itself: no checks, no
// extensions, no subprotocol.
func Upgrade(w http.ResponseWriter, r *http.Request) (net.Conn, error) {
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	w.Header().Set("Upgrade", "websocket")
	w.Header().Set("Connection", "Upgrade")
	w.Header().Set("Sec-WebSocket-Accept", base64.StdEncoding.EncodeToString(sum[:]))
	w.WriteHeader(http.StatusSwitchingProtocols)
	conn, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return nil, err
	}
	if brw.Reader.Buffered() > 0 {
		// The client's first bytes, read while the server was answering.
		conn = bufferedConn{conn, brw.Reader}
	}
	return conn, nil
}

// bufferedConn is a hijacked connection whose first bytes the HTTP server
// had already read.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Close ends every connection and waits for their goroutines. It closes
// the connections without holding s.mu: CloseNow waits for a reader that
// may be in OnPingReceived, which takes s.mu.
func (s *Server) Close() {
	s.mu.Lock()
	s.cancel()
	conns := make([]*websocket.Conn, 0, len(s.conns))
	for ws := range s.conns {
		conns = append(conns, ws)
	}
	s.mu.Unlock()
	for _, ws := range conns {
		ws.CloseNow()
	}
	s.wg.Wait()
}

// DialFunc is the shape of wsreconnect.DialFunc, without importing it.
type DialFunc = func(ctx context.Context) (*websocket.Conn, *http.Response, error)

// PipeDial returns a dial function that reaches s over net.Pipe: no sockets,
// usable inside a testing/synctest bubble.
func (s *Server) PipeDial() DialFunc { return s.PipeDialOptions(websocket.DialOptions{}) }

// PipeDialOptions is PipeDial with the given options (its HTTPClient is
// replaced by the pipe's).
func (s *Server) PipeDialOptions(opts websocket.DialOptions) DialFunc {
	opts.HTTPClient = &http.Client{Transport: PipeTransport{Handler: s}}
	return func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, "ws://pipe.test/", &opts)
	}
}

// Listen starts s on a real loopback listener (127.0.0.1). It returns the
// ws:// URL, a dial function with its own http.Transport, and a cleanup
// that closes the listener, the server and the transport's idle and
// in-progress dials.
func (s *Server) Listen() (url string, dial DialFunc, cleanup func()) {
	hs := httptest.NewUnstartedServer(s)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	hs.Listener = l
	hs.Start()
	url = "ws://" + l.Addr().String() + "/"
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	dial = func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	}
	return url, dial, func() {
		s.Close()
		hs.CloseClientConnections()
		hs.Close()
		tr.CloseIdleConnections()
	}
}

// PipeTransport is an http.RoundTripper that serves each request with
// Handler over a new net.Pipe, which the handler may hijack: no sockets,
// usable inside a testing/synctest bubble. Wrap, if set, wraps the client's
// end of each pipe (to watch it, say).
type PipeTransport struct {
	Handler http.Handler
	Wrap    func(net.Conn) net.Conn
}

// RoundTrip serves r with t.Handler over a new pipe.
func (t PipeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	clientConn, serverConn := net.Pipe()
	if t.Wrap != nil {
		clientConn = t.Wrap(clientConn)
	}
	// As net/http's Transport does, say which connection the request uses.
	if trace := httptrace.ContextClientTrace(r.Context()); trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: clientConn})
	}
	hj := &hijacker{ResponseRecorder: httptest.NewRecorder(), conn: serverConn}
	t.Handler.ServeHTTP(hj, r)
	if err := r.Context().Err(); err != nil {
		clientConn.Close()
		serverConn.Close()
		return nil, err
	}
	resp := hj.Result()
	if resp.StatusCode == http.StatusSwitchingProtocols && hj.hijacked {
		resp.Body = clientConn
	} else {
		clientConn.Close()
		serverConn.Close()
	}
	return resp, nil
}

type hijacker struct {
	*httptest.ResponseRecorder
	conn     net.Conn
	hijacked bool
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h.hijacked = true
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// Common steps.

// Echo accepts and echoes every message until the connection ends.
func Echo() Step {
	return Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
		for {
			typ, p, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if err := ws.Write(ctx, typ, p); err != nil {
				return
			}
		}
	}}
}

// Drop accepts and closes the TCP connection at once, without a close frame.
func Drop() Step {
	return Step{Serve: func(context.Context, *websocket.Conn) {}}
}

// CloseWith accepts and closes with code and reason.
func CloseWith(code websocket.StatusCode, reason string) Step {
	return Step{Serve: func(_ context.Context, ws *websocket.Conn) {
		ws.Close(code, reason)
	}}
}

// Reject answers the handshake with status and, if retryAfter is not empty,
// a Retry-After header.
func Reject(status int, retryAfter string) Step {
	st := Step{Reject: status}
	if retryAfter != "" {
		st.Header = http.Header{"Retry-After": {retryAfter}}
	}
	return st
}

// Hang never completes the handshake.
func Hang() Step { return Step{Hang: true} }

// Send accepts, writes the messages "0", "1", … n-1, then behaves as next
// (nil: waits for the connection to end).
func Send(n int, then func(ctx context.Context, ws *websocket.Conn)) Step {
	return Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
		for i := range n {
			if ws.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(i))) != nil {
				return
			}
		}
		if then != nil {
			then(ctx, ws)
			return
		}
		<-ws.CloseRead(ctx).Done()
	}}
}
