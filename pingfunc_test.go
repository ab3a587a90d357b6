//go:build !js

package wsreconnect

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

const appPing, appPong = `{"op":"ping"}`, `{"op":"pong"}`

// appPinger is a server step that answers {"op":"ping"} with {"op":"pong"}
// (answer false: stays silent) and answers no protocol ping.
func appPinger(answer bool) wstest.Step {
	return wstest.Step{NoPong: true, Serve: func(ctx context.Context, ws *websocket.Conn) {
		for {
			_, p, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if string(p) == appPing && answer {
				if ws.Write(ctx, websocket.MessageText, []byte(appPong)) != nil {
					return
				}
			}
		}
	}}
}

func writeAppPing(ctx context.Context, ws *websocket.Conn) error {
	return ws.Write(ctx, websocket.MessageText, []byte(appPing))
}

// With WithPingFunc the heartbeat writes the application's ping instead of
// a protocol ping, an interval after the last message; the server's answer
// keeps the connection, and is delivered to Read.
func TestPingFuncKeepsConnectionAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(appPinger(true))
		defer srv.Close()
		rec := &recorder{}
		start := time.Now()
		var calls []time.Duration
		c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(hbInterval, hbTimeout),
			WithPingFunc(func(ctx context.Context, ws *websocket.Conn) error {
				calls = append(calls, time.Since(start))
				return writeAppPing(ctx, ws)
			}))
		for i := range 3 {
			if got := readString(t, c); got != appPong {
				t.Fatalf("message %d: %q, want the pong", i, got)
			}
		}
		if len(calls) != 3 || calls[0] != hbInterval || calls[1] != 2*hbInterval || calls[2] != 3*hbInterval {
			t.Fatalf("ping function called at %v, want every %v", calls, hbInterval)
		}
		if n := srv.Pings.Load(); n != 0 {
			t.Fatalf("%d protocol pings, want none", n)
		}
		if ds := rec.all(); len(ds) != 0 || srv.Accepted.Load() != 1 {
			t.Fatalf("disconnects %v, %d connections", ds, srv.Accepted.Load())
		}
	})
}

// Silence after the application's ping, or an error from the ping
// function, is a dead peer: 1006, ErrHeartbeatTimeout, found at interval +
// timeout (at once for the error).
func TestPingFuncDeadPeer(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(context.Context, *websocket.Conn) error
		want time.Duration
	}{
		{"silence", writeAppPing, hbInterval + hbTimeout},
		{"error", func(context.Context, *websocket.Conn) error { return errors.New("cannot encode") }, hbInterval},
		{"blocked until its ctx ends", func(ctx context.Context, _ *websocket.Conn) error {
			<-ctx.Done()
			return ctx.Err()
		}, hbInterval + hbTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(appPinger(false), wstest.Echo())
				defer srv.Close()
				found := make(chan Disconnect, 1)
				start := time.Now()
				var at time.Duration
				c := mustDial(t, srv.PipeDial(), WithHeartbeat(hbInterval, hbTimeout), WithPingFunc(tc.fn),
					WithOnDisconnect(func(d Disconnect) {
						if at == 0 {
							at = time.Since(start)
							found <- d
						}
					}))
				d := <-found
				if d.Code != websocket.StatusAbnormalClosure || !errors.Is(d.Err, ErrHeartbeatTimeout) || d.Decision != Retry {
					t.Fatalf("disconnect %v, want 1006 with ErrHeartbeatTimeout, retried", d)
				}
				if at != tc.want {
					t.Fatalf("found after %v, want %v", at, tc.want)
				}
				c.CloseNow()
			})
		})
	}
}

// A slow application is not a dead peer with an application-level ping
// either: while messages wait for Read, the answer could not be read.
func TestPingFuncWaitsForSlowApplication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Send(3*readAhead, func(ctx context.Context, ws *websocket.Conn) {
			<-ctx.Done() // reads nothing more: no answer to anything
		}))
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(hbInterval, hbTimeout), WithPingFunc(writeAppPing))
		time.Sleep(10 * (hbInterval + hbTimeout)) // the application is busy
		if ds := rec.all(); len(ds) != 0 {
			t.Fatalf("disconnects while the application was slow: %v", ds)
		}
		c.CloseNow()
	})
}
