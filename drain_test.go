//go:build !js

package wsreconnect

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// The server sends more messages than the client reads ahead, then closes
// with 1008 and drops the TCP connection, while the application is busy.
// The application's next Writes find the broken connection. Nothing that
// had already arrived may be lost: every message, then the 1008, which must
// win over the write error that found the drop (a 1008 read as 1006 would
// reconnect when it should stop).
func TestWriteErrorWhileParkedKeepsArrivedMessagesAndCloseFrame(t *testing.T) {
	noLeaks(t)
	const n = 3 * readAhead
	srv, dial := netListen(t, wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
		for i := range n {
			if ws.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(i))) != nil {
				return
			}
		}
		// The close frame goes out at once; coder/websocket then waits 5 s
		// for the answer (the client is busy) and drops the connection.
		ws.Close(websocket.StatusPolicyViolation, "bye")
	}})
	rec := &recorder{}
	c := mustDial(t, dial, rec.option(), WithHeartbeat(0, 0))

	start := time.Now()
	// Write until the dropped connection makes a Write fail.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := c.Write(ctx, websocket.MessageText, []byte("ping"))
		cancel()
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no Write failed after the server dropped the connection")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("a Write failed after %v", time.Since(start))
	for i := range n {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, p, err := c.Read(ctx)
		cancel()
		if err != nil || string(p) != strconv.Itoa(i) {
			t.Fatalf("message %d: %q, %v", i, p, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	var se *StopError
	if !errors.As(err, &se) || websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("after the messages: %v, want a StopError with 1008", err)
	}
	if a := srv.Attempts.Load(); a != 1 {
		t.Fatalf("%d attempts, want 1", a)
	}
	if ds := rec.all(); len(ds) != 1 || ds[0].Code != websocket.StatusPolicyViolation || ds[0].Reconnect {
		t.Fatalf("disconnects %v", ds)
	}
}
