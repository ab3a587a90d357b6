//go:build !js

package wsreconnect

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// A Write whose ctx has already ended returns that ctx's error, never nil,
// and costs no connection. (coder/websocket may take its lock before it
// notices the ctx, then arm context.AfterFunc on it, which closes the
// connection: 50 such Writes used to cost a connection in 4 runs of 5, and
// a third of them returned nil.)
func TestWriteWithEndedContextCostsNothing(t *testing.T) {
	for round := range 5 {
		synctest.Test(t, func(t *testing.T) {
			srv := wstest.NewServer(wstest.Echo())
			defer srv.Close()
			rec := &recorder{}
			c := mustDial(t, srv.PipeDial(), rec.option())
			cancelled, cancel := context.WithCancel(t.Context())
			cancel()
			for i := range 50 {
				err := c.Write(cancelled, websocket.MessageText, []byte("never"))
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("round %d, Write %d with a cancelled ctx: %v, want context.Canceled", round, i, err)
				}
			}
			if err := c.Write(t.Context(), websocket.MessageText, []byte("after")); err != nil {
				t.Fatal(err)
			}
			if got := readString(t, c); got != "after" {
				t.Fatalf("round %d: echo %q, want only the Write with a live ctx", round, got)
			}
			if n, ds := srv.Accepted.Load(), rec.all(); n != 1 || len(ds) != 0 {
				t.Fatalf("round %d: %d connections, disconnects %v; want the first connection intact", round, n, ds)
			}
		})
	}
}
