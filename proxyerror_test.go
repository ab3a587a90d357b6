//go:build !js

package wsreconnect

// What a proxy answered, told apart from what the server did: the
// handshake statuses only a proxy causes, and net/http's own CONNECT
// refusals. ProxyTransport's ProxyErrors are in proxy_test.go.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The texts of the handshake statuses that are a proxy's doing.
func TestProxyHandshakeErrorTexts(t *testing.T) {
	he := &HandshakeError{StatusCode: 407, Header: http.Header{"Proxy-Authenticate": {`Basic realm="corp"`}}}
	want := `the proxy refused the handshake: 407 Proxy Authentication Required (Proxy-Authenticate: Basic realm="corp"): a proxy wants credentials`
	if !strings.HasPrefix(he.Error(), want) || !strings.Contains(he.Error(), "wsreconnect.ProxyTransport tunnels them") {
		t.Errorf("407: %q\nwant it to start %q", he.Error(), want)
	}
	he = &HandshakeError{StatusCode: 426, Header: http.Header{"Via": {"1.1 proxy.corp (squid)"}}}
	if !strings.Contains(he.Error(), "the server refused the handshake: 426 Upgrade Required: the server did not see the request's Upgrade header, which proxies on the way drop (this one came through: Via: 1.1 proxy.corp (squid))") {
		t.Errorf("426 with Via: %q", he.Error())
	}
	he = &HandshakeError{StatusCode: 426}
	if !strings.Contains(he.Error(), "426 Upgrade Required: the server did not see the request's Upgrade header, which proxies on the way drop: a forward proxy") {
		t.Errorf("426: %q", he.Error())
	}
	if d := DefaultPolicy(Disconnect{HTTPStatus: 407, Err: he}); d != Stop {
		t.Errorf("handshake 407: %v, want stop", d)
	}
}

// net/http's own CONNECT (http.Transport.Proxy, wss://) reports a refusal
// by the reason phrase alone: the standard phrases are recognised, with
// the target, and classified as the proxy's.
func TestNetHTTPProxyStatusIsRecognised(t *testing.T) {
	for _, tt := range []struct {
		err    error
		status int
		target string
		want   Decision
	}{
		{dialErr(errors.New("Proxy Authentication Required")), 407, "example.test:80", Stop},
		{fmt.Errorf("failed to WebSocket dial: failed to send handshake request: %w", &url.Error{Op: "Get", URL: "https://u:p@example.test/x?t=1", Err: errors.New("Forbidden")}), 403, "example.test:443", Stop},
		{dialErr(errors.New("Bad Gateway")), 502, "example.test:80", Retry},
		{dialErr(errors.New("Service Unavailable")), 503, "example.test:80", Retry},
		{dialErr(errors.New("Access violation")), 0, "", Retry}, // not a standard phrase
		{dialErr(fmt.Errorf("x: %w", errors.New("Forbidden"))), 0, "", Retry},
	} {
		status, target := httpProxyStatus(tt.err)
		if status != tt.status || target != tt.target {
			t.Errorf("%v: status %d, target %q; want %d, %q", tt.err, status, target, tt.status, tt.target)
		}
		err := describeDialError(tt.err, context.Background(), false, "10s")
		if got := DefaultPolicy(dialEnd(err, nil, testNow, time.Minute)); got != tt.want {
			t.Errorf("%v: %v, want %v", err, got, tt.want)
		}
	}
}
