package wsreconnect

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"testing/synctest"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// Messages of every size arrive whole and are the caller's to keep: the
// pump's buffer is never shared between two messages.
func TestReadMessagesOfManySizes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sizes := []int{0, 1, 511, 512, 513, 4096, 16 << 10, 16<<10 + 1, 100 << 10, 3, 70 << 10, 10}
		msg := func(i, n int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, n) }
		srv := wstest.NewServer(wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			for i, n := range sizes {
				if ws.Write(ctx, websocket.MessageBinary, msg(i, n)) != nil {
					return
				}
			}
			<-ws.CloseRead(ctx).Done()
		}})
		defer srv.Close()
		pipe := srv.PipeDial()
		dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			ws, resp, err := pipe(ctx)
			if ws != nil {
				ws.SetReadLimit(1 << 20)
			}
			return ws, resp, err
		}
		c := mustDial(t, dial)
		var got [][]byte
		for range sizes {
			_, p, err := c.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p)
		}
		for i, n := range sizes {
			if !bytes.Equal(got[i], msg(i, n)) {
				t.Errorf("message %d: %d bytes, want %d bytes of %q", i, len(got[i]), n, 'a'+i)
			}
		}
	})
}
