package wsreconnect

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

var (
	// ErrClosed is returned by Read and Write, including calls blocked in
	// them, once Close or CloseNow has been called.
	ErrClosed = errors.New("wsreconnect: closed")

	// ErrHeartbeatTimeout is wrapped by Disconnect.Err when the heartbeat
	// found the peer dead and closed the connection (reported as code 1006).
	ErrHeartbeatTimeout = errors.New("wsreconnect: heartbeat timeout: no pong or other frame in time")

	// ErrSendQueueFull is returned by Write when the send queue (see
	// WithSendQueue) is full.
	ErrSendQueueFull = errors.New("wsreconnect: send queue full")
)

// UnsentError is returned by Close and CloseNow when messages in the send
// queue (see WithSendQueue) were never sent.
type UnsentError struct {
	Count int // how many queued messages were dropped
}

func (e *UnsentError) Error() string {
	return fmt.Sprintf("wsreconnect: %d queued messages were never sent", e.Count)
}

// Disconnect describes one lost connection or one failed attempt, and what
// the Conn decided to do about it.
type Disconnect struct {
	// Code is the close code: the peer's close frame if one arrived; 1006
	// (websocket.StatusAbnormalClosure) when an established connection
	// ended without one (EOF, reset, broken pipe, heartbeat timeout); 1009
	// when a message exceeded the read limit; 0 for a failed dial or a
	// failed OnConnect that carried no close code.
	Code websocket.StatusCode
	// Reason is the reason in the peer's close frame, if any.
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
	// connection (see WithStableUptime), this one included: 1, 2, 3, …
	Attempt int
	// Decision is what the policy decided.
	Decision Decision
	// Reconnect reports whether another attempt follows.
	Reconnect bool
	// Delay is the wait before that attempt.
	Delay time.Duration
}

func (d Disconnect) String() string {
	s := d.what() + ": "
	if d.Reconnect {
		return s + fmt.Sprintf("%v in %v", d.Decision, d.Delay)
	}
	return s + "stop"
}

// MarshalJSON renders Err as its message (an error value has no JSON form
// of its own), so that a Disconnect or Stats can be published as is, for
// example with expvar.
func (d Disconnect) MarshalJSON() ([]byte, error) {
	type plain Disconnect // without the MarshalJSON method
	var errText string
	if d.Err != nil {
		errText = d.Err.Error()
	}
	return json.Marshal(struct {
		plain
		Err string `json:",omitempty"`
	}{plain(d), errText})
}

// what says what ended the connection or attempt, and which attempt it was.
func (d Disconnect) what() string {
	var b strings.Builder
	switch {
	case d.HTTPStatus != 0:
		fmt.Fprintf(&b, "handshake status %d", d.HTTPStatus)
	case d.Code != 0:
		fmt.Fprintf(&b, "code %d", int(d.Code))
		if d.Reason != "" {
			fmt.Fprintf(&b, " %q", d.Reason)
		}
	default:
		b.WriteString("dial failed")
	}
	if d.Err != nil {
		fmt.Fprintf(&b, ": %v", d.Err)
	}
	fmt.Fprintf(&b, " (attempt %d)", d.Attempt)
	return b.String()
}

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

// MarshalText makes a Decision read as its name in JSON and expvar (also as
// a map key, as in Stats.Disconnects).
func (d Decision) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

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
// Stop, Retry or RetryOverload counts as Stop.
type Policy func(Disconnect) Decision

// DefaultPolicy is the default classification (RFC 6455 §7.4, the IANA
// registry, and the practice of the best existing clients):
//
//	established connection ended without a close frame (1006)    Retry
//	failed dial: network error, timeout (Code 0)                  Retry
//	heartbeat timeout (1006, ErrHeartbeatTimeout)                 Retry
//	1001 going away, 1011, 1012 service restart, 1014             Retry
//	1013 try again later                                          RetryOverload
//	handshake 429, 503                                            RetryOverload
//	handshake 408, 500, 502, 504, other 5xx                       Retry
//	1000 normal, 1005 no status (the server ended on purpose)     Stop
//	1002, 1003, 1007, 1008, 1009, 1010, 1015                      Stop
//	handshake 4xx other than 408 and 429, 1xx-3xx other than 101  Stop
//	TLS certificate errors, malformed URL                         Stop
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
	case websocket.StatusNormalClosure, websocket.StatusNoStatusRcvd:
		return Stop
	case websocket.StatusProtocolError,
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
	// 1001, 1006, 1011, 1012, 1014, application codes 3000-4999 and
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

// permanentDialError reports dial errors that no retry can cure: TLS
// certificates that do not verify, and URLs that cannot be dialled.
func permanentDialError(err error) bool {
	if err == nil {
		return false
	}
	var (
		verr  *tls.CertificateVerificationError
		uaerr x509.UnknownAuthorityError
		herr  x509.HostnameError
		cierr x509.CertificateInvalidError
		uerr  *url.Error
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &uaerr), errors.As(err, &herr), errors.As(err, &cierr):
		return true
	case errors.As(err, &uerr) && uerr.Op == "parse":
		return true
	}
	// coder/websocket reports a bad scheme with a plain string.
	return strings.Contains(err.Error(), "unexpected url scheme")
}

// dialEnd describes a failed dial attempt. resp may be nil.
func dialEnd(err error, resp *http.Response, now time.Time, maxRetryAfter time.Duration) Disconnect {
	d := Disconnect{Err: err}
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		d.HTTPStatus = resp.StatusCode
		d.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now, maxRetryAfter)
	}
	return d
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
		// coder/websocket has already sent 1009 to the peer; make the code
		// visible to websocket.CloseStatus, as for a code received.
		d.Code = websocket.StatusMessageTooBig
		d.Err = fmt.Errorf("%w (%w)", err, websocket.CloseError{Code: d.Code, Reason: "message too big"})
	}
	return d
}

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): either
// delta-seconds or an HTTP date. The result is clamped to [0, max]; a
// malformed or negative value, or a date in the past, gives 0.
func parseRetryAfter(v string, now time.Time, max time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" || max <= 0 {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		if secs >= uint64(max/time.Second)+1 || secs > math.MaxInt64/uint64(time.Second) {
			return max
		}
		return min(time.Duration(secs)*time.Second, max)
	} else if errors.Is(err, strconv.ErrRange) && strings.Trim(v, "0123456789") == "" {
		return max // all digits, but beyond uint64
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, max)
}

// redact hides the credentials and query of a URL that err mentions (net/http
// puts the request URL into its errors; a token in the query would
// otherwise reach logs). The result unwraps to err.
func redact(err error) error {
	var uerr *url.Error
	if err == nil || !errors.As(err, &uerr) || uerr.URL == "" {
		return err
	}
	safe := "<unparseable URL>"
	if u, perr := url.Parse(uerr.URL); perr == nil {
		u.User = nil
		if u.RawQuery != "" {
			u.RawQuery = "REDACTED"
		}
		u.Fragment = ""
		safe = u.String()
	}
	msg := err.Error()
	if !strings.Contains(msg, uerr.URL) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(msg, uerr.URL, safe), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
