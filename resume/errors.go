package resume

import (
	"errors"
	"fmt"

	"github.com/coder/websocket"
)

var (
	// ErrOutboxFull is returned by Write and WriteVolatile when the outbox
	// is full and WithOutboxFullError was given.
	ErrOutboxFull = errors.New("resume: outbox full")

	// ErrTooLarge is returned by Write and WriteVolatile for a message
	// larger than the peer accepts (its WithMaxMessage) or than the
	// outbox can ever hold.
	ErrTooLarge = errors.New("resume: message too large")

	// ErrNotConnected is returned by WriteVolatile when no connection is
	// up: volatile messages are sent only while connected.
	ErrNotConnected = errors.New("resume: not connected")

	// ErrNotRecovered is wrapped by *NotRecoveredError, and returned by
	// Flush when the session it waited on was not recovered.
	ErrNotRecovered = errors.New("resume: session not recovered")

	// ErrUnconfirmed is wrapped by *UnconfirmedError.
	ErrUnconfirmed = errors.New("resume: messages not confirmed")

	// ErrSessionClosed is returned by a Session's methods once it has been
	// closed: by Close, by the end of the serve function, or by the client.
	ErrSessionClosed = errors.New("resume: session closed")

	// ErrSessionExpired is returned by a Session's methods once its client
	// stayed away longer than the resume window.
	ErrSessionExpired = errors.New("resume: session expired")

	// ErrSessionMoved is returned by a Session's methods, and by a Store,
	// once a newer connection took the session over, on another server
	// sharing the Store.
	ErrSessionMoved = errors.New("resume: session taken over by another connection")

	// ErrSessionNotFound is returned by a Store for a session it does not
	// hold (never created, deleted, or expired).
	ErrSessionNotFound = errors.New("resume: session not found")

	// ErrStoreFull is returned by a Store that has no room for a new
	// session or message.
	ErrStoreFull = errors.New("resume: store full")

	// ErrServerClosed is returned by a Session's methods, and by ServeConn,
	// once the Server has been closed.
	ErrServerClosed = errors.New("resume: server closed")
)

// NotRecoveredError is what Client.Read returns, once, when the server
// could not resume the session (it forgot it: the resume window passed, or
// it restarted without a shared Store) and a new session replaced it. It
// is not the end of the Client: the next Read returns the new session's
// first message.
//
// It sits in the stream of messages where the old session ends: everything
// Read returned before it came from the old session, everything after it
// from the new one. Messages the server wrote to the old session after the
// last one received may have been lost; Unconfirmed are the reliable
// messages this client wrote that the server never acknowledged: it may or
// may not have received them. The application resynchronizes (fetches the
// state it missed, decides what to write again).
type NotRecoveredError struct {
	OldSession, NewSession string
	// Unconfirmed are this client's unacknowledged reliable messages of
	// the old session (and of any session that came and went before the
	// client read from it), in the order they were written.
	Unconfirmed []Message
}

func (e *NotRecoveredError) Error() string {
	return fmt.Sprintf("resume: session %s not recovered (new session %s): messages from the server may have been missed, and %d written were not confirmed",
		e.OldSession, e.NewSession, len(e.Unconfirmed))
}

// Is makes errors.Is(err, ErrNotRecovered) true.
func (e *NotRecoveredError) Is(target error) bool { return target == ErrNotRecovered }

// UnconfirmedError is returned by Client.Close and CloseNow when reliable
// messages written were never acknowledged by the server: it may or may
// not have received them. Flush before closing to wait for them.
type UnconfirmedError struct {
	Messages []Message
}

func (e *UnconfirmedError) Error() string {
	return fmt.Sprintf("resume: %d messages written were not confirmed by the server", len(e.Messages))
}

// Is makes errors.Is(err, ErrUnconfirmed) true.
func (e *UnconfirmedError) Is(target error) bool { return target == ErrUnconfirmed }

// ProtocolError reports a peer that broke the protocol (PROTOCOL.md,
// "Errors"): a malformed frame, a gap in the numbers, an acknowledgement of
// a message never sent, a window exceeded. The connection was closed with
// Code and Reason, and the session ended. It unwraps to a
// websocket.CloseError, so websocket.CloseStatus reports Code.
type ProtocolError struct {
	Code   websocket.StatusCode
	Reason string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("resume: protocol error (closed with %d): %s", int(e.Code), e.Reason)
}

// Unwrap returns the close frame sent to the peer.
func (e *ProtocolError) Unwrap() error {
	return websocket.CloseError{Code: e.Code, Reason: closeReason(e.Reason)}
}

func protocolError(err error) *ProtocolError {
	var fe *frameError
	if errors.As(err, &fe) {
		return &ProtocolError{Code: fe.code, Reason: fe.reason}
	}
	return &ProtocolError{Code: websocket.StatusProtocolError, Reason: err.Error()}
}

// closeReason is the reason of a close frame the protocol sends: "resume: "
// and the reason, cut to the 123 bytes a close frame carries.
func closeReason(reason string) string {
	if reason == "" {
		return ""
	}
	r := "resume: " + reason
	if len(r) > 123 {
		r = r[:123]
	}
	return r
}
