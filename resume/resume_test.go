//go:build !js

package resume

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

// A client and server exchange messages, the connection is cut, and the
// conversation goes on where it was.
func TestSmokeEchoAcrossACut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, newTestServer(t, echo))
		defer w.close()
		ctx := timeout(t, 10*time.Second)
		for i, msg := range []string{"one", "two"} {
			if err := w.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			if _, got := read(t, ctx, w.c); got != msg {
				t.Fatalf("message %d: got %q, want %q", i, got, msg)
			}
		}
		w.net.last().cut()
		if err := w.c.Write(ctx, websocket.MessageBinary, []byte("three")); err != nil {
			t.Fatal(err)
		}
		typ, got := read(t, ctx, w.c)
		if got != "three" || typ != websocket.MessageBinary {
			t.Fatalf("got %v %q", typ, got)
		}
		st := w.c.Stats()
		if st.Sessions != 1 || st.Resumes < 1 {
			t.Fatalf("stats %+v: want one session, resumed", st)
		}
	})
}
