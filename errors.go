package wsreconnect

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Read and Write, including calls blocked in
	// them, once Close or CloseNow has been called, and by Err afterwards.
	ErrClosed = errors.New("wsreconnect: closed")

	// ErrHeartbeatTimeout is wrapped by Disconnect.Err when the heartbeat
	// found the peer dead and closed the connection (reported as code 1006).
	ErrHeartbeatTimeout = errors.New("wsreconnect: heartbeat timeout: no pong or other frame in time")

	// ErrReconnectRequested is wrapped by Disconnect.Err when a connection
	// ended because the application called Conn.Reconnect.
	ErrReconnectRequested = errors.New("wsreconnect: reconnect requested")

	// ErrSendQueueFull is returned by Write when the send queue (see
	// WithSendQueue) is full.
	ErrSendQueueFull = errors.New("wsreconnect: send queue full")

	// ErrRetriesExhausted is wrapped by the *StopError of a Conn that
	// stopped because its schedule gave up (a backoff.WithMaxRetries of
	// WithBackOff, say: backoff.Stop), not because the policy said Stop.
	ErrRetriesExhausted = errors.New("wsreconnect: the backoff schedule gave up (retries exhausted)")
)

// UnsentError is returned by Close and CloseNow when messages in the send
// queue (see WithSendQueue) were never sent.
type UnsentError struct {
	Count int // how many queued messages were dropped
}

func (e *UnsentError) Error() string {
	return fmt.Sprintf("wsreconnect: %d queued messages were never sent", e.Count)
}

// StopError is returned by Read and Write after the policy decided to stop,
// and by Dial when the first connection could not be made for a reason no
// retry cures. It unwraps to Disconnect.Err, so websocket.CloseStatus
// reports the close code that ended the Conn.
type StopError struct {
	Disconnect Disconnect
	connected  bool // a connection was ever made
	exhausted  bool // the schedule gave up, not the policy
}

func (e *StopError) Error() string {
	prefix := "wsreconnect: stopped reconnecting after "
	if !e.connected {
		prefix = "wsreconnect: giving up, never connected: "
	}
	if e.exhausted {
		if e.connected {
			prefix = "wsreconnect: stopped reconnecting: "
		}
		return prefix + ErrRetriesExhausted.Error()[len("wsreconnect: "):] + "; the last failure: " + e.Disconnect.what()
	}
	return prefix + e.Disconnect.what()
}

func (e *StopError) Unwrap() error { return e.Disconnect.Err }

// Is reports whether target is ErrRetriesExhausted and the schedule, not
// the policy, stopped the Conn.
func (e *StopError) Is(target error) bool { return target == ErrRetriesExhausted && e.exhausted }
