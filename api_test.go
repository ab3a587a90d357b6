//go:build !js

package wsreconnect

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// Subprotocol is the live connection's negotiated subprotocol, "" while
// reconnecting, and follows each new connection's negotiation.
func TestSubprotocolFollowsLiveConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v2 := wstest.Echo()
		v2.Subprotocols = []string{"feed.v2"}
		v1 := wstest.Echo()
		v1.Subprotocols = []string{"feed.v1"}
		srv := wstest.NewServer(v2, wstest.Reject(503, "5"), v1)
		defer srv.Close()
		dial := srv.PipeDialOptions(websocket.DialOptions{Subprotocols: []string{"feed.v2", "feed.v1"}})
		c := mustDial(t, dial)
		if got := c.Subprotocol(); got != "feed.v2" {
			t.Fatalf("Subprotocol %q, want feed.v2", got)
		}
		c.Reconnect() // then a 503 for 5 s
		time.Sleep(time.Second)
		if got, st := c.Subprotocol(), c.State(); got != "" || st != StateConnecting {
			t.Fatalf("while reconnecting: Subprotocol %q, state %v; want \"\"", got, st)
		}
		time.Sleep(10 * time.Second)
		if got := c.Subprotocol(); got != "feed.v1" {
			t.Fatalf("after the reconnect: Subprotocol %q, want feed.v1", got)
		}
		c.CloseNow()
		if got := c.Subprotocol(); got != "" {
			t.Fatalf("after CloseNow: Subprotocol %q", got)
		}
	})
}

// Done is closed once the Conn has ended and its goroutines are gone; Err
// is nil until then, then says why, as Read does.
func TestDoneAndErr(t *testing.T) {
	t.Run("policy stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wstest.NewServer(wstest.CloseWith(websocket.StatusPolicyViolation, "no"))
			defer srv.Close()
			c := mustDial(t, srv.PipeDial())
			<-c.Done()
			var se *StopError
			if err := c.Err(); !errors.As(err, &se) || websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Fatalf("Err %v, want the *StopError of the 1008", err)
			}
			if _, _, err := c.Read(t.Context()); !errors.As(err, &se) {
				t.Fatalf("Read %v, want the same *StopError", err)
			}
		})
	})
	t.Run("Close", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wstest.NewServer(wstest.Echo())
			defer srv.Close()
			c := mustDial(t, srv.PipeDial())
			select {
			case <-c.Done():
				t.Fatal("Done while connected")
			default:
			}
			if err := c.Err(); err != nil {
				t.Fatalf("Err while connected: %v", err)
			}
			c.Close(websocket.StatusNormalClosure, "")
			select {
			case <-c.Done():
			default:
				t.Fatal("Done not closed after Close returned")
			}
			if err := c.Err(); !errors.Is(err, ErrClosed) {
				t.Fatalf("Err after Close: %v", err)
			}
		})
	})
}
