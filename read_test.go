//go:build !js

package wsreconnect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// Messages of every size arrive whole and are the caller's to keep: the
// pump's buffer is never shared between two messages.
func TestReadMessagesOfManySizes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Large ones in a row (the buffer sized after the last), of the
		// same size exactly (it fills its buffer), larger, smaller, and small
		// ones between; every byte differs from its neighbours, so that
		// data read over other data shows.
		sizes := []int{0, 1, 511, 512, 513, 1024, 4096, 16 << 10, 16<<10 + 1, 100 << 10, 100 << 10, 250 << 10, 70 << 10, 20 << 10, 3, 70 << 10, 10}
		msg := func(i, n int) []byte {
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(i*31 + j*7 + j>>8)
			}
			return p
		}
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
				t.Errorf("message %d: %d bytes, not the %d sent", i, len(got[i]), n)
			}
		}
	})
}

// Every message received before a connection dropped is readable at once,
// in order, while the Conn reconnects: here against a server that then
// answers 503 with Retry-After: 120. (They used to wait for the next
// connection, minutes away, and were lost if the application gave up.)
// The drop is found by a Write while the application is not reading, so
// that the pump is parked with messages still unread on the socket.
func TestReceivedMessagesReadableWhileReconnecting(t *testing.T) {
	noLeaks(t)
	const n = readAhead + 4
	sent := make(chan struct{})
	srv, dial := netListen(t, wstest.Send(n, func(context.Context, *websocket.Conn) { close(sent) }), wstest.Reject(503, "120"))
	rec := newNetWatcher()
	c := mustDial(t, dial, rec.option(), WithHeartbeat(0, 0))
	<-sent // and the server drops the connection
	// The application writes without reading: a Write finds the drop.
	for i := 0; ; i++ {
		if c.Write(t.Context(), websocket.MessageText, []byte("hello")) != nil {
			break
		}
		if i == 100 {
			t.Fatal("100 Writes to a dropped connection succeeded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	netWaitUntil(t, 10*time.Second, "the 503 of the redial", func() bool { return srv.Attempts.Load() == 2 })
	d := rec.next(t, 10*time.Second) // the drop
	if d.d.Code != websocket.StatusAbnormalClosure {
		t.Fatalf("first disconnect %v, want the drop (1006)", d.d)
	}
	d = rec.next(t, 10*time.Second) // the 503
	if d.d.HTTPStatus != 503 || d.d.Delay < 120*time.Second {
		t.Fatalf("second disconnect %v, want the 503 and a wait of 120 s", d.d)
	}
	for i := range n {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, p, err := c.Read(ctx)
		cancel()
		if err != nil || string(p) != strconv.Itoa(i) {
			t.Fatalf("Read %d while reconnecting: %q, %v; want %q at once", i, p, err, strconv.Itoa(i))
		}
	}
	if st := c.State(); st != StateConnecting {
		t.Fatalf("state %v, want connecting (waiting out the Retry-After)", st)
	}
}

// A message cut off by the connection's end is never delivered, wherever
// the cut falls: here the peer announces 8 KiB and dies after the header,
// or after 512, 1024 or 2048 bytes, where the pump's reads begin (its
// buffer starts at 512 bytes and doubles). coder/websocket v1.8.15 reports
// an EOF there as the end of the message (see coderinternal.go); Read
// used to return "" or the first bytes as a whole message.
func TestReadNeverReturnsMessageCutOffByDrop(t *testing.T) {
	for _, cut := range []int{0, 1, 512, 1024, 2048, 3000} {
		t.Run(strconv.Itoa(cut), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cutOff := wstest.Step{Raw: func(ctx context.Context, conn net.Conn) {
					conn.Write(serverFrameHeader(true, byte(websocket.MessageBinary), 8<<10))
					if cut > 0 {
						conn.Write(bytes.Repeat([]byte{'x'}, cut))
					}
				}}
				srv := wstest.NewServer(cutOff, wstest.Send(1, nil))
				defer srv.Close()
				rec := &recorder{}
				c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(0, 0))
				if got := readString(t, c); got != "0" {
					t.Fatalf("read %d bytes %.20q; want the next connection's message, \"0\"", len(got), got)
				}
				if ds := rec.all(); len(ds) != 1 || ds[0].Code != websocket.StatusAbnormalClosure || !errors.Is(ds[0].Err, io.ErrUnexpectedEOF) {
					t.Fatalf("disconnects %v, want one 1006 for the cut message", ds)
				}
			})
		})
	}
}

// Reconnect while a large message trickles in does not cut it: the close
// handshake takes over reading only once the pump has finished the
// message (before, coder/websocket's Close read from under the pump, which
// then delivered the first part as a whole message). The message arrives
// whole, or not at all.
func TestReconnectDuringMessageNeverCutsIt(t *testing.T) {
	for _, total := range []time.Duration{200 * time.Millisecond, 3 * time.Second} {
		t.Run(total.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const size, pieces = 64 << 10, 32
				started := make(chan struct{})
				trickle := wstest.Step{Raw: func(ctx context.Context, conn net.Conn) {
					conn.Write(serverFrameHeader(true, byte(websocket.MessageBinary), size))
					for i := range pieces {
						if _, err := conn.Write(bytes.Repeat([]byte{byte('a' + i%26)}, size/pieces)); err != nil {
							return
						}
						if i == 0 {
							close(started)
						}
						time.Sleep(total / pieces)
					}
					br := bufio.NewReader(conn)
					for { // answer the close frame
						if _, op, p, err := readClientFrame(br); err != nil || op == 0x8 && writeServerFrame(conn, 0x8, p) != nil || op == 0x8 {
							return
						}
					}
				}}
				srv := wstest.NewServer(trickle, wstest.Send(1, nil))
				defer srv.Close()
				c := mustDial(t, noReadLimit(srv.PipeDial()), WithHeartbeat(0, 0))
				<-started
				c.Reconnect()
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				for {
					_, p, err := c.Read(ctx)
					if err != nil {
						t.Fatalf("Read: %v", err)
					}
					if string(p) == "0" {
						return // the next connection's
					}
					if len(p) != size || p[size-1] != byte('a'+(pieces-1)%26) {
						t.Fatalf("read a message of %d bytes, not the whole %d sent", len(p), size)
					}
				}
			})
		})
	}
}
