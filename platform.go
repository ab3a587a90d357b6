//go:build !js

package wsreconnect

import (
	"context"

	"github.com/coder/websocket"
)

// protocolPings reports whether ws.Ping sends a ping. (In the browser it
// does nothing: see platform_js.go.)
const protocolPings = true

// readContext is the context the pump reads with: one that never ends, as
// coder/websocket closes a connection whose read context ends (and arms a
// timer per read for one that can).
func readContext(*session) context.Context { return context.Background() }

// closeNow closes ws without a handshake.
func closeNow(ws *websocket.Conn) { _ = ws.CloseNow() }

// closeConn closes ws with a close handshake; the pump reads the answer.
func closeConn(ws *websocket.Conn, code websocket.StatusCode, reason string) error {
	return ws.Close(code, reason)
}
