//go:build !js

package wsreconnect

// Two measures reach into coder/websocket's unexported fields (v1.8.15,
// conn.go and read.go), because its API offers no other way. Both are
// confined to this file, and both fall back to coder/websocket's own
// behaviour when the fields are not there (a new release): TestCoderLayout
// fails loudly then, so that they are mended, not lost.
//
//   - messageComplete: coder/websocket reports an EOF that cuts a frame's
//     payload off, exactly where a read begins, as the end of the message
//     (readFramePayload wraps io.ReadFull's io.EOF, and msgReader.Read
//     turns any wrapped io.EOF into a bare one). A peer that dies there
//     would have a cut message delivered as whole. The pump asks, at each
//     io.EOF, whether the message's last frame was read to its end. The
//     one-line upstream fix is in docs/upstream.md.
//   - watchControlFrames: a peer's pings and unsolicited pongs are signs of
//     life (RFC 6455 §5.5.3 allows a heartbeat in one direction), but
//     coder/websocket answers them inside its read loop, and the hooks it
//     offers (DialOptions.OnPingReceived, OnPongReceived) are the caller's.
//     So the Conn wraps the hooks the connection was dialled with: the
//     caller's still run, as before, and each ping or pong also counts as
//     evidence for the heartbeat.

import (
	"context"
	"errors"
	"reflect"
	"unsafe"

	"github.com/coder/websocket"
)

// coderLayout holds where the fields this file reads are, in a
// *websocket.Conn; ok is false when they are not as expected.
var coderLayout = findCoderLayout()

type layout struct {
	ok         bool
	err        error   // why not
	msgReader  uintptr // offset of Conn.msgReader (*msgReader)
	fin        uintptr // offset of msgReader.fin (bool)
	payloadLen uintptr // offset of msgReader.payloadLength (int64)
	onPing     uintptr // offset of Conn.onPingReceived
	onPong     uintptr // offset of Conn.onPongReceived
}

type (
	pingHook = func(context.Context, []byte) bool
	pongHook = func(context.Context, []byte)
)

func findCoderLayout() layout {
	var l layout
	conn := reflect.TypeFor[websocket.Conn]()
	field := func(t reflect.Type, name string, want reflect.Type, kind reflect.Kind) (reflect.StructField, bool) {
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 {
			return f, false
		}
		if want != nil {
			return f, f.Type == want
		}
		return f, f.Type.Kind() == kind
	}
	mr, ok1 := field(conn, "msgReader", nil, reflect.Pointer)
	if !ok1 || mr.Type.Elem().Kind() != reflect.Struct {
		l.err = errors.New("websocket.Conn has no field msgReader of type *msgReader")
		return l
	}
	fin, ok2 := field(mr.Type.Elem(), "fin", reflect.TypeFor[bool](), 0)
	pl, ok3 := field(mr.Type.Elem(), "payloadLength", reflect.TypeFor[int64](), 0)
	ping, ok4 := field(conn, "onPingReceived", reflect.TypeFor[pingHook](), 0)
	pong, ok5 := field(conn, "onPongReceived", reflect.TypeFor[pongHook](), 0)
	switch {
	case !ok2:
		l.err = errors.New("msgReader has no field fin of type bool")
	case !ok3:
		l.err = errors.New("msgReader has no field payloadLength of type int64")
	case !ok4:
		l.err = errors.New("websocket.Conn has no field onPingReceived of type func(context.Context, []byte) bool")
	case !ok5:
		l.err = errors.New("websocket.Conn has no field onPongReceived of type func(context.Context, []byte)")
	default:
		l.ok = true
		l.msgReader, l.fin, l.payloadLen = mr.Offset, fin.Offset, pl.Offset
		l.onPing, l.onPong = ping.Offset, pong.Offset
	}
	return l
}

// messageComplete reports whether the message the pump has just read to
// io.EOF ended where its last frame said: that frame was final and all of
// its payload was read. The pump's goroutine is the only one that moves
// the message reader (the close handshake waits for it; see
// session.closeHandshake).
func messageComplete(ws *websocket.Conn) bool {
	if !coderLayout.ok {
		return true
	}
	mr := *(*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(ws), coderLayout.msgReader))
	if mr == nil {
		return true
	}
	fin := *(*bool)(unsafe.Add(mr, coderLayout.fin))
	left := *(*int64)(unsafe.Add(mr, coderLayout.payloadLen))
	return fin && left == 0
}

// watchControlFrames has evidence called for each ping and pong ws reads,
// around the hooks ws was dialled with. It must be called before anything
// reads ws.
func watchControlFrames(ws *websocket.Conn, evidence func()) {
	if !coderLayout.ok {
		return
	}
	ping := (*pingHook)(unsafe.Add(unsafe.Pointer(ws), coderLayout.onPing))
	pong := (*pongHook)(unsafe.Add(unsafe.Pointer(ws), coderLayout.onPong))
	callerPing, callerPong := *ping, *pong
	*ping = func(ctx context.Context, p []byte) bool {
		evidence()
		if callerPing != nil {
			return callerPing(ctx, p)
		}
		return true
	}
	*pong = func(ctx context.Context, p []byte) {
		evidence()
		if callerPong != nil {
			callerPong(ctx, p)
		}
	}
}
