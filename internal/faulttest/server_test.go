package faulttest

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// server is a coder/websocket server on 127.0.0.1 that echoes every client
// message and, while streaming is on, writes its own self-checking stream.
// It records in the world what each connection read and wrote, so that the
// end of a scenario can account for every message.
type server struct {
	w    *world
	addr string // host:port
	url  string // ws://host:port/

	ln     net.Listener
	hs     *http.Server
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	conns     map[*sconn]struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	attempts, accepted, pings atomic.Int64

	// Behaviour; set before start or through the atomics.
	streaming   atomic.Bool
	streamEvery time.Duration
	streamSize  func(*rand.Rand) int
	big         atomic.Int64 // a stream message of this many bytes is due
	// reject, if set, may answer handshake attempt n (1, 2, …) with a status.
	reject func(n int64) (status int, h http.Header)
	// drop, if set, returns after how long to end each connection and how:
	// code 0 drops the TCP connection without a close frame.
	drop     func(r *rand.Rand) (after time.Duration, code websocket.StatusCode, reason string)
	dropping atomic.Bool
}

type sconn struct {
	id        int32
	ws        *websocket.Conn
	lastSentS uint64 // highest stream seq written with nil; guarded by world.mu
}

func newServer(w *world) *server {
	return &server{w: w, streamEvery: 5 * time.Millisecond, streamSize: sizeMix, conns: map[*sconn]struct{}{}}
}

// start listens on 127.0.0.1 and registers the server's shutdown.
func (s *server) start(t testing.TB) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.addr, s.url = ln, ln.Addr().String(), "ws://"+ln.Addr().String()+"/"
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hs = &http.Server{Handler: s}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.hs.Serve(ln)
	}()
	t.Cleanup(s.close)
	return s
}

// close ends every connection and waits for every goroutine of the server.
func (s *server) close() {
	s.closeOnce.Do(func() {
		s.cancel()
		_ = s.hs.Close()
		s.mu.Lock()
		for sc := range s.conns {
			_ = sc.ws.CloseNow()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.attempts.Add(1)
	if s.reject != nil {
		if status, h := s.reject(n); status != 0 {
			for k, v := range h {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			return
		}
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool {
			s.pings.Add(1)
			s.w.bump()
			return true
		},
	})
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 22)
	sc := &sconn{id: s.w.newServerConn(), ws: ws}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	s.conns[sc] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.accepted.Add(1)

	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
	}()
	done := make(chan struct{})
	var streamer sync.WaitGroup
	streamer.Add(1)
	go func() {
		defer streamer.Done()
		s.stream(sc, done)
	}()
	s.echo(sc)
	close(done)
	_ = ws.CloseNow()
	streamer.Wait()
}

// echo reads client messages, checks them and writes each back unchanged.
func (s *server) echo(sc *sconn) {
	var last uint64
	for {
		typ, p, err := sc.ws.Read(s.ctx)
		if err != nil {
			return
		}
		kind, seq, err := decode(p)
		if err != nil || kind != kindClient {
			s.w.violation("server conn %d read a bad message (%d bytes): kind %q, %v", sc.id, len(p), kind, err)
			continue
		}
		if seq <= last {
			s.w.violation("server conn %d read message %d after %d", sc.id, seq, last)
		}
		last = seq
		s.w.mu.Lock()
		sBefore := sc.lastSentS
		s.w.mu.Unlock()
		s.w.serverRead(sc.id, seq, sBefore)
		err = sc.ws.Write(s.ctx, typ, p)
		s.w.serverEchoed(seq, err == nil)
		if err != nil {
			return
		}
	}
}

// stream writes the server's own messages while streaming is on (and any
// big message asked for), and ends the connection when drop says so.
func (s *server) stream(sc *sconn, done <-chan struct{}) {
	r := rand.New(rand.NewPCG(rand.Uint64(), uint64(sc.id)))
	tick := time.NewTicker(s.streamEvery)
	defer tick.Stop()
	var dropC <-chan time.Time
	var dropCode websocket.StatusCode
	var dropReason string
	if s.drop != nil {
		after, code, reason := s.drop(r)
		dropT := time.NewTimer(after)
		defer dropT.Stop()
		dropC, dropCode, dropReason = dropT.C, code, reason
	}
	for {
		select {
		case <-done:
			return
		case <-s.ctx.Done():
			return
		case <-dropC:
			if !s.dropping.Load() {
				dropC = nil
				continue
			}
			if dropCode == 0 {
				_ = sc.ws.CloseNow()
			} else {
				_ = sc.ws.Close(dropCode, dropReason)
			}
			return
		case <-tick.C:
		}
		n := int(s.big.Swap(0))
		if n == 0 {
			if !s.streaming.Load() {
				continue
			}
			n = s.streamSize(r)
		}
		seq := s.w.newServerSeq(sc.id)
		err := sc.ws.Write(s.ctx, websocket.MessageBinary, encode(kindServer, seq, n))
		s.w.mu.Lock()
		s.w.serverSentLocked(seq, err == nil)
		if err == nil {
			sc.lastSentS = seq
		}
		s.w.mu.Unlock()
		if err != nil {
			return
		}
	}
}
