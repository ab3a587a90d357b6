//go:build !js

package wsreconnect

import (
	"context"
	"time"

	"github.com/coder/websocket"
)

// protocolPings reports whether ws.Ping sends a ping. (In the browser it
// does nothing: see platform_js.go.)
const protocolPings = true

// closeGrace bounds how long Close waits for the server to answer its close
// frame: coder/websocket's own bounds (5 s to write, 5 s for the answer),
// and also the wait for the pump to finish the message it is reading.
const closeGrace = 10 * time.Second

// handshakeReads reports whether the close handshake reads the peer's
// answer itself (coder/websocket's Close does; see session.closeHandshake).
const handshakeReads = true

// handshakeAnswered reports whether the close handshake under way has had
// its answer: coder/websocket's Close has returned. s.mu is held.
func (s *session) handshakeAnswered() bool {
	select {
	case <-s.shake.done:
		return true
	default:
		return false
	}
}

// platform is a session's platform-specific state: none here.
//
//lint:ignore U1000 the browser's platform has state (platform_js.go)
type platform struct{}

func (s *session) initPlatform() {}

// readContext is the context the pump reads with: one that never ends, as
// coder/websocket closes a connection whose read context ends (and arms a
// timer per read for one that can).
func (s *session) readContext() context.Context { return context.Background() }

// stopReading makes the pump's read return; the connection is closed.
func (s *session) stopReading() {}

// peerClose returns the error that ended reading: coder/websocket reports
// the peer's close frame itself.
func (s *session) peerClose(err error) error { return err }

// closeNow closes ws without a handshake.
func closeNow(ws *websocket.Conn) { _ = ws.CloseNow() }

// closeConn closes ws with a close handshake; the pump reads the answer.
func closeConn(ws *websocket.Conn, code websocket.StatusCode, reason string) error {
	return ws.Close(code, reason)
}
