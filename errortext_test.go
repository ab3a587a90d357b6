//go:build !js

package wsreconnect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// dialHTTP dials a plain HTTP handler on loopback, as a WebSocket client
// would, with a token in the URL and in an Authorization header.
func dialHTTP(t *testing.T, h http.HandlerFunc, opts ...Option) (*Conn, error) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/feed?token=querysecret42"
	return Dial(t.Context(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{
			HTTPClient: srv.Client(),
			HTTPHeader: http.Header{"Authorization": {"Bearer headersecret4242"}},
		})
	}, opts...)
}

// A refused handshake keeps what explains it: the status, the server's
// WWW-Authenticate, the start of the body; never a credential the request
// carried, even when the server echoes it. And Dial, having never
// connected, says it gives up.
func TestRefusedHandshakeSaysWhy(t *testing.T) {
	noLeaks(t)
	_, err := dialHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="feed", error="invalid_token"`)
		http.Error(w, fmt.Sprintf("token expired: %s (url %s)", r.Header.Get("Authorization"), r.URL), http.StatusUnauthorized)
	})
	var se *StopError
	var he *HandshakeError
	if !errors.As(err, &se) || !errors.As(err, &he) {
		t.Fatalf("Dial: %v, want a *StopError wrapping a *HandshakeError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"wsreconnect: giving up, never connected: ",
		"the server refused the handshake: 401 Unauthorized",
		`WWW-Authenticate: Bearer realm="feed", error="invalid_token"`,
		`"token expired: REDACTED (url /feed?REDACTED)"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	for _, secret := range []string{"headersecret4242", "querysecret42"} {
		if strings.Contains(msg, secret) || strings.Contains(he.Body, secret) {
			t.Errorf("error %q exposes %q", msg, secret)
		}
	}
	if he.StatusCode != 401 || he.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("HandshakeError %+v", he)
	}
}

// A plain web page where the WebSocket endpoint should be is named as such.
func TestPlainPageIsNotAnEndpoint(t *testing.T) {
	noLeaks(t)
	_, err := dialHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!doctype html>\n<title>Welcome</title>\n\n<p>Hello")
	})
	want := `the server answered the handshake with 200 OK, not 101: the URL is not a WebSocket endpoint (Content-Type: text/html; charset=utf-8): "<!doctype html> <title>Welcome</title> <p>Hello"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Dial: %v\nwant it to contain: %s", err, want)
	}
}

// A close frame is said once: its code and reason, not again as
// coder/websocket's error text; and a Conn that had connected "stopped".
func TestCloseFrameSaidOnce(t *testing.T) {
	noLeaks(t)
	c, err := dialHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ws.Close(websocket.StatusPolicyViolation, "policy violation")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, _, err = c.Read(t.Context())
	if got, want := fmt.Sprint(err), `wsreconnect: stopped reconnecting after code 1008 "policy violation" (attempt 1)`; got != want {
		t.Fatalf("Read error\n%s\nwant\n%s", got, want)
	}
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("CloseStatus %d", websocket.CloseStatus(err))
	}
}

// Before anything has happened, the last Disconnect says so.
func TestEmptyDisconnectSaysNothingHappened(t *testing.T) {
	if got := fmt.Sprint(Disconnect{}); got != "no disconnect yet" {
		t.Fatalf("empty Disconnect prints %q", got)
	}
}

// Read's errors say where they come from, as Write's do, and still match
// the ctx's error.
func TestReadErrorNamesRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		c := mustDial(t, srv.PipeDial())
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, _, err := c.Read(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "wsreconnect: read: ") {
			t.Fatalf("Read: %v", err)
		}
	})
}

// A URL the DialFunc's websocket.Dial cannot parse (no scheme) is shown as
// typed, so that the mistake is visible, but for its credentials.
func TestUnparseableURLShownWithoutCredentials(t *testing.T) {
	for url, shown := range map[string]string{
		"127.0.0.1:8080/feed?token=querysecret42":     "127.0.0.1:8080/feed?REDACTED",
		"ws://user:pass42secret@127.0.0.1:80 80/feed": "ws://127.0.0.1:80 80/feed",
	} {
		_, err := Dial(t.Context(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, nil)
		})
		if err == nil {
			t.Fatalf("Dial %s succeeded", url)
		}
		msg := err.Error()
		if !strings.Contains(msg, shown) || strings.Contains(msg, "querysecret42") || strings.Contains(msg, "pass42secret") {
			t.Errorf("Dial %s: %v; want it to show %s", url, err, shown)
		}
	}
}

// A message over the read limit stops the Conn (1009), and the error says
// how to raise the limit.
func TestOversizeMessageSaysHowToRaiseLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			ws.Write(ctx, websocket.MessageBinary, make([]byte, 40<<10))
			<-ctx.Done()
		}}
		srv := wstest.NewServer(big)
		defer srv.Close()
		c := mustDial(t, srv.PipeDial())
		_, _, err := c.Read(t.Context())
		if websocket.CloseStatus(err) != websocket.StatusMessageTooBig || !strings.Contains(err.Error(), "SetReadLimit") {
			t.Fatalf("Read: %v", err)
		}
	})
}
