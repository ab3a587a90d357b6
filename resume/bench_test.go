//go:build !js

package resume

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// BenchmarkReliable1KiB measures reliable 1 KiB messages from a client to
// a server's application, through the resume layer, beside the same
// messages written with a plain wsreconnect.Conn, over the same transport
// (loopback TCP, 127.0.0.1) in the same run:
//
//	go test -run '^$' -bench Reliable1KiB -count 5 ./resume/
//
// Each iteration is one message, counted once the server's application
// has read it. Besides the throughput, each reports the bytes on the wire
// per message, both ways (up: client to server, including WebSocket
// framing and masking; down: server to client, the resume layer's
// acknowledgements).
func BenchmarkReliable1KiB(b *testing.B) {
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = byte(i)
	}

	b.Run("plain", func(b *testing.B) {
		var got atomic.Int64
		done := make(chan struct{})
		url, up, down, stop := benchServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer ws.CloseNow()
			ws.SetReadLimit(1 << 20)
			var buf []byte
			for {
				// As the resume server reads: one copy of each message.
				if _, _, err := readMessage(ws, &buf); err != nil {
					return
				}
				if got.Add(1) == int64(b.N) {
					close(done)
				}
			}
		}))
		defer stop()
		c, err := wsreconnect.Dial(context.Background(), benchDial(url))
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		run(b, up, down, done, func() error {
			return c.Write(context.Background(), websocket.MessageBinary, payload)
		})
	})

	b.Run("resume", func(b *testing.B) {
		var got atomic.Int64
		done := make(chan struct{})
		srv, err := NewServer(func(ctx context.Context, s *Session) {
			for {
				if _, _, err := s.Read(ctx); err != nil {
					return
				}
				if got.Add(1) == int64(b.N) {
					close(done)
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		url, up, down, stop := benchServer(b, srv)
		defer stop()
		defer srv.Close()
		c, err := Dial(context.Background(), benchDial(url))
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		run(b, up, down, done, func() error {
			return c.Write(context.Background(), websocket.MessageBinary, payload)
		})
	})
}

// BenchmarkReliable1KiBSideBySide runs the two ends of
// BenchmarkReliable1KiB in one benchmark, alternating rounds of 2,000
// messages between the plain Conn and the resume layer, so that both see
// the same machine: on shared cores the load of the moment swings either
// benchmark run alone by tens of percent. Each round ends when the
// server's application has read the round's last message. It reports both
// throughputs and their ratio (resume/plain), and the bytes on the wire
// per message client to server (up) and server to client (down):
//
//	go test -run '^$' -bench SideBySide -benchtime 200000x -count 5 ./resume/
func BenchmarkReliable1KiBSideBySide(b *testing.B) {
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = byte(i)
	}
	type side struct {
		write      func() error
		read       *atomic.Int64 // messages the server's application has read
		progress   chan struct{} // (cap 1) read moved
		up, down   *atomic.Int64
		took       time.Duration
		up0, down0 int64
	}
	newSide := func() *side {
		return &side{read: new(atomic.Int64), progress: make(chan struct{}, 1)}
	}
	gotOne := func(s *side) {
		s.read.Add(1)
		select {
		case s.progress <- struct{}{}:
		default:
		}
	}

	plain := newSide()
	url, up, down, stop := benchServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		var buf []byte
		for {
			if _, _, err := readMessage(ws, &buf); err != nil {
				return
			}
			gotOne(plain)
		}
	}))
	defer stop()
	conn, err := wsreconnect.Dial(context.Background(), benchDial(url))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseNow()
	plain.up, plain.down = up, down
	plain.write = func() error { return conn.Write(context.Background(), websocket.MessageBinary, payload) }

	res := newSide()
	srv, err := NewServer(func(ctx context.Context, s *Session) {
		for {
			if _, _, err := s.Read(ctx); err != nil {
				return
			}
			gotOne(res)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	url, up, down, stop2 := benchServer(b, srv)
	defer stop2()
	defer srv.Close()
	c, err := Dial(context.Background(), benchDial(url))
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	res.up, res.down = up, down
	res.write = func() error { return c.Write(context.Background(), websocket.MessageBinary, payload) }

	round := func(s *side, n int) {
		want := s.read.Load() + int64(n)
		start := time.Now()
		for range n {
			if err := s.write(); err != nil {
				b.Fatal(err)
			}
		}
		for s.read.Load() < want {
			<-s.progress
		}
		s.took += time.Since(start)
	}
	b.ReportAllocs()
	for _, s := range []*side{plain, res} {
		s.up0, s.down0 = s.up.Load(), s.down.Load()
	}
	b.ResetTimer()
	for done, k := 0, 0; done < b.N; k++ {
		n := min(2000, b.N-done)
		if k%2 == 0 { // alternate which goes first
			round(plain, n)
			round(res, n)
		} else {
			round(res, n)
			round(plain, n)
		}
		done += n
	}
	b.StopTimer()
	mbps := func(s *side) float64 { return float64(b.N) * 1024 / s.took.Seconds() / 1e6 }
	b.ReportMetric(mbps(plain), "plain-MB/s")
	b.ReportMetric(mbps(res), "resume-MB/s")
	b.ReportMetric(mbps(res)/mbps(plain), "ratio")
	for name, s := range map[string]*side{"plain": plain, "resume": res} {
		b.ReportMetric(float64(s.up.Load()-s.up0)/float64(b.N), name+"-up-B/msg")
		b.ReportMetric(float64(s.down.Load()-s.down0)/float64(b.N), name+"-down-B/msg")
	}
}

// run times b.N writes, until the server's application has read them all.
func run(b *testing.B, up, down *atomic.Int64, done <-chan struct{}, write func() error) {
	b.SetBytes(1024)
	b.ReportAllocs()
	up0, down0 := up.Load(), down.Load()
	b.ResetTimer()
	for range b.N {
		if err := write(); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(up.Load()-up0)/float64(b.N), "up-B/msg")
	b.ReportMetric(float64(down.Load()-down0)/float64(b.N), "down-B/msg")
}

// benchServer serves h on 127.0.0.1, counting the bytes each way.
func benchServer(b *testing.B, h http.Handler) (url string, up, down *atomic.Int64, stop func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	hs := httptest.NewUnstartedServer(h)
	hs.Listener = cl
	hs.Start()
	return "ws://" + l.Addr().String(), &cl.read, &cl.written, func() {
		hs.CloseClientConnections()
		hs.Close()
	}
}

func benchDial(url string) wsreconnect.DialFunc {
	client := &http.Client{Transport: &http.Transport{}}
	return func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	}
}

type countingListener struct {
	net.Listener
	read, written atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.l.written.Add(int64(n))
	return n, err
}
