package wsreconnect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/coder/websocket"
)

// Decision is a policy's verdict on a Disconnect.
type Decision int

const (
	// Stop ends the Conn: Read and Write return an error saying why.
	Stop Decision = iota
	// Retry reconnects on the standard schedule: exponential with jitter.
	Retry
	// RetryOverload reconnects on the overload schedule: at least 1 s,
	// the floor doubling on each consecutive overload, and never sooner than a
	// Retry-After hint says.
	RetryOverload
)

// MarshalText makes a Decision read as its snake_case name in JSON and
// expvar, also as a map key (as in Stats.Disconnects): stop, retry,
// retry_overload.
func (d Decision) MarshalText() ([]byte, error) { return []byte(d.key()), nil }

func (d Decision) key() string {
	if d == RetryOverload {
		return "retry_overload"
	}
	return d.String()
}

func (d Decision) String() string {
	switch d {
	case Stop:
		return "stop"
	case Retry:
		return "retry"
	case RetryOverload:
		return "retry (overload)"
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// A Policy decides what follows a Disconnect. The Disconnect it receives has
// every field set but Decision, Reconnect and Delay. A value other than
// Stop, Retry or RetryOverload counts as Stop. A Policy is not consulted
// for a reconnect the application asked for (Conn.Reconnect).
type Policy func(Disconnect) Decision

// DefaultPolicy is the default classification (RFC 6455 §7.4, the IANA
// registry, and the practice of the best existing clients):
//
//	established connection ended without a close frame (1006)    Retry
//	failed dial: network error, timeout (Code 0)                  Retry
//	heartbeat timeout (1006, ErrHeartbeatTimeout)                 Retry
//	1001 going away, 1011, 1012 service restart, 1014             Retry
//	1005 no status (an empty close frame says nothing of intent)  Retry
//	1013 try again later                                          RetryOverload
//	handshake 429, 503                                            RetryOverload
//	handshake 408, 500, 502, 504, other 5xx                       Retry
//	1000 normal closure (the server ended it on purpose)          Stop
//	1002, 1003, 1007, 1008, 1009, 1010, 1015                      Stop
//	a protocol violation coder/websocket answers with 1002        Stop
//	handshake 4xx other than 408 and 429, 1xx-3xx other than 101  Stop
//	TLS certificate errors, the server's TLS alert refusing ours  Stop
//	wss:// to a plain server, bad URL                             Stop
//	a DialFunc that dials with an ended ctx or returns nothing    Stop
//	3000-4999 (application codes)                                 Retry
//	other codes                                                   Retry
//	the caller's Close or CloseNow (ErrClosed)                    Stop
//
// A custom policy can handle its own cases and fall back to DefaultPolicy.
func DefaultPolicy(d Disconnect) Decision {
	if errors.Is(d.Err, ErrClosed) {
		return Stop
	}
	if d.HTTPStatus != 0 {
		return statusDecision(d.HTTPStatus)
	}
	if d.Code == 0 {
		if permanentDialError(d.Err) {
			return Stop
		}
		return Retry
	}
	switch d.Code {
	case websocket.StatusNormalClosure,
		websocket.StatusProtocolError,
		websocket.StatusUnsupportedData,
		websocket.StatusInvalidFramePayloadData,
		websocket.StatusPolicyViolation,
		websocket.StatusMessageTooBig,
		websocket.StatusMandatoryExtension,
		websocket.StatusTLSHandshake:
		return Stop
	case websocket.StatusTryAgainLater:
		return RetryOverload
	}
	// 1001, 1005, 1006, 1011, 1012, 1014, application codes 3000-4999 and
	// anything else: the server may well accept us again.
	return Retry
}

func statusDecision(status int) Decision {
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return RetryOverload
	case status == http.StatusRequestTimeout, status >= 500:
		return Retry
	}
	// Any other 4xx, and a 1xx, 2xx or 3xx where 101 was due: the request
	// itself is wrong (auth, path, a plain HTTP server); repeating it will
	// not help.
	return Stop
}

// configError is a dial failure that says the configuration is wrong, not
// the network: repeating the attempt cannot help.
type configError struct {
	msg string
	err error
}

func (e *configError) Error() string { return e.msg }
func (e *configError) Unwrap() error { return e.err }

// permanentDialError reports dial errors that no retry can cure: TLS
// certificates that do not verify, URLs that cannot be dialled, and the
// misconfigurations that describeDialError names.
func permanentDialError(err error) bool {
	if err == nil {
		return false
	}
	var (
		cfgErr *configError
		verr   *tls.CertificateVerificationError
		uaerr  x509.UnknownAuthorityError
		herr   x509.HostnameError
		cierr  x509.CertificateInvalidError
		uerr   *url.Error
	)
	switch {
	case errors.As(err, &cfgErr):
		return true
	case errors.As(err, &verr), errors.As(err, &uaerr), errors.As(err, &herr), errors.As(err, &cierr):
		return true
	case certificateRejected(err):
		return true
	case errors.As(err, &uerr) && uerr.Op == "parse":
		return true
	}
	// coder/websocket reports a bad scheme with a plain string.
	return strings.Contains(err.Error(), "unexpected url scheme")
}

// certificateAlerts are the TLS alerts a server sends when it rejects the
// client's certificate, or its lack of one, or finds no TLS parameters it
// shares with the client (RFC 8446 §6.2, RFC 5246 §7.2.2):
// handshake_failure (TLS 1.2's answer to a missing client certificate),
// bad_certificate, unsupported_certificate, certificate_revoked,
// certificate_expired, certificate_unknown, unknown_ca, access_denied,
// protocol_version, insufficient_security, certificate_required. Each
// says the configuration is wrong, on one side or the other.
var certificateAlerts = map[uint64]bool{40: true, 42: true, 43: true, 44: true, 45: true, 46: true, 48: true, 49: true, 70: true, 71: true, 116: true}

// certificateRejected reports whether err is the server's TLS alert
// rejecting the client's certificate. crypto/tls returns an alert received
// as a *net.OpError with Op "remote error" and an unexported uint8 type
// (tls.AlertError, exported, only over QUIC): its value is read through
// reflection.
func certificateRejected(err error) bool {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return certificateAlerts[uint64(ae)]
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return false
	}
	v := reflect.ValueOf(oe.Err)
	return v.Kind() == reflect.Uint8 && certificateAlerts[v.Uint()]
}

// errNoConnection is what a DialFunc that returned neither a connection
// nor an error is reported as.
var errNoConnection = &configError{msg: "wsreconnect: DialFunc returned neither a connection nor an error"}

// describeDialError names what a failed dial attempt means. attempt is the
// ctx the DialFunc was given; closing reports whether Close was called.
func describeDialError(err error, attempt context.Context, closing bool, dialTimeout string) error {
	var rhErr tls.RecordHeaderError
	switch {
	case closing:
		return err
	case errors.As(err, &rhErr), errors.Is(err, http.ErrSchemeMismatch):
		return &configError{msg: "wsreconnect: the server does not speak TLS (a wss:// URL for a ws:// server?): " + err.Error(), err: err}
	case isHandshakeViolation(err):
		return &configError{msg: "wsreconnect: the server's answer to the handshake is not a valid WebSocket upgrade (a proxy in the way?): " + err.Error(), err: err}
	case !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(attempt.Err(), context.DeadlineExceeded):
		return fmt.Errorf("wsreconnect: dial timed out after %s: %w", dialTimeout, err)
	case attempt.Err() == nil && errors.Is(err, context.Canceled):
		// The attempt's ctx is live: the DialFunc dialled with another
		// one, which has ended and will fail every attempt.
		return &configError{err: err, msg: "wsreconnect: the DialFunc returned " + err.Error() +
			" although the ctx it was given is live: does it dial with an outer ctx that has ended? Use the ctx passed to the DialFunc"}
	case attempt.Err() == nil:
		return fmt.Errorf("wsreconnect: the DialFunc's own deadline expired (the ctx it was given is live): %w", err)
	}
	return err
}

// handshakeViolations are how coder/websocket (v1.8.15, dial.go) words a
// 101 answer that breaks the protocol (its own typo included).
var handshakeViolations = []string{
	"WebSocket protocol violation:",
	"WebSocket protcol violation:",
	"unsupported permessage-deflate parameter",
}

func isHandshakeViolation(err error) bool {
	msg := err.Error()
	for _, v := range handshakeViolations {
		if strings.Contains(msg, v) {
			return true
		}
	}
	return false
}

// connEnd describes the end of an established connection from the error
// that ended it.
func connEnd(err error) Disconnect {
	d := Disconnect{Err: err, Code: websocket.StatusAbnormalClosure}
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		d.Code, d.Reason = ce.Code, ce.Reason
	case errors.Is(err, websocket.ErrMessageTooBig):
		// coder/websocket has already sent 1009 to the peer, with the
		// reason it gives last; make the code visible to
		// websocket.CloseStatus, as for a code received.
		d.Code, d.Reason = websocket.StatusMessageTooBig, sentReason(err, websocket.ErrMessageTooBig.Error()+": ")
		d.Err = fmt.Errorf("%w (sent %w); to read larger messages, raise the limit (32 KiB by default) with ws.SetReadLimit in the DialFunc or OnConnect",
			err, websocket.CloseError{Code: d.Code, Reason: d.Reason})
	case isProtocolViolation(err):
		d.Code, d.Reason = websocket.StatusProtocolError, sentReason(err, "")
		d.Err = fmt.Errorf("wsreconnect: the peer broke the protocol: %w (sent %w)", err, websocket.CloseError{Code: d.Code, Reason: d.Reason})
	}
	return d
}

// sentReason recovers the reason coder/websocket put in the close frame it
// sent: the innermost error's text, which ends err's message (after
// prefix, for an oversize message; else from the recognised phrase on).
func sentReason(err error, prefix string) string {
	msg := err.Error()
	if prefix != "" {
		if i := strings.LastIndex(msg, prefix); i >= 0 {
			return msg[i+len(prefix):]
		}
		return strings.TrimSuffix(prefix, ": ")
	}
	for _, v := range protocolViolations {
		if i := strings.Index(msg, v); i >= 0 {
			return msg[i:]
		}
	}
	return "protocol error"
}

// protocolViolations are how coder/websocket (v1.8.15, read.go) words the
// errors for which it sends 1002 to the peer before it fails the read.
var protocolViolations = []string{
	"received header with unexpected rsv bits",
	"received unknown opcode",
	"received control frame payload with invalid length",
	"received fragmented control frame",
	"received invalid close payload",
	"received continuation frame without text or binary frame",
	"received new data message without finishing the previous message",
}

// isProtocolViolation reports whether err is one for which coder/websocket
// sent 1002: the peer broke the protocol. The errors carry no type, so they
// are recognised by their words; an error not recognised is reported as a
// dropped connection (1006), which is retried.
func isProtocolViolation(err error) bool {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return false
	}
	msg := err.Error()
	for _, v := range protocolViolations {
		if strings.Contains(msg, v) {
			return true
		}
	}
	return false
}
