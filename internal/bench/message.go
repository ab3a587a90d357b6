// Package bench holds wsreconnect's benchmarks: the per-message benchmarks
// in this package (go test -bench), and programs under cmd/ for the
// per-connection cost, the reconnect storm, the dial-limited fleet and
// dead-peer detection. See BENCHMARKS.md at the repository root for the
// figures and the command that reproduces them all (go run ./cmd/benchall).
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/internal/bench/rawws"
)

// PayloadSize is the size of the small messages of the per-message
// benchmarks.
const PayloadSize = 1024

// Impls are the clients compared, in the order benchstat shows them; the
// first is the baseline.
var Impls = []string{"raw", "wsreconnect", "gorilla"}

// Ops are the operations measured: Write sends one binary message to a
// server that discards it; Read receives one from a server that streams
// them.
var Ops = []string{"write", "read"}

// Peers are the servers: rawws, a minimal server that costs almost nothing
// per message (the client is measured), and coder, a coder/websocket server
// in the same process (what a Go service and its client on one box look
// like, and what a user's own quick benchmark does).
var Peers = []string{"rawws", "coder"}

// Case is one benchmark: op against peer with messages of Size bytes, for
// each of Impls.
type Case struct {
	Op, Peer string
	Size     int
	Impls    []string
}

// Cases are the benchmarks of BenchmarkMessage: 1 KiB messages against
// both peers and every client, and large messages (64 KiB, 4 MiB) against
// rawws, wsreconnect (heartbeat on: large messages go out in fragments,
// with pings among them) against raw coder/websocket.
func Cases() []Case {
	var cs []Case
	for _, op := range Ops {
		for _, peer := range Peers {
			cs = append(cs, Case{op, peer, PayloadSize, Impls})
		}
		for _, size := range []int{64 << 10, 4 << 20} {
			cs = append(cs, Case{op, "rawws", size, []string{"raw", "wsreconnect"}})
		}
	}
	return cs
}

// SizeName is how a size reads in benchmark names: 1KiB, 64KiB, 4MiB.
func SizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

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

// server is a loopback peer's URL and how to stop it.
type server struct {
	url   string
	close func()
}

func startPeer(peer, op string, size int) (server, error) {
	switch peer {
	case "rawws":
		mode := rawws.Sink
		if op == "read" {
			mode = rawws.Source
		}
		srv, err := rawws.Start(mode, size)
		if err != nil {
			return server{}, err
		}
		return server{srv.URL, srv.Close}, nil
	case "coder":
		return startCoderPeer(op, size)
	}
	return server{}, fmt.Errorf("unknown peer %q", peer)
}

// startCoderPeer serves coder/websocket connections on 127.0.0.1: for a
// read benchmark it writes messages of size bytes as fast as it can, for a
// write benchmark it reads and discards.
func startCoderPeer(op string, size int) (server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return server{}, err
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	payload := bytes.Repeat([]byte{0x5a}, size)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.CloseNow()
		ws.SetReadLimit(-1)
		stop := context.AfterFunc(ctx, func() { ws.CloseNow() })
		defer stop()
		if op == "read" {
			rctx := ws.CloseRead(context.Background()) // answers pings and the close
			for rctx.Err() == nil {
				if ws.Write(context.Background(), websocket.MessageBinary, payload) != nil {
					return
				}
			}
			return
		}
		for {
			_, rd, err := ws.Reader(context.Background())
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return
			}
		}
	})}
	go hs.Serve(ln)
	return server{"ws://" + ln.Addr().String() + "/", func() {
		cancel()
		hs.Close()
		wg.Wait()
	}}, nil
}

// Open starts a loopback peer for op and connects the impl client to it.
// Every client uses its library's defaults (wsreconnect's heartbeat is
// on), with no read limit.
func Open(ctx context.Context, c Case, impl string) (*Session, error) {
	srv, err := startPeer(c.Peer, c.Op, c.Size)
	if err != nil {
		return nil, err
	}
	s := &Session{close: []func(){srv.close}}
	payload := bytes.Repeat([]byte{0xa5}, c.Size)
	bg := context.Background()
	check := func(p []byte) error {
		if len(p) != c.Size {
			return fmt.Errorf("read %d bytes, want %d", len(p), c.Size)
		}
		return nil
	}
	// Each client gets its own transport, so that nothing outlives Close.
	tr := &http.Transport{}
	s.close = append(s.close, tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	switch impl {
	case "raw":
		ws, _, err := websocket.Dial(ctx, srv.url, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			s.Close()
			return nil, err
		}
		ws.SetReadLimit(-1)
		s.close = append(s.close, func() { _ = ws.CloseNow() })
		if c.Op == "write" {
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
		conn, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			ws, resp, err := websocket.Dial(ctx, srv.url, &websocket.DialOptions{HTTPClient: hc})
			if err == nil {
				ws.SetReadLimit(-1)
			}
			return ws, resp, err
		})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.close = append(s.close, func() { _ = conn.CloseNow() })
		if c.Op == "write" {
			s.Op = func() error { return conn.Write(bg, websocket.MessageBinary, payload) }
		} else {
			s.Op = func() error {
				_, p, err := conn.Read(bg)
				if err != nil {
					return err
				}
				return check(p)
			}
		}
	case "gorilla":
		d := gorilla.Dialer{NetDialContext: tr.DialContext}
		conn, _, err := d.DialContext(ctx, srv.url, nil)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.close = append(s.close, func() { _ = conn.Close() })
		if c.Op == "write" {
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
