//go:build js

package wsreconnect

// In the browser, coder/websocket (v1.8.15, ws_js.go) runs over the
// browser's WebSocket API, and three of its calls do not do what they do
// elsewhere:
//
//   - Ping returns nil without sending anything: a page cannot send a
//     ping. So the heartbeat is off unless WithPingFunc gives it an
//     application-level ping (protocolPings).
//   - CloseNow is Close(1001, ""), which the browser rejects (it allows
//     only 1000 and 3000-4999): the connection stays open. And Close waits
//     for the browser's close event, about a minute against a server that
//     does not answer. So the Conn calls the browser's close() itself, which
//     does not wait, and stops its pump by ending the read's context (cheap
//     here: the js Read only selects on it).
//   - Read returns net.ErrClosed whatever code the peer closed with
//     (upstream: https://github.com/coder/websocket/pull/505). The code is
//     recorded in the Conn's unexported closeErr before Read returns, so the
//     Conn reads it there (peerClose).
//
// A refused handshake reaches a page as a plain failure to connect (the
// browser shows the status only in its console): there is no HTTP status
// and no Retry-After to classify, so it is retried as a network failure.
//
// Both workarounds read an unexported field of *websocket.Conn by
// reflection: ws.v, the browser's WebSocket object, and closeErr. Both are
// confined to this file, and fall back to coder/websocket's own behaviour
// when the fields are not there (a new release): Close that waits, and every
// close read as 1006. The browser tests (internal/browsertest) pin both.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"syscall/js"
	"time"
	"unsafe"

	"github.com/coder/websocket"
)

const protocolPings = false

// handshakeReads is false: the browser's close() does not read; the pump
// reads on, until the browser's close event.
const handshakeReads = false

// handshakeAnswered reports whether the close handshake under way has had
// its answer: the pump has seen the browser's close event.
func (s *session) handshakeAnswered() bool { return s.pumpEnded.Load() }

// closeGrace bounds how long Close waits for the server to answer its
// close frame (the browser would wait a minute).
const closeGrace = 5 * time.Second

// platform is a session's browser state: the context the pump reads with,
// ended to stop it.
type platform struct {
	readCtx    context.Context
	cancelRead context.CancelFunc
}

func (s *session) initPlatform() {
	s.plat.readCtx, s.plat.cancelRead = context.WithCancel(context.Background())
}

func (s *session) readContext() context.Context { return s.plat.readCtx }

func (s *session) stopReading() { s.plat.cancelRead() }

// peerClose adds the code of the peer's close frame, which the js Read
// drops, to the error that ended reading. A close we started is ours, not
// the peer's: its cause is recorded anyway.
func (s *session) peerClose(err error) error {
	if !errors.Is(err, net.ErrClosed) {
		return err
	}
	closeErr, ok := field[error](s.ws, "closeErr")
	if !ok || closeErr == nil || strings.Contains(closeErr.Error(), "sent close:") {
		return err
	}
	var ce websocket.CloseError
	if !errors.As(closeErr, &ce) || ce.Code == websocket.StatusAbnormalClosure {
		return err
	}
	return fmt.Errorf("%w (the browser reports %w)", err, ce)
}

// closeNow closes ws at once: the browser's close(), which does not wait.
func closeNow(ws *websocket.Conn) {
	if err := browserClose(ws, websocket.StatusNormalClosure, ""); errors.Is(err, errNoBrowserSocket) {
		_ = ws.Close(websocket.StatusNormalClosure, "") // waits for the close event
	}
}

// closeConn starts a close handshake with code and reason; the pump reads
// until the browser's close event. The browser allows only 1000 and
// 3000-4999: another code is refused with an error, and 1000 sent instead.
func closeConn(ws *websocket.Conn, code websocket.StatusCode, reason string) error {
	err := browserClose(ws, code, reason)
	switch {
	case errors.Is(err, errNoBrowserSocket):
		return ws.Close(code, reason)
	case err != nil:
		closeNow(ws)
	}
	return err
}

var errNoBrowserSocket = errors.New("wsreconnect: the browser's WebSocket is out of reach")

// browserClose calls close(code, reason) on the browser's WebSocket under
// ws.
func browserClose(ws *websocket.Conn, code websocket.StatusCode, reason string) (err error) {
	sock, ok := browserSocket(ws)
	if !ok {
		return errNoBrowserSocket
	}
	defer func() {
		if r := recover(); r != nil { // a js.Error: the browser refused
			err = fmt.Errorf("wsreconnect: the browser refused to close with %d: %v", int(code), r)
		}
	}()
	sock.Call("close", int(code), reason)
	return nil
}

// browserSocket returns the browser's WebSocket object under ws: the
// field v (a js.Value) of its field ws (a wsjs.WebSocket).
func browserSocket(ws *websocket.Conn) (js.Value, bool) {
	f := reflect.ValueOf(ws).Elem().FieldByName("ws")
	if !f.IsValid() || f.Kind() != reflect.Struct {
		return js.Value{}, false
	}
	return valueOf[js.Value](f.FieldByName("v"))
}

// field reads the unexported field name of *ws, if it has one of type T.
func field[T any](ws *websocket.Conn, name string) (T, bool) {
	return valueOf[T](reflect.ValueOf(ws).Elem().FieldByName(name))
}

func valueOf[T any](f reflect.Value) (T, bool) {
	var zero T
	if !f.IsValid() || !f.CanAddr() || f.Type() != reflect.TypeFor[T]() {
		return zero, false
	}
	return *(*T)(unsafe.Pointer(f.UnsafeAddr())), true
}

// messageComplete reports true: the browser hands over whole messages
// only.
func messageComplete(*websocket.Conn) bool { return true }

// watchControlFrames does nothing: the browser answers pings itself, and
// shows a page neither pings nor pongs.
func watchControlFrames(*websocket.Conn, func()) {}
