package otelwsreconnect

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"go.opentelemetry.io/otel/attribute"
)

// The attributes this package sets (the package documentation lists their
// values). OpenTelemetry has no WebSocket conventions yet
// (open-telemetry/semantic-conventions#2841 proposes a websocket.*
// namespace): what any WebSocket client could report is under websocket.,
// what only a reconnecting client has under websocket.client.; the HTTP
// status keeps its semantic-conventions name.
const (
	keyCodeClass  = attribute.Key("websocket.close.code_class")
	keyDecision   = attribute.Key("websocket.client.decision")
	keyOutcome    = attribute.Key("websocket.client.dial.outcome")
	keyStatusCode = attribute.Key("http.response.status_code")
	keyState      = attribute.Key("websocket.client.connection.state")
	keyDropReason = attribute.Key("websocket.client.send_queue.drop_reason")
)

// ownKeys are the keys WithAttributes may not use: a caller's value would
// be overwritten, or would split a series this package means as one.
var ownKeys = map[attribute.Key]bool{
	keyCodeClass: true, keyDecision: true, keyOutcome: true,
	keyStatusCode: true, keyState: true, keyDropReason: true,
}

// CloseCodeClass returns the class of a close code, the value of the
// websocket.close.code_class attribute: a handful of values a dashboard can
// group by, where the raw code would be one series per code a server
// invents (3000-4999 alone are 2,000).
//
//	normal       1000
//	going_away   1001 going away, 1012 service restart
//	no_status    1005: a close frame without a code
//	abnormal     1006: no close frame (a dropped connection, a heartbeat timeout)
//	protocol     1002, 1003, 1007, 1009, 1010: one side rejected what it received
//	policy       1008
//	error        1011 internal error, 1014 bad gateway
//	overload     1013 try again later
//	application  3000-4999
//	other        any other code
//
// Under wsreconnect.DefaultPolicy all the codes of a class but other get
// the same decision, so that a class and a decision read together.
func CloseCodeClass(code websocket.StatusCode) string {
	switch code {
	case websocket.StatusNormalClosure:
		return "normal"
	case websocket.StatusGoingAway, websocket.StatusServiceRestart:
		return "going_away"
	case websocket.StatusNoStatusRcvd:
		return "no_status"
	case websocket.StatusAbnormalClosure:
		return "abnormal"
	case websocket.StatusProtocolError, websocket.StatusUnsupportedData,
		websocket.StatusInvalidFramePayloadData, websocket.StatusMessageTooBig,
		websocket.StatusMandatoryExtension:
		return "protocol"
	case websocket.StatusPolicyViolation:
		return "policy"
	case websocket.StatusInternalError, websocket.StatusBadGateway:
		return "error"
	case websocket.StatusTryAgainLater:
		return "overload"
	}
	if code >= 3000 && code <= 4999 {
		return "application"
	}
	return "other"
}

// decision is the value of websocket.client.decision: stop, retry or
// retry_overload, as the Decision's JSON form says it.
func decision(d wsreconnect.Decision) string {
	b, _ := d.MarshalText() // never fails
	return string(b)
}

// dialOutcome is the value of websocket.client.dial.outcome for a dial
// attempt that returned.
func dialOutcome(i wsreconnect.DialDoneInfo) string {
	switch {
	case i.Err == nil:
		return "success"
	case i.HTTPStatus != 0:
		return "refused"
	case isTimeout(i.Err):
		return "timeout"
	}
	return "error"
}

// isTimeout reports a dial that ran out of time: its ctx (the dial
// timeout), a deadline of the DialFunc's own, or a network timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
