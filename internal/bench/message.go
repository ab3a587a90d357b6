// Package bench holds wsreconnect's benchmarks: the per-message benchmarks
// in this package (go test -bench), and programs under cmd/ for the
// per-connection cost, the reconnect storm and dead-peer detection. See
// BENCHMARKS.md at the repository root for the figures and the command
// that reproduces them all (go run ./cmd/benchall).
package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/internal/bench/rawws"
)

// PayloadSize is the size of the messages of the per-message benchmarks.
const PayloadSize = 1024

// Impls are the clients compared, in the order benchstat shows them; the
// first is the baseline.
var Impls = []string{"raw", "wsreconnect", "gorilla"}

// Ops are the operations measured: Write sends one binary message to a
// server that discards it; Read receives one from a server that streams
// them.
var Ops = []string{"write", "read"}

// Session is one client connected to its own loopback server, ready to
// perform op once per call to Op.
type Session struct {
	Op    func() error
	close []func()
}

// Close ends the client, then the server.
func (s *Session) Close() {
	for i := len(s.close) - 1; i >= 0; i-- {
		s.close[i]()
	}
}

// Open starts a loopback server for op and connects the impl client to it.
// Every client uses its library's defaults; wsreconnect's heartbeat is on.
func Open(ctx context.Context, op, impl string) (*Session, error) {
	mode := rawws.Sink
	if op == "read" {
		mode = rawws.Source
	}
	srv, err := rawws.Start(mode, PayloadSize)
	if err != nil {
		return nil, err
	}
	s := &Session{close: []func(){srv.Close}}
	payload := bytes.Repeat([]byte{0xa5}, PayloadSize)
	bg := context.Background()
	check := func(p []byte) error {
		if len(p) != PayloadSize {
			return fmt.Errorf("read %d bytes, want %d", len(p), PayloadSize)
		}
		return nil
	}
	// Each client gets its own transport, so that nothing outlives Close.
	tr := &http.Transport{}
	s.close = append(s.close, tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	switch impl {
	case "raw":
		ws, _, err := websocket.Dial(ctx, srv.URL, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			s.Close()
			return nil, err
		}
		ws.SetReadLimit(-1)
		s.close = append(s.close, func() { _ = ws.CloseNow() })
		if op == "write" {
			s.Op = func() error { return ws.Write(bg, websocket.MessageBinary, payload) }
		} else {
			s.Op = func() error {
				_, p, err := ws.Read(bg)
				if err != nil {
					return err
				}
				return check(p)
			}
		}
	case "wsreconnect":
		c, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, srv.URL, &websocket.DialOptions{HTTPClient: hc})
		})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.close = append(s.close, func() { _ = c.CloseNow() })
		if op == "write" {
			s.Op = func() error { return c.Write(bg, websocket.MessageBinary, payload) }
		} else {
			s.Op = func() error {
				_, p, err := c.Read(bg)
				if err != nil {
					return err
				}
				return check(p)
			}
		}
	case "gorilla":
		d := gorilla.Dialer{NetDialContext: tr.DialContext}
		conn, _, err := d.DialContext(ctx, srv.URL, nil)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.close = append(s.close, func() { _ = conn.Close() })
		if op == "write" {
			s.Op = func() error { return conn.WriteMessage(gorilla.BinaryMessage, payload) }
		} else {
			s.Op = func() error {
				_, p, err := conn.ReadMessage()
				if err != nil {
					return err
				}
				return check(p)
			}
		}
	default:
		s.Close()
		return nil, fmt.Errorf("unknown impl %q", impl)
	}
	return s, nil
}
