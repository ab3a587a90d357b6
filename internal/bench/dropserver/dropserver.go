// Package dropserver is the WebSocket server under the storm and fleet
// benchmarks: it listens on 127.0.0.1, holds every connection it accepts
// (reading, so that pings are answered and a close handshake completes)
// until the connection ends, and drops them all at the same instant when
// told to, by a TCP drop or a close frame. What a benchmark admits and
// records around that is its own: it decides on every handshake with an
// Admit function.
package dropserver

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Admit decides on one handshake before it is accepted. To refuse, it
// answers the request itself (a 400, a 503) and returns false. To accept,
// it returns true and, if it needs to know, held: called once the
// connection is accepted and counted among those Drop and Close will end.
type Admit func(w http.ResponseWriter, r *http.Request) (held func(), ok bool)

// Server is a running server; Start makes one.
type Server struct {
	url   string
	admit Admit
	hs    *http.Server
	wg    sync.WaitGroup // Serve, and the close handshakes CloseAll started

	mu     sync.Mutex
	closed bool
	conns  map[*websocket.Conn]struct{} // held since the last drop
	raw    []net.Conn                   // the sockets under conns, as hijacked
}

// Start listens on 127.0.0.1 and serves WebSocket handshakes at every
// path, each decided by admit (nil: everyone is accepted).
func Start(admit Admit) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{url: "ws://" + ln.Addr().String() + "/", admit: admit,
		conns: map[*websocket.Conn]struct{}{}}
	s.hs = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateHijacked { // by websocket.Accept
				s.mu.Lock()
				s.raw = append(s.raw, c)
				s.mu.Unlock()
			}
		}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.hs.Serve(ln)
	}()
	return s, nil
}

// URL is the server's ws:// URL, ending in "/".
func (s *Server) URL() string { return s.url }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var held func()
	if s.admit != nil {
		var ok bool
		if held, ok = s.admit(w, r); !ok {
			return
		}
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	s.conns[ws] = struct{}{}
	s.mu.Unlock()
	if held != nil {
		held()
	}
	for {
		if _, _, err := ws.Read(context.Background()); err != nil {
			break
		}
	}
	s.mu.Lock()
	delete(s.conns, ws)
	s.mu.Unlock()
	_ = ws.CloseNow()
}

// release hands over every connection held until now: from then on, the
// caller ends them, and Close does not.
func (s *Server) release() (map[*websocket.Conn]struct{}, []net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns, raw := s.conns, s.raw
	s.conns, s.raw = map[*websocket.Conn]struct{}{}, nil
	return conns, raw
}

// DropTCP ends every connection held at once, without a close frame: the
// clients see 1006. It shuts the sockets down itself, one after the other
// without waiting: websocket.Conn.CloseNow waits for the connection's
// reader to return, and thousands of them one after the other took
// seconds on a loaded machine, so that the drop was no longer at one
// instant. The handlers' reads then fail, and they close their
// websocket.Conns.
func (s *Server) DropTCP() {
	_, raw := s.release()
	for _, c := range raw {
		// Close alone sends the FIN only once the connection's reader
		// has woken up and let go of the socket; shutdown sends it now.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_ = c.Close()
	}
}

// CloseAll sends every connection held a close frame with code and
// reason, all at once (one goroutine each, which Close waits for), and
// returns without waiting for the clients' answers.
func (s *Server) CloseAll(code websocket.StatusCode, reason string) {
	conns, _ := s.release()
	for ws := range conns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = ws.Close(code, reason)
		}()
	}
}

// Close stops listening, ends the handshakes in progress and the
// connections held, and waits for the close handshakes CloseAll started.
func (s *Server) Close() {
	_ = s.hs.Close() // the listener and the handshakes in progress
	s.mu.Lock()
	s.closed = true
	for ws := range s.conns {
		_ = ws.CloseNow()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
