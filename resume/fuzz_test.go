//go:build !js

package resume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

// fuzzFrames splits a fuzz input into at most 16 WebSocket messages, on
// newlines; one that starts with a 0 byte goes as binary.
func fuzzFrames(in []byte) [][]byte {
	parts := bytes.Split(in, []byte("\n"))
	if len(parts) > 16 {
		parts = parts[:16]
	}
	return parts
}

func sendFuzzed(ws *websocket.Conn, p []byte) error {
	typ := websocket.MessageText
	if len(p) > 0 && p[0] == 0 {
		typ, p = websocket.MessageBinary, p[1:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return ws.Write(ctx, typ, p)
}

// allowedCodes are the close codes PROTOCOL.md lets an end use.
var allowedCodes = map[websocket.StatusCode]bool{-1: true, 1000: true, 1001: true, 1002: true, 1008: true, 1009: true, 1011: true, 1013: true}

var fuzzSeeds = []string{
	"M 1 1 a\nM 2 1 b\nA 1 ",
	"M 1 1 a\nM 3 1 c",
	"A 9 ",
	"M 1 9 short\nA 1 ",
	"V 3 abc\n\x00M 1 1 b\nE ",
	"H 1 - 0 1 1 1 1 \nW 1 s 0 0 1 1 1 \nS 1 ",
	"M 1 1 a\nM 2 1 b\nM 3 1 c\nM 4 1 d\nM 5 1 e",
	"\n\n\n",
	"M 18446744073709551615 1 a\nA 9223372036854775807 ",
}

// FuzzHostileClient: whatever frames a client sends after a valid hello,
// the server neither panics nor leaks, and it closes (if it does) with a
// code the protocol names.
func FuzzHostileClient(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		synctest.Test(t, func(t *testing.T) {
			srv := newTestServer(t, func(ctx context.Context, s *Session) {
				for i := 0; ; i++ {
					if _, _, err := s.Read(ctx); err != nil {
						return
					}
					if i%2 == 0 {
						s.Write(ctx, websocket.MessageText, []byte("x"))
					}
				}
			}, WithOutbox(4, 64))
			n := newPipeNet(srv)
			ws := rawDial(t, n)
			code := make(chan websocket.StatusCode, 1)
			go func() { code <- closeCode(ws) }()
			send(ws, "H 1 - 0 1 3 100 100 ")
			for _, p := range fuzzFrames(in) {
				if sendFuzzed(ws, p) != nil {
					break
				}
			}
			synctest.Wait()
			ws.CloseNow()
			if c := <-code; !allowedCodes[c] {
				t.Errorf("closed with %d", c)
			}
			srv.Close()
			n.close()
		})
	})
}

// FuzzHostileServer: whatever frames a server sends after a valid
// welcome, the client neither panics nor leaks, and if it ends, it ends
// with a *ProtocolError or the Conn's stop, with a code the protocol
// names.
func FuzzHostileServer(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		synctest.Test(t, func(t *testing.T) {
			n := newPipeNet(rawServer(func(k int, ws *websocket.Conn) {
				hello, err := recv(ws)
				if err != nil || k > 1 {
					return
				}
				send(ws, "W 1 fuzz 0 0 3 100 100 ")
				send(ws, fmt.Sprintf("S %d ", hello.conn))
				for _, p := range fuzzFrames(in) {
					if sendFuzzed(ws, p) != nil {
						break
					}
				}
				closeCode(ws)
			}))
			defer n.close()
			c, err := Dial(context.Background(), n.dial(), fastConn(), WithOutbox(4, 64), WithMaxMessage(100))
			if err != nil {
				t.Fatal(err)
			}
			ctx := timeout(t, time.Second)
			go func() {
				for {
					if _, _, err := c.Read(ctx); err != nil {
						return
					}
				}
			}()
			c.Write(ctx, websocket.MessageText, []byte("hello"))
			synctest.Wait()
			if err := c.Err(); err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) && !allowedCodes[websocket.CloseStatus(err)] {
					t.Errorf("ended with %v", err)
				}
			}
			c.CloseNow()
		})
	})
}
