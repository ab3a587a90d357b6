//go:build !js

package wsjson_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/internal/leakcheck"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
	"github.com/wsreconnect/wsreconnect/wsjson"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

type tick struct {
	Symbol string  `json:"symbol"`
	Price  float64 `json:"price"`
}

// dropAfterEcho echoes one message, then drops the connection.
func dropAfterEcho() wstest.Step {
	return wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
		typ, p, err := ws.Read(ctx)
		if err == nil {
			ws.Write(ctx, typ, p)
		}
	}}
}

// A JSON value written is read back as the same value, as a text message,
// on one connection and on the next after a drop.
func TestRoundTripAcrossReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(dropAfterEcho(), wstest.Echo())
		defer srv.Close()
		c, err := wsreconnect.Dial(t.Context(), srv.PipeDial())
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		for i, want := range []tick{{"BTC", 97000.5}, {"ETH", 3100.25}} {
			if err := wsjson.Write(t.Context(), c, want); err != nil {
				t.Fatalf("Write %d: %v", i, err)
			}
			var got tick
			if err := wsjson.Read(t.Context(), c, &got); err != nil || got != want {
				t.Fatalf("Read %d: %+v, %v; want %+v", i, got, err, want)
			}
			synctest.Wait() // the first connection drops after its echo
		}
		if n := c.Stats().Connects; n != 2 {
			t.Fatalf("%d connections, want 2 (the round trips straddle a reconnect)", n)
		}
	})
}

// Write sends one text message holding the JSON (with the newline
// json.Encoder and coder/websocket's wsjson add).
func TestWriteSendsText(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		c, err := wsreconnect.Dial(t.Context(), srv.PipeDial())
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := wsjson.Write(t.Context(), c, tick{"BTC", 1}); err != nil {
			t.Fatal(err)
		}
		typ, p, err := c.Read(t.Context())
		if err != nil || typ != websocket.MessageText || string(p) != "{\"symbol\":\"BTC\",\"price\":1}\n" {
			t.Fatalf("echo %v %q %v", typ, p, err)
		}
	})
}

// A binary message, or text that is not JSON for v, is an error of that
// Read only: the connection stays, and the next Read gets the next value.
func TestBadMessageCostsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		c, err := wsreconnect.Dial(t.Context(), srv.PipeDial())
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		send := func(typ websocket.MessageType, p string) {
			t.Helper()
			if err := c.Write(t.Context(), typ, []byte(p)); err != nil {
				t.Fatal(err)
			}
		}
		send(websocket.MessageBinary, `{"symbol":"BTC","price":1}`)
		send(websocket.MessageText, `{"symbol":`)
		send(websocket.MessageText, `{"symbol":42}`)
		send(websocket.MessageText, `{"symbol":"ETH","price":2}`)
		var v tick
		if err := wsjson.Read(t.Context(), c, &v); err == nil {
			t.Fatal("a binary message read as JSON")
		}
		var syntax *json.SyntaxError
		if err := wsjson.Read(t.Context(), c, &v); !errors.As(err, &syntax) {
			t.Fatalf("truncated JSON: %v, want a *json.SyntaxError", err)
		}
		var typeErr *json.UnmarshalTypeError
		if err := wsjson.Read(t.Context(), c, &v); !errors.As(err, &typeErr) {
			t.Fatalf("JSON of the wrong type: %v, want a *json.UnmarshalTypeError", err)
		}
		v = tick{}
		if err := wsjson.Read(t.Context(), c, &v); err != nil || v != (tick{"ETH", 2}) {
			t.Fatalf("next Read: %+v, %v", v, err)
		}
		if st := c.Stats(); st.Connects != 1 || st.LastDisconnect.Attempt != 0 {
			t.Fatalf("stats %+v: the connection was lost", st)
		}
	})
}

// A value JSON cannot hold is an error, and nothing is written; errors of
// the Conn come through wrapped (here ErrClosed, and a ctx's error).
func TestErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		c, err := wsreconnect.Dial(t.Context(), srv.PipeDial())
		if err != nil {
			t.Fatal(err)
		}
		var unsupported *json.UnsupportedTypeError
		if err := wsjson.Write(t.Context(), c, make(chan int)); !errors.As(err, &unsupported) {
			t.Fatalf("Write of a chan: %v", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		var v tick
		if err := wsjson.Read(ctx, c, &v); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read with nothing written: %v, want DeadlineExceeded (nothing was sent)", err)
		}
		c.CloseNow()
		if err := wsjson.Read(t.Context(), c, &v); !errors.Is(err, wsreconnect.ErrClosed) {
			t.Fatalf("Read after CloseNow: %v", err)
		}
		if err := wsjson.Write(t.Context(), c, v); !errors.Is(err, wsreconnect.ErrClosed) {
			t.Fatalf("Write after CloseNow: %v", err)
		}
	})
}
