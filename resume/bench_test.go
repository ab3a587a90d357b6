//go:build !js

package resume

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

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
