//go:build !js

package wsreconnect

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// proxyFromEnvironment chooses the proxy for req from the environment as
// it is now: net/http's ProxyFromEnvironment reads it once per process, so
// a changed setting would never reach a Conn that reconnects for days.
//
// The rules are net/http's (golang.org/x/net/http/httpproxy), with
// ALL_PROXY added as curl has it:
//
//   - HTTPS_PROXY (or https_proxy) for wss:// and https:// URLs,
//     HTTP_PROXY (or http_proxy) for ws:// and http://; ALL_PROXY (or
//     all_proxy) for either when that one is unset. The upper-case name
//     wins when both are set. In a CGI program (REQUEST_METHOD set)
//     HTTP_PROXY is refused: a request's "Proxy:" header would set it
//     (httpoxy).
//   - A value without a scheme is an http:// proxy; the schemes are http,
//     https, socks5 and socks5h. A value that is not a URL is an error,
//     not a silent direct connection.
//   - NO_PROXY (or no_proxy): comma-separated; "*" bypasses the proxy for
//     every host; an IP address or a CIDR range matches addresses; a
//     domain matches itself and its subdomains, and with a leading "." or
//     "*." its subdomains only; an entry with a port matches that port
//     only. Non-ASCII names are compared as written (no IDNA).
//   - "localhost" and loopback addresses never go through the proxy.
func proxyFromEnvironment(req *http.Request) (*url.URL, error) {
	return envProxy(os.Getenv, req.URL)
}

// envProxy applies the rules of proxyFromEnvironment with getenv.
func envProxy(getenv func(string) string, target *url.URL) (*url.URL, error) {
	get := func(names ...string) (string, string) {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return n, v
			}
		}
		return "", ""
	}
	var name, value string
	switch strings.ToLower(target.Scheme) {
	case "https", "wss":
		name, value = get("HTTPS_PROXY", "https_proxy")
	case "http", "ws":
		name, value = get("HTTP_PROXY", "http_proxy")
		if value != "" && getenv("REQUEST_METHOD") != "" {
			return nil, &configError{msg: "wsreconnect: refusing to use " + name + " in a CGI program (REQUEST_METHOD is set): a request's Proxy header sets it (httpoxy)"}
		}
	default:
		return nil, nil
	}
	if value == "" {
		name, value = get("ALL_PROXY", "all_proxy")
	}
	if value == "" {
		return nil, nil
	}
	proxy, err := parseProxyURL(value)
	if err != nil {
		return nil, &configError{msg: "wsreconnect: " + name + " is not a proxy URL: " + redactedProxyValue(value)}
	}
	host, port := target.Hostname(), target.Port()
	if port == "" {
		port = map[string]string{"http": "80", "ws": "80", "https": "443", "wss": "443"}[strings.ToLower(target.Scheme)]
	}
	_, noProxy := get("NO_PROXY", "no_proxy")
	if bypassProxy(host, port, noProxy) {
		return nil, nil
	}
	return proxy, nil
}

// parseProxyURL reads a proxy setting as net/http does: "host:port" is an
// http:// proxy. Its error never quotes the setting, which may hold a
// password.
func parseProxyURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		if !strings.Contains(v, "://") {
			if u2, err2 := url.Parse("http://" + v); err2 == nil && u2.Host != "" {
				return u2, nil
			}
		}
		return nil, errors.New("not a URL")
	}
	return u, nil
}

// redactedProxyValue shows a proxy setting that is not a URL without what
// could be a password: everything before the last "@".
func redactedProxyValue(v string) string {
	if i := strings.LastIndex(v, "@"); i >= 0 {
		v = "REDACTED@" + v[i+1:]
	}
	return `"` + snippet(v) + `"`
}

// bypassProxy reports whether host:port goes direct under noProxy (the
// value of NO_PROXY), or as localhost or a loopback address.
func bypassProxy(host, port, noProxy string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" {
		return true
	}
	ip, ipErr := netip.ParseAddr(host)
	if ipErr == nil {
		ip = ip.Unmap()
		if ip.IsLoopback() {
			return true
		}
	}
	for _, p := range strings.Split(noProxy, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if p == "*" {
			return true
		}
		if prefix, err := netip.ParsePrefix(p); err == nil {
			if ipErr == nil && prefix.Contains(ip) {
				return true
			}
			continue
		}
		phost, pport, err := net.SplitHostPort(p)
		if err != nil {
			phost, pport = p, ""
		}
		phost = strings.TrimSuffix(strings.Trim(phost, "[]"), ".")
		if phost == "" || pport != "" && pport != port {
			continue
		}
		if pip, err := netip.ParseAddr(phost); err == nil {
			if ipErr == nil && pip.Unmap() == ip {
				return true
			}
			continue
		}
		if ipErr == nil {
			continue // a domain never matches an address
		}
		subdomainsOnly := strings.HasPrefix(phost, ".") || strings.HasPrefix(phost, "*.")
		phost = strings.TrimPrefix(strings.TrimPrefix(phost, "*"), ".")
		if strings.HasSuffix(host, "."+phost) || !subdomainsOnly && host == phost {
			return true
		}
	}
	return false
}
