//go:build !js

package resume

import (
	"context"
	byteorder "encoding/binary"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

// wireTrace decodes the WebSocket frames a pipeNet carries, each way, per
// connection: what a server implementer would see on the wire.
type wireTrace struct {
	mu     sync.Mutex
	buf    map[string][]byte   // undecoded bytes, by connection and direction
	frames map[string][]string // decoded frames, Go-quoted, by the same key
}

func traceKey(conn int, fromClient bool) string {
	if fromClient {
		return fmt.Sprintf("%d C→S", conn)
	}
	return fmt.Sprintf("%d S→C", conn)
}

func (w *wireTrace) feed(conn int, fromClient bool, p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf == nil {
		w.buf, w.frames = map[string][]byte{}, map[string][]string{}
	}
	k := traceKey(conn, fromClient)
	b := append(w.buf[k], p...)
	for {
		f, n := decodeWSFrame(b)
		if n == 0 {
			break
		}
		b = b[n:]
		if f != "" {
			w.frames[k] = append(w.frames[k], f)
		}
	}
	w.buf[k] = b
}

func (w *wireTrace) get(conn int, fromClient bool) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.frames[traceKey(conn, fromClient)])
}

// decodeWSFrame decodes one WebSocket frame (RFC 6455 §5.2) at the start
// of b: data frames as their quoted payload, a close frame as "close"
// and its code; pings and pongs as "". n is 0 until the frame is whole.
func decodeWSFrame(b []byte) (s string, n int) {
	if len(b) < 2 {
		return "", 0
	}
	opcode, masked, l := b[0]&0x0f, b[1]&0x80 != 0, int(b[1]&0x7f)
	h := 2
	switch l {
	case 126:
		if len(b) < 4 {
			return "", 0
		}
		l, h = int(byteorder.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return "", 0
		}
		l, h = int(byteorder.BigEndian.Uint64(b[2:])), 10
	}
	var key []byte
	if masked {
		if len(b) < h+4 {
			return "", 0
		}
		key, h = b[h:h+4], h+4
	}
	if len(b) < h+l {
		return "", 0
	}
	p := slices.Clone(b[h : h+l])
	for i := range p {
		if key != nil {
			p[i] ^= key[i%4]
		}
	}
	switch opcode {
	case 1, 2:
		return strconv.Quote(string(p)), h + l
	case 8:
		if len(p) >= 2 {
			return fmt.Sprintf("close %d %q", byteorder.BigEndian.Uint16(p), p[2:]), h + l
		}
		return "close", h + l
	}
	return "", h + l
}

// exampleSession is the session id PROTOCOL.md's example shows.
const exampleSession = "sGk2vR0w9m3T4y7bqXa1Lw"

// The worked example of PROTOCOL.md is this exchange between the Go client
// and server, byte for byte: the test runs it, decodes the frames on the
// wire, and checks them against the document's listing, each way.
func TestProtocolExample(t *testing.T) {
	want := protocolListing(t)
	synctest.Test(t, func(t *testing.T) {
		srv := newTestServer(t, func(ctx context.Context, s *Session) {
			for {
				_, p, err := s.Read(ctx)
				if err != nil {
					return
				}
				if s.Write(ctx, websocket.MessageText, append([]byte("re: "), p...)) != nil {
					return
				}
			}
		})
		defer srv.Close()
		n := newPipeNet(srv)
		defer n.close()
		trace := &wireTrace{}
		n.tap = trace.feed
		c, err := Dial(context.Background(), n.dial(), fastConn())
		if err != nil {
			t.Fatal(err)
		}
		ctx := timeout(t, time.Minute)
		c.Write(ctx, websocket.MessageText, []byte("hello"))
		read(t, ctx, c)
		time.Sleep(time.Second) // both acknowledge

		n.last().cutAfter(0, -1) // the next bytes to the server are lost with the connection
		c.Write(ctx, websocket.MessageText, []byte("second"))
		read(t, ctx, c) // "re: second", after the client resumed and resent "second"
		time.Sleep(time.Second)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()

		got := map[string][]string{}
		for conn := 1; conn <= 2; conn++ {
			for _, fromClient := range []bool{true, false} {
				var frames []string
				for _, f := range trace.get(conn, fromClient) {
					frames = append(frames, strings.ReplaceAll(f, c.Stats().Session, exampleSession))
				}
				got[traceKey(conn, fromClient)] = frames
			}
		}
		if os.Getenv("RESUME_PRINT_EXAMPLE") != "" {
			for conn := 1; conn <= 2; conn++ {
				for _, fromClient := range []bool{true, false} {
					k := traceKey(conn, fromClient)
					t.Logf("%s: %q", k, got[k])
				}
			}
		}
		for k, frames := range want {
			if !slices.Equal(got[k], frames) {
				t.Errorf("connection %s:\n got %q\nwant %q (PROTOCOL.md)", k, got[k], frames)
			}
		}
	})
}

// protocolListing reads the worked example's frames from PROTOCOL.md: the
// lines of its listing that read "<conn> C→S <quoted frame>" or "S→C".
func protocolListing(t *testing.T) map[string][]string {
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^ *(\d) (C→S|S→C) +("(?:[^"\\]|\\.)*"|close \d+ "[^"]*")`)
	want := map[string][]string{}
	for _, m := range line.FindAllStringSubmatch(string(doc), -1) {
		k := m[1] + " " + m[2]
		want[k] = append(want[k], m[3])
	}
	if len(want) != 4 {
		t.Fatalf("PROTOCOL.md's example: found %d connection-directions, want 4", len(want))
	}
	return want
}
