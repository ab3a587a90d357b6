//go:build !js

package wsreconnect

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// coderinternal.go reads unexported fields of coder/websocket: if a new
// release moved them, the guard against cut messages and the peer's pings
// as evidence are off. This test says so, loudly.
func TestCoderLayout(t *testing.T) {
	if !coderLayout.ok {
		t.Fatalf("coder/websocket's layout is not the one coderinternal.go knows (%v): mend it, or drop its measures if the release fixed what they work around (see docs/upstream.md)", coderLayout.err)
	}
}

// The hooks the caller dialled with still run, and decide, when the Conn
// also counts the peer's pings and pongs: OnPingReceived's false still
// withholds the pong.
func TestCallersControlFrameHooksStillRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pings, pongs atomic.Int64
		pinger := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			ws.CloseRead(ctx)
			for range 3 {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				if err := ws.Ping(pctx); err == nil {
					t.Error("the client answered a ping its OnPingReceived declined")
				}
				cancel()
			}
			<-ctx.Done()
		}}
		srv := wstest.NewServer(pinger)
		defer srv.Close()
		dial := srv.PipeDialOptions(websocket.DialOptions{
			OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return false },
			OnPongReceived: func(context.Context, []byte) { pongs.Add(1) },
		})
		mustDial(t, dial, WithHeartbeat(time.Second, time.Second))
		time.Sleep(10 * time.Second)
		if p := pings.Load(); p != 3 {
			t.Errorf("the caller's OnPingReceived ran %d times, want 3", p)
		}
		if p := pongs.Load(); p == 0 {
			t.Error("the caller's OnPongReceived never ran (the heartbeat's pings were answered)")
		}
	})
}
