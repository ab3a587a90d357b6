package wsreconnect

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Disconnect describes one lost connection or one failed attempt, and what
// the Conn decided to do about it.
type Disconnect struct {
	// Code is the close code: the peer's close frame if one arrived; the
	// code coder/websocket sent itself when it found the peer breaking the
	// protocol (1002) or a message over the read limit (1009); 1006
	// (websocket.StatusAbnormalClosure) when an established connection
	// ended without a close frame (EOF, reset, broken pipe, heartbeat
	// timeout); 0 for a failed dial or a failed OnConnect that carried no
	// close code.
	Code websocket.StatusCode
	// Reason is the reason in the close frame, if any.
	Reason string
	// HTTPStatus is the status of a failed handshake, else 0.
	HTTPStatus int
	// RetryAfter is the server's Retry-After hint on a failed handshake,
	// clamped to [0, WithMaxRetryAfter]; 0 when absent or malformed.
	RetryAfter time.Duration
	// Err is what ended it. For a close frame, websocket.CloseStatus(Err)
	// reports the code.
	Err error
	// Uptime is how long the connection was up; 0 for a failed attempt.
	Uptime time.Duration
	// Attempt counts the consecutive failures since the last stable
	// connection (see WithStableUptime), this one included: 1, 2, 3, …;
	// the end of a stable connection is 1. The n-th consecutive failure
	// waits in the schedule's n-th window.
	Attempt int
	// Decision is what the policy decided.
	Decision Decision
	// Reconnect reports whether another attempt follows.
	Reconnect bool
	// Delay is the wait before that attempt.
	Delay time.Duration
}

func (d Disconnect) String() string {
	if d == (Disconnect{}) {
		return "no disconnect yet"
	}
	s := d.what() + ": "
	if d.Reconnect {
		return s + fmt.Sprintf("%v in %v", d.Decision, d.Delay.Round(time.Millisecond))
	}
	return s + "stop"
}

// seconds is d in seconds, to the microsecond, for JSON: no float noise
// (5.120275, not 5.1202752910000005).
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1e6) / 1e6 }

// MarshalJSON renders a Disconnect for expvar and metrics systems: field
// names in snake_case, durations as seconds (the unit in the name), the
// decision as its snake_case name, and Err as its message (see Stats).
func (d Disconnect) MarshalJSON() ([]byte, error) {
	var errText string
	if d.Err != nil {
		errText = d.Err.Error()
	}
	return json.Marshal(struct {
		Code              int     `json:"code"`
		Reason            string  `json:"reason"`
		HTTPStatus        int     `json:"http_status"`
		RetryAfterSeconds float64 `json:"retry_after_seconds"`
		Error             string  `json:"error"`
		UptimeSeconds     float64 `json:"uptime_seconds"`
		Attempt           int     `json:"attempt"`
		Decision          string  `json:"decision"`
		Reconnect         bool    `json:"reconnect"`
		DelaySeconds      float64 `json:"delay_seconds"`
	}{int(d.Code), d.Reason, d.HTTPStatus, seconds(d.RetryAfter), errText, seconds(d.Uptime),
		d.Attempt, d.Decision.key(), d.Reconnect, seconds(d.Delay)})
}

// what says what ended the connection or attempt, and which attempt it was.
// It does not repeat what Err says of a close frame the peer sent, or of a
// refused handshake.
func (d Disconnect) what() string {
	var b strings.Builder
	var ce websocket.CloseError
	var he *HandshakeError
	switch {
	case errors.As(d.Err, &he):
		b.WriteString(he.Error())
	case d.HTTPStatus != 0:
		fmt.Fprintf(&b, "handshake status %d", d.HTTPStatus)
		if d.Err != nil {
			fmt.Fprintf(&b, ": %v", d.Err)
		}
	case d.Code != 0:
		fmt.Fprintf(&b, "code %d", int(d.Code))
		if d.Reason != "" {
			fmt.Fprintf(&b, " %q", d.Reason)
		}
		if d.Err != nil && !(errors.As(d.Err, &ce) && ce.Code == d.Code && strings.Contains(d.Err.Error(), "received close frame")) {
			fmt.Fprintf(&b, ": %v", d.Err)
		}
	default:
		b.WriteString("dial failed")
		if d.Err != nil {
			fmt.Fprintf(&b, ": %v", d.Err)
		}
	}
	fmt.Fprintf(&b, " (attempt %d)", d.Attempt)
	return b.String()
}
