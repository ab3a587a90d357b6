package wsreconnect

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
)

// ProxyError is a failed hop to a proxy: the proxy could not be reached,
// or it would not open a tunnel to the server (an HTTP proxy's answer to
// CONNECT, a SOCKS5 proxy's reply). The server was never asked. Its Error
// names the proxy without credentials, and says what is missing when the
// proxy wants them. It unwraps to Err.
//
// [ProxyTransport] returns it for every failure before the tunnel is up.
// With net/http's own proxy support (http.Transport.Proxy) in the
// DialFunc, the Conn reports one too (in Disconnect.Err) when the proxy
// refuses a wss:// CONNECT with a standard status: net/http says only
// the reason phrase, so Proxy is empty and Err is net/http's error.
//
// [DefaultPolicy] stops on a status or reply that says the request itself
// is wrong (407, 403, any other 4xx, a SOCKS5 refusal by the proxy's
// rules or of its credentials, a proxy that speaks another protocol) and
// retries on the standard schedule when the proxy is down or cannot reach
// the server (connection refused, 500, 502, 503, 504, a SOCKS5 "host
// unreachable"), waiting as long as a Retry-After says.
type ProxyError struct {
	// Proxy is the proxy's URL without credentials (scheme://host:port),
	// or "" when it is not known.
	Proxy string
	// Target is the host:port the tunnel was for.
	Target string
	// StatusCode is an HTTP proxy's answer to CONNECT when it was not
	// 2xx: 407 (credentials missing or wrong), 403 (destination not
	// allowed), 502, 503, 504 (server unreachable from the proxy), ...;
	// else 0.
	StatusCode int
	// SOCKSReply is a SOCKS5 proxy's reply code when it refused (RFC 1928
	// §6: 1 general failure, 2 not allowed by its rules, 3 network
	// unreachable, 4 host unreachable, 5 connection refused, 6 TTL
	// expired, 7 command not supported, 8 address type not supported);
	// else 0.
	SOCKSReply int
	// Header keeps Proxy-Authenticate and Retry-After from an HTTP
	// proxy's answer, when it sent them.
	Header http.Header
	// Err is what failed underneath: the network or TLS error reaching
	// the proxy, or the error net/http reported; nil when the proxy
	// answered.
	Err error

	status      string // the status line's text after the code, as the proxy sent it
	credentials bool   // the proxy URL carried credentials
	socksAuth   bool   // a SOCKS5 proxy refused to authenticate us
	protocol    string // the proxy does not speak the protocol of its URL: what it answered
}

func (e *ProxyError) Error() string {
	var b strings.Builder
	b.WriteString("wsreconnect: ")
	if e.Proxy != "" {
		fmt.Fprintf(&b, "proxy %s", e.Proxy)
	} else {
		b.WriteString("the proxy")
	}
	switch {
	case e.StatusCode != 0:
		status := strings.TrimSpace(fmt.Sprintf("%d %s", e.StatusCode, e.status))
		switch {
		case e.StatusCode == http.StatusProxyAuthRequired || e.StatusCode == http.StatusUnauthorized:
			fmt.Fprintf(&b, " refused the tunnel to %s: %s: ", e.Target, status)
			if e.credentials {
				b.WriteString("it rejected the credentials in the proxy URL")
			} else if e.Proxy != "" {
				b.WriteString("it needs credentials, and the proxy URL has none (scheme://user:password@host:port)")
			} else {
				b.WriteString("it needs credentials, or rejected those in the proxy URL (scheme://user:password@host:port)")
			}
		case e.StatusCode == http.StatusForbidden:
			fmt.Fprintf(&b, " refused the tunnel to %s: %s: it does not allow this destination (many proxies allow CONNECT to port 443 only)", e.Target, status)
		case e.StatusCode >= 500:
			fmt.Fprintf(&b, " could not open a tunnel to %s: %s", e.Target, status)
		default:
			fmt.Fprintf(&b, " refused the tunnel to %s: %s", e.Target, status)
		}
		var hs []string
		for _, k := range []string{"Proxy-Authenticate", "Retry-After"} {
			if v := e.Header.Get(k); v != "" {
				hs = append(hs, k+": "+v)
			}
		}
		if len(hs) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(hs, "; "))
		}
	case e.socksAuth && e.credentials:
		b.WriteString(" rejected the username and password in the proxy URL")
	case e.socksAuth:
		b.WriteString(" requires a username and password, and the proxy URL has none (socks5://user:password@host:port)")
	case e.SOCKSReply != 0:
		fmt.Fprintf(&b, " refused the connection to %s: %s (SOCKS5 reply %d)", e.Target, socksReplyText(e.SOCKSReply), e.SOCKSReply)
	case e.protocol != "":
		fmt.Fprintf(&b, " does not speak the protocol of its URL's scheme: %s", e.protocol)
	default:
		b.WriteString(" could not be reached")
	}
	if e.Err != nil && e.StatusCode == 0 && e.SOCKSReply == 0 {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *ProxyError) Unwrap() error { return e.Err }

// socksReplyText is how RFC 1928 §6 names a SOCKS5 reply code.
func socksReplyText(rep int) string {
	switch rep {
	case 1:
		return "general SOCKS server failure"
	case 2:
		return "connection not allowed by ruleset"
	case 3:
		return "network unreachable"
	case 4:
		return "host unreachable"
	case 5:
		return "connection refused"
	case 6:
		return "TTL expired"
	case 7:
		return "command not supported"
	case 8:
		return "address type not supported"
	}
	return "unknown reply"
}

// httpProxyStatus recognises the error net/http's own proxy support
// (http.Transport.Proxy) returns when a proxy answers a CONNECT with a
// status other than 200: a plain error whose text is the status line's
// reason phrase, right under the request's *url.Error. Only the standard
// phrases can be recognised. It returns the status and the host:port
// requested, or 0.
func httpProxyStatus(err error) (int, string) {
	var uerr *url.Error
	if !errors.As(err, &uerr) || uerr.Op == "parse" {
		return 0, ""
	}
	inner := uerr.Err
	if inner == nil || reflect.TypeOf(inner) != reflect.TypeOf(errors.New("")) {
		return 0, ""
	}
	msg := inner.Error()
	for code := 400; code < 600; code++ {
		if text := http.StatusText(code); text != "" && msg == text {
			target := ""
			if u, perr := url.Parse(uerr.URL); perr == nil {
				target = u.Host
				if u.Port() == "" {
					target = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
				}
			}
			return code, target
		}
	}
	return 0, ""
}
