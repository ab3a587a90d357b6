package wsreconnect

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// HandshakeError is a WebSocket handshake the server did not accept: it
// answered StatusCode instead of 101 Switching Protocols. It keeps what
// usually explains why: the headers a client needs (WWW-Authenticate,
// Proxy-Authenticate, Retry-After, Location, Content-Type, Via) and the
// start of the body, on one line, with the credentials the request
// carried (its Authorization and Cookie headers, the URL's query and user
// info) replaced by REDACTED. It unwraps to coder/websocket's error.
//
// Two statuses are a proxy's doing, and its Error says so: a 407, which
// only a proxy sends (the handshake went to the proxy as a plain request:
// net/http does that with ws:// URLs), and a 426 from a server whose
// request lost its Upgrade header on the way (a proxy that forwarded the
// request instead of tunnelling it: the Via header names it, when the
// proxy added one). [ProxyTransport] tunnels instead.
type HandshakeError struct {
	StatusCode int
	Header     http.Header // the headers above, when the server sent them
	Body       string      // at most the first 200 bytes of the body
	err        error
}

// keptHeaders are the response headers a HandshakeError keeps; Error
// shows all but Via (and Content-Type without a body).
var keptHeaders = []string{"WWW-Authenticate", "Proxy-Authenticate", "Retry-After", "Location", "Content-Type", "Via"}

// maxBodySnippet bounds HandshakeError.Body.
const maxBodySnippet = 200

func (e *HandshakeError) Error() string {
	var b strings.Builder
	status := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.StatusCode >= 200 && e.StatusCode < 300:
		fmt.Fprintf(&b, "the server answered the handshake with %s, not 101: the URL is not a WebSocket endpoint", status)
	case e.StatusCode == http.StatusProxyAuthRequired:
		fmt.Fprintf(&b, "the proxy refused the handshake: %s", status)
	default:
		fmt.Fprintf(&b, "the server refused the handshake: %s", strings.TrimSpace(status))
	}
	var hs []string
	for _, k := range keptHeaders {
		if v := e.Header.Get(k); v != "" && k != "Via" && (k != "Content-Type" || e.Body != "") {
			hs = append(hs, k+": "+v)
		}
	}
	if len(hs) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(hs, "; "))
	}
	if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	switch e.StatusCode {
	case http.StatusProxyAuthRequired:
		b.WriteString(": a proxy wants credentials, and the proxy URL has none or wrong ones (user:password@host:port);" +
			" it was sent the handshake itself, not a CONNECT (net/http does that with ws:// URLs; wsreconnect.ProxyTransport tunnels them)")
	case http.StatusUpgradeRequired:
		b.WriteString(": the server did not see the request's Upgrade header, which proxies on the way drop")
		if via := e.Header.Get("Via"); via != "" {
			fmt.Fprintf(&b, " (this one came through: Via: %s)", via)
		}
		b.WriteString(": a forward proxy that was sent the handshake itself instead of a CONNECT (net/http does that with ws:// URLs;" +
			" wsreconnect.ProxyTransport tunnels them), or a reverse proxy that does not pass WebSocket upgrades on")
	}
	return b.String()
}

func (e *HandshakeError) Unwrap() error { return e.err }

// newHandshakeError describes resp, a refused handshake, and err, the
// error coder/websocket returned for it. coder/websocket has replaced
// resp.Body by the first KiB of it.
func newHandshakeError(resp *http.Response, err error) *HandshakeError {
	e := &HandshakeError{StatusCode: resp.StatusCode, err: err}
	for _, k := range keptHeaders {
		if v := resp.Header.Get(k); v != "" {
			if e.Header == nil {
				e.Header = http.Header{}
			}
			e.Header.Set(k, v)
		}
	}
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		e.Body = snippet(redactSecrets(string(b), resp.Request))
	}
	return e
}

// snippet returns the start of s on one line: control characters and runs
// of white space become one space, invalid UTF-8 is dropped, and it is cut
// at maxBodySnippet bytes.
func snippet(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			continue
		case r < ' ' || r == 0x7f || r == ' ':
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > maxBodySnippet {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// redactSecrets replaces in s every credential req carried: its
// Authorization, Proxy-Authorization and Cookie values (and their tokens),
// and its URL's query values and password. A server that echoes them in an
// error page must not put them in our errors and logs.
func redactSecrets(s string, req *http.Request) string {
	if req == nil {
		return s
	}
	var secrets []string
	for _, k := range []string{"Authorization", "Proxy-Authorization", "Cookie"} {
		for _, v := range req.Header.Values(k) {
			secrets = append(secrets, v)
			for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ';' || r == '=' || r == ',' }) {
				if len(f) >= 8 { // a token, not "Bearer" or a cookie's name
					secrets = append(secrets, f)
				}
			}
		}
	}
	if u := req.URL; u != nil {
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
		for _, vs := range u.Query() {
			secrets = append(secrets, vs...)
		}
		if u.RawQuery != "" {
			secrets = append(secrets, u.RawQuery)
			if q, err := url.QueryUnescape(u.RawQuery); err == nil {
				secrets = append(secrets, q)
			}
		}
	}
	// Longest first, so that a whole header goes before a token inside it.
	for i := range secrets {
		for j := i + 1; j < len(secrets); j++ {
			if len(secrets[j]) > len(secrets[i]) {
				secrets[i], secrets[j] = secrets[j], secrets[i]
			}
		}
	}
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "REDACTED")
		}
	}
	return s
}

// dialEnd describes a failed dial attempt. resp may be nil.
func dialEnd(err error, resp *http.Response, now time.Time, maxRetryAfter time.Duration) Disconnect {
	d := Disconnect{Err: err}
	var pe *ProxyError
	switch {
	case resp != nil && resp.StatusCode != http.StatusSwitchingProtocols:
		d.HTTPStatus = resp.StatusCode
		d.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now, maxRetryAfter)
		d.Err = newHandshakeError(resp, err)
	case errors.As(err, &pe):
		// A proxy that cannot reach the server may say when to come back.
		d.RetryAfter = parseRetryAfter(pe.Header.Get("Retry-After"), now, maxRetryAfter)
	}
	return d
}
