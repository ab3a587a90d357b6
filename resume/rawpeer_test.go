//go:build !js

package resume

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A raw peer speaks the protocol by hand, frame by frame: to play a broken
// or hostile peer, or to cut a frame short exactly where it wants.

// rawServer returns a handler that accepts each connection and runs
// script on it, with its number (1, 2, …). The connection is closed at
// once when script returns (unless script closed it).
func rawServer(script func(n int, ws *websocket.Conn)) http.Handler {
	var count atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		script(int(count.Add(1)), ws)
	})
}

// rawDial opens a plain WebSocket connection (no wsreconnect, no resume)
// to a pipeNet.
func rawDial(t *testing.T, n *pipeNet) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := n.dial()(ctx)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return ws
}

// send writes a text frame.
func send(ws *websocket.Conn, s string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, []byte(s))
}

// recv reads one frame and decodes it.
func recv(ws *websocket.Conn) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, p, err := ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	f, err := parseFrame(typ, p)
	if err != nil {
		return frame{}, fmt.Errorf("%q: %w", p, err)
	}
	return f, nil
}

// closeCode reads until the connection ends and returns the close code it
// ended with (-1 without a close frame), skipping frames meanwhile.
func closeCode(ws *websocket.Conn) websocket.StatusCode {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// welcome answers a hello the way a server starting a new session does.
func welcome(ws *websocket.Conn, session string) (hello frame, err error) {
	hello, err = recv(ws)
	if err != nil {
		return hello, err
	}
	if hello.kind != kindHello {
		return hello, fmt.Errorf("got %c, want a hello", hello.kind)
	}
	if err := send(ws, "W 1 "+session+" 0 0 1024 1048576 32768 "); err != nil {
		return hello, err
	}
	return hello, send(ws, fmt.Sprintf("S %d ", hello.conn))
}
