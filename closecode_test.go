//go:build !js

package wsreconnect

// The default policy as a table: every way a connection or a dial attempt
// ends, through the same functions the supervisor uses (connEnd, dialEnd),
// then DefaultPolicy. Then Retry-After parsing, the String methods,
// StopError, and two fuzz targets whose seeds run in every test run.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// testNow is the clock of the classification tests: HTTP dates have a
// resolution of one second, so it has no fraction.
var testNow = time.Date(2025, time.March, 4, 5, 6, 7, 0, time.UTC)

// closeEnd is how an established connection ends on a close frame.
func closeEnd(code websocket.StatusCode, reason string) Disconnect {
	return connEnd(fmt.Errorf("failed to get reader: %w", websocket.CloseError{Code: code, Reason: reason}))
}

// handshakeEnd is how a dial ends when the server answers with status
// instead of 101, as websocket.Dial reports it.
func handshakeEnd(status int, retryAfter string) Disconnect {
	resp := &http.Response{StatusCode: status, Header: http.Header{}}
	if retryAfter != "" {
		resp.Header.Set("Retry-After", retryAfter)
	}
	err := fmt.Errorf("failed to WebSocket dial: expected handshake response status code %v but got %v", 101, status)
	return dialEnd(err, resp, testNow, DefaultMaxRetryAfter)
}

func netErr(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
}

func dialErr(err error) error {
	return fmt.Errorf("failed to WebSocket dial: failed to send handshake request: %w",
		&url.Error{Op: "Get", URL: "http://example.test/", Err: err})
}

func TestDefaultPolicyTable(t *testing.T) {
	badCert := &x509.Certificate{DNSNames: []string{"other.test"}}
	tests := []struct {
		name       string
		d          Disconnect
		code       websocket.StatusCode
		httpStatus int
		want       Decision
	}{
		// Every code of RFC 6455 §7.4.1 and the IANA registry, as a close
		// frame on an established connection.
		{"1000 normal", closeEnd(1000, "bye"), 1000, 0, Stop},
		{"1001 going away", closeEnd(1001, ""), 1001, 0, Retry},
		{"1002 protocol error", closeEnd(1002, ""), 1002, 0, Stop},
		{"1003 unsupported data", closeEnd(1003, ""), 1003, 0, Stop},
		{"1004 reserved", closeEnd(1004, ""), 1004, 0, Retry},
		{"1005 no status", closeEnd(1005, ""), 1005, 0, Retry},
		{"1006 as a close error", closeEnd(1006, ""), 1006, 0, Retry},
		{"1007 invalid payload", closeEnd(1007, ""), 1007, 0, Stop},
		{"1008 policy violation", closeEnd(1008, "go away"), 1008, 0, Stop},
		{"1009 message too big", closeEnd(1009, ""), 1009, 0, Stop},
		{"1010 mandatory extension", closeEnd(1010, ""), 1010, 0, Stop},
		{"1011 internal error", closeEnd(1011, ""), 1011, 0, Retry},
		{"1012 service restart", closeEnd(1012, ""), 1012, 0, Retry},
		{"1013 try again later", closeEnd(1013, "busy"), 1013, 0, RetryOverload},
		{"1014 bad gateway", closeEnd(1014, ""), 1014, 0, Retry},
		{"1015 TLS handshake", closeEnd(1015, ""), 1015, 0, Stop},

		// Outside the registry, and the application ranges.
		{"999", closeEnd(999, ""), 999, 0, Retry},
		{"1016 unassigned", closeEnd(1016, ""), 1016, 0, Retry},
		{"2999", closeEnd(2999, ""), 2999, 0, Retry},
		{"3000", closeEnd(3000, ""), 3000, 0, Retry},
		{"3999", closeEnd(3999, ""), 3999, 0, Retry},
		{"4000", closeEnd(4000, ""), 4000, 0, Retry},
		{"4001", closeEnd(4001, "token expired"), 4001, 0, Retry},
		{"4999", closeEnd(4999, ""), 4999, 0, Retry},
		{"5000", closeEnd(5000, ""), 5000, 0, Retry},
		{"65535", closeEnd(65535, ""), 65535, 0, Retry},

		// An established connection that ended without a close frame.
		{"EOF", connEnd(fmt.Errorf("failed to get reader: %w", io.EOF)), 1006, 0, Retry},
		{"unexpected EOF", connEnd(fmt.Errorf("failed to read frame header: %w", io.ErrUnexpectedEOF)), 1006, 0, Retry},
		{"connection reset", connEnd(netErr("read", syscall.ECONNRESET)), 1006, 0, Retry},
		{"broken pipe", connEnd(fmt.Errorf("failed to write frame: %w", netErr("write", syscall.EPIPE))), 1006, 0, Retry},
		{"heartbeat timeout", connEnd(fmt.Errorf("%w (interval 20s, timeout 10s)", ErrHeartbeatTimeout)), 1006, 0, Retry},
		{"message too big", connEnd(fmt.Errorf("failed to read: %w", fmt.Errorf("%w: read limited at 32769 bytes", websocket.ErrMessageTooBig))), 1009, 0, Stop},

		// Handshake statuses.
		{"handshake 200", handshakeEnd(200, ""), 0, 200, Stop},
		{"handshake 301", handshakeEnd(301, ""), 0, 301, Stop},
		{"handshake 400", handshakeEnd(400, ""), 0, 400, Stop},
		{"handshake 401", handshakeEnd(401, ""), 0, 401, Stop},
		{"handshake 403", handshakeEnd(403, ""), 0, 403, Stop},
		{"handshake 404", handshakeEnd(404, ""), 0, 404, Stop},
		{"handshake 408", handshakeEnd(408, ""), 0, 408, Retry},
		{"handshake 418", handshakeEnd(418, ""), 0, 418, Stop},
		{"handshake 429", handshakeEnd(429, "7"), 0, 429, RetryOverload},
		{"handshake 500", handshakeEnd(500, ""), 0, 500, Retry},
		{"handshake 501", handshakeEnd(501, ""), 0, 501, Retry},
		{"handshake 502", handshakeEnd(502, ""), 0, 502, Retry},
		{"handshake 503", handshakeEnd(503, ""), 0, 503, RetryOverload},
		{"handshake 504", handshakeEnd(504, ""), 0, 504, Retry},
		{"handshake 599", handshakeEnd(599, ""), 0, 599, Retry},
		// A 101 with a bad handshake (wrong Sec-WebSocket-Accept) is not a
		// status to classify: no status is reported, and it is a failed dial.
		{"handshake 101, bad accept", dialEnd(errors.New("failed to WebSocket dial: WebSocket protocol violation: invalid Sec-WebSocket-Accept"),
			&http.Response{StatusCode: 101, Header: http.Header{"Retry-After": {"60"}}}, testNow, DefaultMaxRetryAfter), 0, 0, Retry},

		// A dial that failed on the network or timed out.
		{"dial refused", dialEnd(dialErr(netErr("dial", syscall.ECONNREFUSED)), nil, testNow, time.Minute), 0, 0, Retry},
		{"dial reset", dialEnd(dialErr(netErr("read", syscall.ECONNRESET)), nil, testNow, time.Minute), 0, 0, Retry},
		{"dial EOF", dialEnd(dialErr(io.EOF), nil, testNow, time.Minute), 0, 0, Retry},
		{"dial unexpected EOF", dialEnd(dialErr(io.ErrUnexpectedEOF), nil, testNow, time.Minute), 0, 0, Retry},
		{"dial broken pipe", dialEnd(dialErr(netErr("write", syscall.EPIPE)), nil, testNow, time.Minute), 0, 0, Retry},
		{"dial timeout", dialEnd(fmt.Errorf("wsreconnect: dial timed out after 10s: %w", dialErr(context.DeadlineExceeded)), nil, testNow, time.Minute), 0, 0, Retry},
		{"DNS not found", dialEnd(dialErr(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nowhere.test", IsNotFound: true}}), nil, testNow, time.Minute), 0, 0, Retry},
		{"DNS timeout", dialEnd(dialErr(&net.DNSError{Err: "i/o timeout", Name: "slow.test", IsTimeout: true}), nil, testNow, time.Minute), 0, 0, Retry},
		// A url.Error that is not about parsing is a network error.
		{"url.Error Get", dialEnd(&url.Error{Op: "Get", URL: "http://x.test/", Err: syscall.ECONNREFUSED}, nil, testNow, time.Minute), 0, 0, Retry},

		// TLS certificates that do not verify.
		{"unknown authority", dialEnd(dialErr(x509.UnknownAuthorityError{}), nil, testNow, time.Minute), 0, 0, Stop},
		{"hostname mismatch", dialEnd(dialErr(x509.HostnameError{Certificate: badCert, Host: "example.test"}), nil, testNow, time.Minute), 0, 0, Stop},
		{"certificate expired", dialEnd(dialErr(x509.CertificateInvalidError{Cert: badCert, Reason: x509.Expired, Detail: "expired"}), nil, testNow, time.Minute), 0, 0, Stop},
		{"certificate verification", dialEnd(dialErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), nil, testNow, time.Minute), 0, 0, Stop},

		// URLs that cannot be dialled.
		{"malformed URL", dialEnd(fmt.Errorf("failed to WebSocket dial: failed to parse url: %w", &url.Error{Op: "parse", URL: "ws://[::1", Err: errors.New("missing ']' in host")}), nil, testNow, time.Minute), 0, 0, Stop},
		{"unexpected scheme", dialEnd(errors.New(`failed to WebSocket dial: unexpected url scheme: "ftp"`), nil, testNow, time.Minute), 0, 0, Stop},

		// The caller's Close wins over anything else recorded with it.
		{"ErrClosed", Disconnect{Err: ErrClosed}, 0, 0, Stop},
		{"ErrClosed wrapped, with 1006", Disconnect{Code: 1006, Err: fmt.Errorf("read: %w", ErrClosed)}, 1006, 0, Stop},
		{"ErrClosed with 503", Disconnect{HTTPStatus: 503, Err: ErrClosed}, 0, 503, Stop},

		// A failed OnConnect without a close code is a failed attempt.
		{"OnConnect error", Disconnect{Err: errors.New("wsreconnect: OnConnect: auth failed")}, 0, 0, Retry},
		{"no error at all", Disconnect{}, 0, 0, Retry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.d.Code != tt.code || tt.d.HTTPStatus != tt.httpStatus {
				t.Errorf("classified as code %d, status %d; want code %d, status %d",
					tt.d.Code, tt.d.HTTPStatus, tt.code, tt.httpStatus)
			}
			if got := DefaultPolicy(tt.d); got != tt.want {
				t.Errorf("DefaultPolicy(%+v) = %v, want %v", tt.d, got, tt.want)
			}
		})
	}
}

// A close frame keeps its code and reason, and websocket.CloseStatus reads
// the code back from Disconnect.Err, over the whole application range.
func TestConnEndKeepsCloseFrame(t *testing.T) {
	for code := websocket.StatusCode(1000); code < 5100; code++ {
		d := closeEnd(code, "why")
		if d.Code != code || d.Reason != "why" || websocket.CloseStatus(d.Err) != code {
			t.Fatalf("code %d: got %+v, CloseStatus %d", code, d, websocket.CloseStatus(d.Err))
		}
		if code >= 3000 && code <= 4999 {
			if got := DefaultPolicy(d); got != Retry {
				t.Fatalf("application code %d: %v, want retry", code, got)
			}
		}
	}
	// A close frame seen by the reader wins over a later write error that
	// wraps it, and over ErrMessageTooBig wrapped alongside.
	d := connEnd(fmt.Errorf("%w; %w", websocket.CloseError{Code: 1008, Reason: "x"}, websocket.ErrMessageTooBig))
	if d.Code != 1008 {
		t.Fatalf("close frame and ErrMessageTooBig: code %d, want 1008", d.Code)
	}
}

func TestHeartbeatTimeoutIsRetried(t *testing.T) {
	d := connEnd(fmt.Errorf("%w (interval 20s, timeout 10s)", ErrHeartbeatTimeout))
	if d.Code != websocket.StatusAbnormalClosure || !errors.Is(d.Err, ErrHeartbeatTimeout) {
		t.Fatalf("heartbeat timeout: %+v", d)
	}
	if got := DefaultPolicy(d); got != Retry {
		t.Fatalf("heartbeat timeout: %v, want retry", got)
	}
}

func TestHandshakeRetryAfterIsRead(t *testing.T) {
	tests := []struct {
		status     int
		retryAfter string
		want       time.Duration
	}{
		{429, "7", 7 * time.Second},
		{503, testNow.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{503, "1000000000000", DefaultMaxRetryAfter},
		{503, "-1", 0},
		{503, "soon", 0},
		{502, "3", 3 * time.Second},
	}
	for _, tt := range tests {
		d := handshakeEnd(tt.status, tt.retryAfter)
		if d.RetryAfter != tt.want {
			t.Errorf("status %d, Retry-After %q: RetryAfter %v, want %v", tt.status, tt.retryAfter, d.RetryAfter, tt.want)
		}
	}
	// No response at all, and maxRetryAfter 0 (Retry-After ignored).
	if d := dialEnd(io.EOF, nil, testNow, time.Minute); d.RetryAfter != 0 || d.HTTPStatus != 0 {
		t.Errorf("no response: %+v", d)
	}
	resp := &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"7"}}}
	if d := dialEnd(errors.New("503"), resp, testNow, 0); d.RetryAfter != 0 || d.HTTPStatus != 503 {
		t.Errorf("max Retry-After 0: %+v", d)
	}
}

// A server whose certificate the default client does not trust: the whole
// path from websocket.Dial through dialEnd and DefaultPolicy says Stop.
func TestRealTLSErrorsStop(t *testing.T) {
	noLeaks(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err == nil {
			ws.CloseNow()
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // "TLS handshake error" is the point
	srv.StartTLS()
	defer srv.Close()
	wss := "wss://" + srv.Listener.Addr().String() + "/"

	check := func(t *testing.T, opts *websocket.DialOptions, target any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, wss, opts)
		if err == nil {
			ws.CloseNow()
			t.Fatal("dial succeeded against an untrusted certificate")
		}
		if !errors.As(err, target) {
			t.Fatalf("dial error %v (%T) does not wrap %T", err, err, target)
		}
		d := dialEnd(redact(err), resp, time.Now(), DefaultMaxRetryAfter) // as dialAttempt does
		if d.Code != 0 || d.HTTPStatus != 0 {
			t.Fatalf("classified as %+v", d)
		}
		if got := DefaultPolicy(d); got != Stop {
			t.Fatalf("DefaultPolicy(%v) = %v, want stop", d, got)
		}
	}

	t.Run("unknown authority, default client", func(t *testing.T) {
		var verr *tls.CertificateVerificationError
		check(t, nil, &verr)
		var uaerr x509.UnknownAuthorityError
		if !errors.As(verr, &uaerr) {
			t.Fatalf("%v does not wrap x509.UnknownAuthorityError", verr)
		}
	})
	t.Run("hostname mismatch", func(t *testing.T) {
		// Trust the server's certificate, but expect another name.
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.ServerName = "not-in-the-certificate.test"
		defer tr.CloseIdleConnections()
		var herr x509.HostnameError
		check(t, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}, &herr)
	})
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// Errors coder/websocket reports before any connection: a URL it cannot
// parse and a scheme it does not speak.
func TestRealURLErrorsStop(t *testing.T) {
	noLeaks(t)
	for _, u := range []string{"ws://[::1", "ftp://127.0.0.1/", "ws://host:port:bad/"} {
		ws, resp, err := websocket.Dial(t.Context(), u, nil)
		if err == nil {
			ws.CloseNow()
			t.Fatalf("%s: dial succeeded", u)
		}
		d := dialEnd(redact(err), resp, time.Now(), DefaultMaxRetryAfter) // as dialAttempt does
		if got := DefaultPolicy(d); got != Stop {
			t.Errorf("%s: error %q: %v, want stop", u, err, got)
		}
	}
	_, _, err := websocket.Dial(t.Context(), "ws://[::1", nil)
	var uerr *url.Error
	if !errors.As(err, &uerr) || uerr.Op != "parse" {
		t.Errorf("malformed URL: error %v is not a *url.Error with Op parse", err)
	}
}

// A message above the read limit: coder/websocket's own error wraps
// ErrMessageTooBig, which is classified 1009 and stops.
func TestRealMessageTooBigStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			ws.Write(ctx, websocket.MessageBinary, make([]byte, 100))
			ws.CloseRead(ctx)
			<-ctx.Done()
		}})
		defer srv.Close()
		ws, _, err := srv.PipeDial()(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		ws.SetReadLimit(10)
		_, _, err = ws.Read(t.Context())
		if !errors.Is(err, websocket.ErrMessageTooBig) {
			t.Fatalf("Read: %v, want ErrMessageTooBig", err)
		}
		d := connEnd(err)
		if d.Code != websocket.StatusMessageTooBig {
			t.Fatalf("code %d, want 1009", d.Code)
		}
		if got := DefaultPolicy(d); got != Stop {
			t.Fatalf("%v, want stop", got)
		}
	})
}

func TestDecisionString(t *testing.T) {
	tests := map[Decision]string{
		Stop:          "stop",
		Retry:         "retry",
		RetryOverload: "retry (overload)",
		Decision(7):   "Decision(7)",
		Decision(-1):  "Decision(-1)",
	}
	for d, want := range tests {
		if got := d.String(); got != want {
			t.Errorf("Decision(%d).String() = %q, want %q", int(d), got, want)
		}
	}
}

func TestStateString(t *testing.T) {
	tests := map[State]string{
		StateConnecting: "connecting",
		StateConnected:  "connected",
		StateClosed:     "closed",
		State(9):        "State(9)",
	}
	for s, want := range tests {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int32(s), got, want)
		}
	}
}

func TestDisconnectString(t *testing.T) {
	tests := []struct {
		d    Disconnect
		want []string
	}{
		{Disconnect{Code: 1008, Reason: "go away", Err: websocket.CloseError{Code: 1008, Reason: "go away"}, Attempt: 1},
			[]string{"1008", `"go away"`, "attempt 1", "stop"}},
		{Disconnect{Code: 1013, Attempt: 3, Decision: RetryOverload, Reconnect: true, Delay: 4 * time.Second},
			[]string{"1013", "attempt 3", "retry (overload)", "4s"}},
		{Disconnect{HTTPStatus: 503, Attempt: 2, Decision: RetryOverload, Reconnect: true, Delay: 7 * time.Second, Err: errors.New("boom")},
			[]string{"503", "boom", "attempt 2", "7s"}},
		{Disconnect{Code: 1006, Err: io.EOF, Attempt: 5, Decision: Retry, Reconnect: true, Delay: 1500 * time.Millisecond},
			[]string{"1006", "EOF", "attempt 5", "retry in 1.5s"}},
		{Disconnect{Err: syscall.ECONNREFUSED, Attempt: 1, Decision: Retry, Reconnect: true, Delay: time.Second},
			[]string{"dial failed", "connection refused", "retry in 1s"}},
		{Disconnect{}, []string{"no disconnect yet"}},
	}
	for _, tt := range tests {
		s := tt.d.String()
		if s == "" {
			t.Errorf("%#v: empty String", tt.d)
		}
		for _, w := range tt.want {
			if !strings.Contains(s, w) {
				t.Errorf("String() = %q, does not contain %q", s, w)
			}
		}
	}
	// A status wins over a code, and no code is shown as one.
	if s := (Disconnect{HTTPStatus: 429, Code: 1013}).String(); !strings.Contains(s, "429") || strings.Contains(s, "1013") {
		t.Errorf("status and code: %q", s)
	}
}

func TestStopError(t *testing.T) {
	d := closeEnd(websocket.StatusPolicyViolation, "go away")
	d.Attempt = 1
	var err error = &StopError{Disconnect: d}
	wrapped := fmt.Errorf("wsreconnect: read: %w", err)

	var se *StopError
	if !errors.As(wrapped, &se) || se != err {
		t.Fatalf("errors.As(%v) did not find the StopError", wrapped)
	}
	if got := websocket.CloseStatus(wrapped); got != websocket.StatusPolicyViolation {
		t.Fatalf("CloseStatus through StopError = %d, want 1008", got)
	}
	msg := err.Error()
	for _, w := range []string{"wsreconnect", "1008", "go away"} {
		if !strings.Contains(msg, w) {
			t.Errorf("Error() = %q, does not contain %q", msg, w)
		}
	}

	// It unwraps to whatever ended it.
	hs := &StopError{Disconnect: handshakeEnd(401, "")}
	if websocket.CloseStatus(hs) != -1 || !strings.Contains(hs.Error(), "401") {
		t.Errorf("handshake StopError %q: CloseStatus %d", hs, websocket.CloseStatus(hs))
	}
	if !errors.Is(&StopError{Disconnect: Disconnect{Err: fmt.Errorf("x: %w", ErrClosed)}}, ErrClosed) {
		t.Error("StopError does not unwrap to ErrClosed")
	}
	if (&StopError{}).Unwrap() != nil || (&StopError{}).Error() == "" {
		t.Error("zero StopError")
	}
}

func TestParseRetryAfter(t *testing.T) {
	const max = 5 * time.Minute
	date := func(d time.Duration) string { return testNow.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name string
		v    string
		now  time.Time
		max  time.Duration
		want time.Duration
	}{
		{"zero", "0", testNow, max, 0},
		{"seven", "7", testNow, max, 7 * time.Second},
		{"spaces", " 7 ", testNow, max, 7 * time.Second},
		{"tab and newline", "\t7\r\n", testNow, max, 7 * time.Second},
		{"leading zeros", "007", testNow, max, 7 * time.Second},
		{"two minutes", "120", testNow, max, 120 * time.Second},
		{"at the cap", "300", testNow, max, max},
		{"just over the cap", "301", testNow, max, max},
		{"over the cap", "3600", testNow, max, max},
		{"negative", "-1", testNow, max, 0},
		{"plus sign", "+7", testNow, max, 0},
		{"float", "7.5", testNow, max, 0},
		{"exponent", "1e12", testNow, max, 0},
		{"huge", "1000000000000", testNow, max, max},
		{"max uint64", "18446744073709551615", testNow, max, max},
		{"beyond uint64", "99999999999999999999999", testNow, max, max},
		{"beyond int64 nanoseconds", "9223372037", testNow, math.MaxInt64, math.MaxInt64},
		{"within int64 nanoseconds", "9223372036", testNow, math.MaxInt64, 9223372036 * time.Second},
		{"garbage", "soon", testNow, max, 0},
		{"digits then garbage", "7 seconds", testNow, max, 0},
		// Malformed, though its first 20 digits alone overflow uint64: 0,
		// not the cap (FuzzParseRetryAfter found it).
		{"huge digits then garbage", "20000000000000000000A", testNow, max, 0},
		{"huge digits then a space", "99999999999999999999999 9", testNow, max, 0},
		{"empty", "", testNow, max, 0},
		{"blank", "   ", testNow, max, 0},
		{"date in the future", date(90 * time.Second), testNow, max, 90 * time.Second},
		{"date beyond the cap", date(time.Hour), testNow, max, max},
		{"date in the past", date(-90 * time.Second), testNow, max, 0},
		{"date exactly now", date(0), testNow, max, 0},
		{"date, now has a fraction", date(2 * time.Second), testNow.Add(500 * time.Millisecond), max, 1500 * time.Millisecond},
		{"date far in the future", "Fri, 31 Dec 9999 23:59:59 GMT", testNow, max, max},
		{"date far in the past", "Mon, 01 Jan 0001 00:00:00 GMT", testNow, max, 0},
		{"RFC 850 date", testNow.Add(30 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT"), testNow, max, 30 * time.Second},
		{"ANSI C date", testNow.Add(45 * time.Second).Format(time.ANSIC), testNow, max, 45 * time.Second},
		{"malformed date", "Tue, 04 Mar 2025 25:06:07 GMT", testNow, max, 0},
		{"max 0", "7", testNow, 0, 0},
		{"max 0, date", date(time.Minute), testNow, 0, 0},
		{"max negative", "7", testNow, -time.Second, 0},
		{"max below a second", "1", testNow, 500 * time.Millisecond, 500 * time.Millisecond},
		{"max below a second, zero", "0", testNow, 500 * time.Millisecond, 0},
		{"max 1.5 s, 1", "1", testNow, 1500 * time.Millisecond, time.Second},
		{"max 1.5 s, 2", "2", testNow, 1500 * time.Millisecond, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseRetryAfter(tt.v, tt.now, tt.max)
			if got != tt.want {
				t.Errorf("parseRetryAfter(%q, max %v) = %v, want %v", tt.v, tt.max, got, tt.want)
			}
		})
	}
}

// retryAfterOracle is parseRetryAfter's documented behaviour, computed
// another way: delta-seconds in arbitrary precision, or an HTTP date.
func retryAfterOracle(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if limit <= 0 || v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" {
		secs, _ := new(big.Int).SetString(v, 10)
		ns := secs.Mul(secs, big.NewInt(int64(time.Second)))
		if ns.Cmp(big.NewInt(int64(limit))) >= 0 {
			return limit
		}
		return time.Duration(ns.Int64())
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), limit)
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, v := range []string{
		"0", "7", " 7 ", "120", "300", "301", "-1", "+7", "1e12", "1000000000000",
		"18446744073709551615", "18446744073709551616", "99999999999999999999999",
		"9223372036", "9223372037", "garbage", "", " ", "7.5", "0x10",
		"Tue, 04 Mar 2025 05:07:37 GMT", "Tue, 04 Mar 2025 05:06:07 GMT",
		"Mon, 01 Jan 0001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
		"Tuesday, 04-Mar-25 05:06:37 GMT", "Tue Mar  4 05:06:52 2025",
	} {
		f.Add(v, testNow.Unix(), int64(5*time.Minute))
	}
	f.Add("7", testNow.Unix(), int64(0))
	f.Add("7", testNow.Unix(), int64(-1))
	f.Add("99999999999", int64(0), int64(math.MaxInt64))
	f.Add("Fri, 31 Dec 9999 23:59:59 GMT", int64(math.MinInt64), int64(math.MaxInt64))
	f.Add("Mon, 01 Jan 0001 00:00:00 GMT", int64(math.MaxInt64), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, v string, nowUnix int64, maxNs int64) {
		now := time.Unix(nowUnix, 0)
		max := time.Duration(maxNs)
		got := parseRetryAfter(v, now, max)
		if got < 0 || (max >= 0 && got > max) || (max <= 0 && got != 0) {
			t.Fatalf("parseRetryAfter(%q, %v, max %v) = %v: outside [0, max]", v, now, max, got)
		}
		if want := retryAfterOracle(v, now, max); got != want {
			t.Fatalf("parseRetryAfter(%q, %v, max %v) = %v, want %v", v, now, max, got, want)
		}
	})
}

// closeCodeOracle and statusOracle are the documented default policy for a
// close frame (code not 0) and for a handshake status in 100-599.
func closeCodeOracle(code websocket.StatusCode) Decision {
	switch code {
	case 1000, 1002, 1003, 1007, 1008, 1009, 1010, 1015:
		return Stop
	case 1013:
		return RetryOverload
	}
	return Retry
}

func statusOracle(status int) Decision {
	switch {
	case status == 429, status == 503:
		return RetryOverload
	case status == 408, status >= 500 && status <= 599:
		return Retry
	}
	return Stop
}

// fuzzConfig maps fuzzed numbers onto a valid configuration: initial delay
// in [1 ms, max delay], max delay in [1 ms, 24 h], max Retry-After in
// [0, 24 h].
func fuzzConfig(initialMs, maxMs, maxRetryAfterS uint32) config {
	cfg := defaultConfig()
	day := uint32(maxDuration / time.Millisecond)
	cfg.maxDelay = time.Duration(1+maxMs%day) * time.Millisecond
	cfg.initialDelay = time.Duration(1+initialMs%uint32(cfg.maxDelay/time.Millisecond)) * time.Millisecond
	cfg.maxRetryAfter = time.Duration(maxRetryAfterS%uint32(maxDuration/time.Second+1)) * time.Second
	return cfg
}

// checkDelay checks one result of schedules.next against the documented
// bounds: Stop (or any value that is not a retry) stops; a standard retry
// waits in [0, max delay]; an overload retry at least 1 s (and at least the
// initial delay) and at most max(max delay, 1 s); a Retry-After hint is a
// floor, itself at most the max Retry-After.
func checkDelay(t *testing.T, cfg *config, dec Decision, retryAfter, delay time.Duration, ok bool) {
	t.Helper()
	what := fmt.Sprintf("next(%v, Retry-After %v) with initial %v, max %v, max Retry-After %v = %v, %v",
		dec, retryAfter, cfg.initialDelay, cfg.maxDelay, cfg.maxRetryAfter, delay, ok)
	if dec != Retry && dec != RetryOverload {
		if ok || delay != 0 {
			t.Fatalf("%s: want 0, false", what)
		}
		return
	}
	if !ok {
		t.Fatalf("%s: the default schedules never stop", what)
	}
	// The max delay caps both schedules (the overload floor of 1 s stays);
	// a Retry-After replaces them: [hint, hint + a tenth], clamped.
	lo, hi := time.Duration(0), cfg.maxDelay
	if dec == RetryOverload {
		hi = max(hi, minOverloadDelay)
	}
	if retryAfter > 0 {
		lo, hi = retryAfter, max(retryAfter, min(retryAfter+retryAfter/10, cfg.maxRetryAfter))
		if dec == RetryOverload {
			lo, hi = max(lo, minOverloadDelay), max(hi, minOverloadDelay)
		}
	}
	if delay < lo || delay > hi {
		t.Fatalf("%s: outside [%v, %v]", what, lo, hi)
	}
	if dec == RetryOverload && delay < minOverloadDelay {
		t.Fatalf("%s: the overload schedule waits at least %v", what, minOverloadDelay)
	}
}

func FuzzClassify(f *testing.F) {
	type seed struct {
		code                     uint16
		reason                   string
		status                   int
		retryAfter               string
		initialMs, maxMs, maxRAs uint32
		draws                    uint8
	}
	for _, s := range []seed{
		{1000, "bye", 0, "", 1000, 30000, 300, 8},
		{1006, "", 502, "", 1000, 30000, 300, 12},
		{1008, "policy", 401, "", 1000, 30000, 300, 3},
		{1013, "busy", 503, "7", 1000, 30000, 300, 20},
		{1013, "busy", 429, "1000000000000", 10, 30000, 60, 20},
		{4001, "token expired", 429, "Tue, 04 Mar 2025 05:07:37 GMT", 1000, 30000, 300, 5},
		{3000, "app", 408, "-1", 500, 2000, 0, 40},
		{0, "unexpected url scheme", 101, "garbage", 1000, 30000, 300, 2},
		{65535, strings.Repeat("x", 123), 599, "99999999999999999999999", 1, 86400000, 86400, 64},
		{999, "\xff\xfe", -1, "1e12", 250, 60000, 30, 10},
		{1015, "", 200, "0", 5000, 5000, 10, 10},
		{1012, "restart", 1000, "120", 2000, 120000, 600, 30},
	} {
		f.Add(s.code, s.reason, s.status, s.retryAfter, s.initialMs, s.maxMs, s.maxRAs, s.draws)
	}
	f.Fuzz(func(t *testing.T, code uint16, reason string, status int, retryAfter string, initialMs, maxMs, maxRAs uint32, draws uint8) {
		cfg := fuzzConfig(initialMs, maxMs, maxRAs)

		// An established connection that ended on a close frame.
		c := websocket.StatusCode(code)
		ce := websocket.CloseError{Code: c, Reason: reason}
		for _, err := range []error{ce, fmt.Errorf("failed to get reader: %w", ce)} {
			d := connEnd(err)
			if d.Code != c || d.Reason != reason || d.HTTPStatus != 0 || d.RetryAfter != 0 ||
				websocket.CloseStatus(d.Err) != c {
				t.Fatalf("connEnd(%v) = %+v", err, d)
			}
			dec := DefaultPolicy(d)
			if dec != Stop && dec != Retry && dec != RetryOverload {
				t.Fatalf("DefaultPolicy(%+v) = %v", d, dec)
			}
			if c != 0 {
				if want := closeCodeOracle(c); dec != want {
					t.Fatalf("close code %d: %v, want %v", code, dec, want)
				}
				if s := d.String(); !strings.Contains(s, strconv.Itoa(int(code))) {
					t.Fatalf("String() = %q, does not name code %d", s, code)
				}
			}
		}
		dConn := connEnd(ce)
		decConn := DefaultPolicy(dConn)

		// A dial that failed on the handshake.
		// Status 0 stands for no response at all (a network error).
		var resp *http.Response
		if status != 0 {
			resp = &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retryAfter}}}
		}
		dDial := dialEnd(fmt.Errorf("failed to WebSocket dial: expected handshake response status code 101 but got %d", status),
			resp, testNow, cfg.maxRetryAfter)
		decDial := DefaultPolicy(dDial)
		if decDial != Stop && decDial != Retry && decDial != RetryOverload {
			t.Fatalf("DefaultPolicy(%+v) = %v", dDial, decDial)
		}
		if dDial.RetryAfter < 0 || dDial.RetryAfter > cfg.maxRetryAfter {
			t.Fatalf("Retry-After %q, max %v: %v", retryAfter, cfg.maxRetryAfter, dDial.RetryAfter)
		}
		switch {
		case status == http.StatusSwitchingProtocols || status == 0:
			if dDial.HTTPStatus != 0 || dDial.RetryAfter != 0 || decDial != Retry {
				t.Fatalf("status %d: %+v, %v; want no status, retry", status, dDial, decDial)
			}
		case status >= 100 && status <= 599:
			if dDial.HTTPStatus != status {
				t.Fatalf("status %d: HTTPStatus %d", status, dDial.HTTPStatus)
			}
			if want := statusOracle(status); decDial != want {
				t.Fatalf("status %d: %v, want %v", status, decDial, want)
			}
			if s := dDial.String(); !strings.Contains(s, strconv.Itoa(status)) {
				t.Fatalf("String() = %q, does not name status %d", s, status)
			}
		}

		// Both through the schedules, as the supervisor does, long enough
		// to reach the caps.
		s := newSchedules(&cfg)
		for i := range int(draws % 65) {
			delay, ok := s.next(decConn, 0)
			checkDelay(t, &cfg, decConn, 0, delay, ok)
			delay, ok = s.next(decDial, dDial.RetryAfter)
			checkDelay(t, &cfg, decDial, dDial.RetryAfter, delay, ok)
			// A custom policy may return anything; only Retry and
			// RetryOverload retry.
			odd := Decision(int(code) + i - 1)
			delay, ok = s.next(odd, dDial.RetryAfter)
			checkDelay(t, &cfg, odd, dDial.RetryAfter, delay, ok)
		}
	})
}

// The policy table is written once, on DefaultPolicy; README.md carries a
// copy, which must say the same, row for row.
func TestREADMEPolicyTableMatchesDefaultPolicy(t *testing.T) {
	src, err := os.ReadFile("closecode.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src)
	doc = doc[strings.Index(doc, "// DefaultPolicy is the default classification"):strings.Index(doc, "func DefaultPolicy(")]
	var want []string
	rowRE := regexp.MustCompile(`^//\t(.*?)\s{2,}(Retry|RetryOverload|Stop)$`)
	for _, l := range strings.Split(doc, "\n") {
		if m := rowRE.FindStringSubmatch(l); m != nil {
			want = append(want, m[1]+" | "+map[string]string{"Retry": "retry", "RetryOverload": "retry, overload schedule", "Stop": "stop"}[m[2]])
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	inTable := false
	for _, l := range strings.Split(string(readme), "\n") {
		switch {
		case l == "| what ended it | decision |":
			inTable = true
		case inTable && strings.HasPrefix(l, "|---"):
		case inTable && strings.HasPrefix(l, "| "):
			got = append(got, strings.TrimSuffix(strings.TrimPrefix(l, "| "), " |"))
		case inTable:
			inTable = false
		}
	}
	if len(want) < 10 || !slices.Equal(got, want) {
		t.Fatalf("README's policy table differs from DefaultPolicy's:\nREADME:\n%s\nDefaultPolicy:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A server that rejects the client's certificate (mutual TLS: none given,
// or one it does not trust) answers with a TLS alert, which crypto/tls
// returns as a *net.OpError "remote error": a misconfiguration, which no
// retry cures, as the policy table says of certificate errors. (It used to
// be taken for a network blip and retried for ever.)
func TestServerRejectingClientCertificateStops(t *testing.T) {
	noLeaks(t)
	var handshakes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ws, err := websocket.Accept(w, r, nil); err == nil {
			ws.CloseNow()
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: x509.NewCertPool()}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			handshakes.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	wss := "wss://" + srv.Listener.Addr().String() + "/"

	for _, tt := range []struct {
		name   string
		certs  []tls.Certificate
		maxTLS uint16
	}{
		{"no certificate, TLS 1.3", nil, tls.VersionTLS13},
		{"no certificate, TLS 1.2", nil, tls.VersionTLS12},
		{"an untrusted certificate, TLS 1.3", []tls.Certificate{selfSignedCert(t)}, tls.VersionTLS13},
		{"an untrusted certificate, TLS 1.2", []tls.Certificate{selfSignedCert(t)}, tls.VersionTLS12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			handshakes.Store(0)
			tr := srv.Client().Transport.(*http.Transport).Clone()
			tr.TLSClientConfig.Certificates = tt.certs
			tr.TLSClientConfig.MaxVersion = tt.maxTLS
			defer tr.CloseIdleConnections()
			dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
				return websocket.Dial(ctx, wss, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, dial, WithInitialDelay(time.Millisecond), WithMaxDelay(time.Millisecond))
			if err == nil {
				c.CloseNow()
				t.Fatal("Dial succeeded")
			}
			var se *StopError
			if !errors.As(err, &se) {
				t.Fatalf("Dial: %v, want a StopError", err)
			}
			if n := handshakes.Load(); n != 1 {
				t.Fatalf("%d TLS handshakes, want 1: %v", n, err)
			}
			t.Logf("%v", err)
		})
	}
}

// selfSignedCert returns a client certificate no one trusts.
func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
