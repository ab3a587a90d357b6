//go:build !js

package resume

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// fastConn keeps wsreconnect's schedules short: the tests run on a fake
// clock, but each retry still costs a step.
func fastConn(extra ...wsreconnect.Option) Option {
	return WithConnOptions(append([]wsreconnect.Option{
		wsreconnect.WithInitialDelay(10 * time.Millisecond),
		wsreconnect.WithMaxDelay(100 * time.Millisecond),
		wsreconnect.WithStableUptime(time.Second),
		wsreconnect.WithDialTimeout(time.Second),
	}, extra...)...)
}

// newTestServer returns a Server closed when the test ends.
func newTestServer(t *testing.T, serve func(context.Context, *Session), opts ...Option) *Server {
	t.Helper()
	srv, err := NewServer(serve, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// echo is a serve function that writes back every message, reliably.
func echo(ctx context.Context, s *Session) {
	for {
		typ, p, err := s.Read(ctx)
		if err != nil {
			return
		}
		if s.Write(ctx, typ, p) != nil {
			return
		}
	}
}

// world is a client and a server over a pipeNet, torn down in order.
type world struct {
	t   *testing.T
	srv *Server
	net *pipeNet
	c   *Client
}

// newWorld starts srv on a pipeNet and dials it. Call close at the end
// (inside the synctest bubble).
func newWorld(t *testing.T, srv *Server, opts ...Option) *world {
	t.Helper()
	w := &world{t: t, srv: srv, net: newPipeNet(srv)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, w.net.dial(), append([]Option{fastConn()}, opts...)...)
	if err != nil {
		w.net.close()
		srv.Close()
		t.Fatalf("Dial: %v", err)
	}
	w.c = c
	return w
}

func (w *world) close() {
	w.c.CloseNow()
	w.srv.Close()
	w.net.close()
}

// read reads one message or fails the test.
func read(t *testing.T, ctx context.Context, r interface {
	Read(context.Context) (websocket.MessageType, []byte, error)
}) (websocket.MessageType, string) {
	t.Helper()
	typ, p, err := r.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return typ, string(p)
}

// timeout returns a ctx that ends after d, or with the test.
func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
