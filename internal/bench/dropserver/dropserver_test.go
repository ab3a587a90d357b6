package dropserver

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// client dials with its own transport, whose idle connections (a refused
// handshake's) are closed at the end of the test.
func client(t *testing.T) *websocket.DialOptions {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}
}

// dial connects n clients, each reading until its connection ends, and
// returns the errors their reads end with.
func dial(t *testing.T, ctx context.Context, url string, n int) <-chan error {
	t.Helper()
	ends := make(chan error, n)
	opts := client(t)
	for range n {
		ws, _, err := websocket.Dial(ctx, url, opts)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			_, _, err := ws.Read(ctx)
			ws.CloseNow()
			ends <- err
		}()
	}
	return ends
}

// Admit refuses with its own answer, or accepts and hears when the
// connection is held; a TCP drop then ends every held connection without
// a close frame, and a close frame carries its code.
func TestDrops(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop func(*Server)
		code websocket.StatusCode // -1: no close frame
	}{
		{"tcp", (*Server).DropTCP, -1},
		{"1013", func(s *Server) { s.CloseAll(websocket.StatusTryAgainLater, "busy") }, websocket.StatusTryAgainLater},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var held atomic.Int64
			s, err := Start(func(w http.ResponseWriter, r *http.Request) (func(), bool) {
				if r.URL.Query().Get("refuse") != "" {
					http.Error(w, "no", http.StatusServiceUnavailable)
					return nil, false
				}
				return func() { held.Add(1) }, true
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, resp, err := websocket.Dial(ctx, s.URL()+"?refuse=1", client(t)); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("refused: %v, %v", resp, err)
			}
			const n = 5
			ends := dial(t, ctx, s.URL(), n)
			for held.Load() < n {
				time.Sleep(time.Millisecond)
			}
			tc.drop(s)
			for range n {
				err := <-ends
				if got := websocket.CloseStatus(err); got != tc.code || errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("a client's read ended with %v (code %v), want code %v", err, got, tc.code)
				}
			}
		})
	}
}

// Close ends the connections still held and leaves no goroutine behind.
func TestClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held := make(chan struct{}, 3)
	s, err := Start(func(http.ResponseWriter, *http.Request) (func(), bool) {
		return func() { held <- struct{}{} }, true
	})
	if err != nil {
		t.Fatal(err)
	}
	ends := dial(t, ctx, s.URL(), 3)
	for range 3 {
		<-held
	}
	s.Close()
	for range 3 {
		if err := <-ends; err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a client's read ended with %v", err)
		}
	}
}
