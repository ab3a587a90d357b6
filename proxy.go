//go:build !js

package wsreconnect

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"
)

// ProxyTransport is an http.RoundTripper for websocket.DialOptions'
// HTTPClient that reaches the server through a proxy the way a WebSocket
// needs it: through a tunnel (CONNECT), for ws:// as for wss://.
//
// net/http's own proxy support (http.Transport.Proxy) tunnels only
// https:// (wss://) requests; a ws:// handshake goes to the proxy as a
// plain request, whose Upgrade header a proxy drops, and the server
// answers 426. ProxyTransport tunnels both, through an HTTP proxy
// (http://), a proxy reached over TLS (https://) or a SOCKS5 proxy
// (socks5://, socks5h://; both let the proxy resolve the name, as net/http
// does), with the credentials in the proxy URL (user:password@). It reads
// the proxy settings at every request, so a changed environment applies
// at the next reconnect. A failure on the way to the server is a
// [*ProxyError] that names the proxy without its credentials, and
// [DefaultPolicy] tells a proxy that wants credentials (stop) from one
// that is down (retry).
//
// Make one and share it between attempts:
//
//	client := &http.Client{Transport: &wsreconnect.ProxyTransport{}}
//	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
//		return websocket.Dial(ctx, "wss://example.com/feed", &websocket.DialOptions{HTTPClient: client})
//	}
//
// It keeps no connection alive between handshakes (a WebSocket handshake
// that succeeds takes its connection over; one that fails has no use for
// it), and a dial it makes for a request ends with that request: nothing
// is left running once the DialFunc has returned.
//
// Its fields must not change once it is in use. It does not exist in the
// browser (GOOS=js), whose WebSocket uses the browser's proxy settings.
type ProxyTransport struct {
	// Base is the transport whose settings it copies: TLSClientConfig
	// (for the server), DialContext (to reach the proxy, or the server
	// when there is none), timeouts, ProxyConnectHeader and
	// GetProxyConnectHeader (added to every CONNECT). Its DialTLSContext
	// must be nil: the TLS connection to the server is made through the
	// tunnel. Defaults to http.DefaultTransport's settings.
	Base *http.Transport

	// Proxy returns the proxy URL for a request (http://, https://,
	// socks5:// or socks5h://, with user:password@ when the proxy wants
	// credentials), or nil to connect directly. The request's URL has the
	// scheme http or https (coder/websocket's ws and wss). Defaults to
	// Base.Proxy, or to the environment when that is nil too or is
	// http.ProxyFromEnvironment: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and
	// NO_PROXY (or their lower-case forms), read at every request, with
	// net/http's rules (localhost and loopback addresses go direct).
	Proxy func(*http.Request) (*url.URL, error)

	// ProxyTLSConfig configures TLS to an https:// proxy; its ServerName
	// defaults to the proxy's host. Defaults to Base.TLSClientConfig with
	// the proxy's host as ServerName.
	ProxyTLSConfig *tls.Config

	once  sync.Once
	rt    *http.Transport
	proxy func(*http.Request) (*url.URL, error)
	hop   func(ctx context.Context, network, addr string) (net.Conn, error)
	err   error
}

// routeKey carries a request's route from RoundTrip to the dial.
type routeKey struct{}

// route is where a request goes: through proxy, or direct when it is nil.
// req is the request's own ctx: the dial ends with it (net/http dials on
// with a ctx of its own, for a connection we would not keep).
type route struct {
	proxy *url.URL
	req   context.Context
}

func (t *ProxyTransport) init() {
	base := t.Base
	if base == nil {
		base, _ = http.DefaultTransport.(*http.Transport)
		if base == nil {
			base = &http.Transport{}
		}
	}
	//lint:ignore SA1019 DialTLS is deprecated, and net/http still uses it
	if base.DialTLSContext != nil || base.DialTLS != nil {
		t.err = &configError{msg: "wsreconnect: ProxyTransport: Base.DialTLSContext is set: the TLS connection to the server is made through the tunnel; configure it with Base.TLSClientConfig"}
		return
	}
	t.proxy = t.Proxy
	if t.proxy == nil {
		t.proxy = base.Proxy
	}
	if t.proxy == nil || sameFunc(t.proxy, http.ProxyFromEnvironment) {
		t.proxy = proxyFromEnvironment
	}
	t.hop = base.DialContext
	if t.hop == nil {
		t.hop = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	rt := base.Clone()
	rt.Proxy = nil // net/http must not forward ws:// requests: the dial tunnels
	rt.OnProxyConnectResponse = nil
	rt.DialContext = t.dial // net/http prefers it to the deprecated Dial
	rt.DisableKeepAlives = true
	t.rt = rt
}

// sameFunc reports whether f and g are the same top-level function.
func sameFunc(f, g func(*http.Request) (*url.URL, error)) bool {
	return reflect.ValueOf(f).Pointer() == reflect.ValueOf(g).Pointer()
}

// RoundTrip chooses the request's proxy, then sends it through a
// connection that dial makes for it.
func (t *ProxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.once.Do(t.init)
	if t.err != nil {
		return nil, t.err
	}
	proxy, err := t.proxy(req)
	if err != nil {
		return nil, err
	}
	if proxy != nil {
		switch proxy.Scheme {
		case "http", "https", "socks5", "socks5h":
		default:
			return nil, &configError{msg: fmt.Sprintf("wsreconnect: proxy %s: unsupported scheme %q (http, https, socks5 or socks5h)", proxyName(proxy), proxy.Scheme)}
		}
	}
	ctx := context.WithValue(req.Context(), routeKey{}, &route{proxy: proxy, req: req.Context()})
	return t.rt.RoundTrip(req.WithContext(ctx))
}

// CloseIdleConnections ends the dials under way that no request waits
// for (there are no idle connections: none is kept).
func (t *ProxyTransport) CloseIdleConnections() {
	t.once.Do(t.init)
	if t.rt != nil {
		t.rt.CloseIdleConnections()
	}
}

// dial connects to addr for a request: directly, or through the tunnel of
// the request's proxy. It ends when the request does.
func (t *ProxyTransport) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r, _ := ctx.Value(routeKey{}).(*route)
	if r == nil {
		return nil, errors.New("wsreconnect: ProxyTransport dialled outside RoundTrip")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.req, cancel)()
	if r.proxy == nil {
		return t.hop(ctx, network, addr)
	}
	pe := &ProxyError{Proxy: proxyName(r.proxy), Target: addr, credentials: r.proxy.User != nil}
	conn, err := t.hop(ctx, "tcp", proxyAddr(r.proxy))
	if err != nil {
		pe.Err = err
		return nil, pe
	}
	// A ctx that ends interrupts the exchange with the proxy.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	tunnel, err := t.handshake(ctx, conn, r.proxy, addr, pe)
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("wsreconnect: proxy %s: the dial ended before the tunnel was open: %w", pe.Proxy, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return tunnel, nil
}

// withErr returns pe with Err set to err, if err is not pe itself.
func (pe *ProxyError) withErr(err error) error {
	if err != nil && err != error(pe) && pe.Err == nil {
		pe.Err = err
	}
	return pe
}

// handshake opens the tunnel to addr on conn, a connection to proxy. It
// returns the connection to use, or pe (or an error it wraps).
func (t *ProxyTransport) handshake(ctx context.Context, conn net.Conn, proxy *url.URL, addr string, pe *ProxyError) (net.Conn, error) {
	raw := conn
	if proxy.Scheme == "https" {
		var cfg *tls.Config
		switch {
		case t.ProxyTLSConfig != nil:
			cfg = t.ProxyTLSConfig.Clone()
		case t.rt.TLSClientConfig != nil:
			cfg = t.rt.TLSClientConfig.Clone()
			cfg.ServerName = "" // the server's name, not the proxy's
		default:
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = proxy.Hostname()
		}
		cfg.NextProtos = nil // the proxy speaks HTTP/1.1 CONNECT
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, pe.withErr(err)
		}
		conn = tc
	}
	switch proxy.Scheme {
	case "socks5", "socks5h":
		if err := socksConnect(conn, proxy.User, addr, pe); err != nil {
			return nil, err
		}
		return conn, nil
	}
	br, err := t.connect(ctx, conn, proxy, addr, pe)
	if err != nil {
		return nil, err
	}
	if br.Buffered() == 0 && conn == raw {
		return conn, nil
	}
	return &tunnelConn{Conn: conn, r: br, raw: raw}, nil
}

// connect asks an HTTP proxy on conn for a tunnel to addr (RFC 9110
// §9.3.6). It returns the reader of conn that read the proxy's answer.
func (t *ProxyTransport) connect(ctx context.Context, conn net.Conn, proxy *url.URL, addr string, pe *ProxyError) (*bufio.Reader, error) {
	hdr := t.rt.ProxyConnectHeader
	if t.rt.GetProxyConnectHeader != nil {
		var err error
		if hdr, err = t.rt.GetProxyConnectHeader(ctx, proxy, addr); err != nil {
			return nil, err
		}
	}
	hdr = hdr.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	if u := proxy.User; u != nil {
		pass, _ := u.Password()
		hdr.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: hdr}
	if err := req.Write(conn); err != nil {
		return nil, pe.withErr(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isNetError(err) {
			pe.protocol = "its answer to CONNECT is not HTTP: " + err.Error()
		}
		return nil, pe.withErr(err)
	}
	// resp.Body is not read: after a 2xx it would be the tunnel itself.
	if resp.StatusCode/100 == 2 {
		return br, nil
	}
	pe.StatusCode = resp.StatusCode
	pe.status = snippet(strings.TrimSpace(strings.TrimPrefix(resp.Status, fmt.Sprint(resp.StatusCode))))
	for _, k := range []string{"Proxy-Authenticate", "Retry-After"} {
		if v := resp.Header.Get(k); v != "" {
			if pe.Header == nil {
				pe.Header = http.Header{}
			}
			pe.Header.Set(k, v)
		}
	}
	return nil, pe
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// tunnelConn is a tunnel whose first bytes may have been read with the
// proxy's answer, or that runs over TLS to the proxy. Close closes the
// socket at once: a TLS close_notify to the proxy could wait for a peer
// that is gone.
type tunnelConn struct {
	net.Conn
	r   io.Reader
	raw net.Conn
}

func (c *tunnelConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *tunnelConn) Close() error               { return c.raw.Close() }

// proxyName is the proxy's URL without credentials: scheme://host[:port].
func proxyName(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}

// proxyAddr is the proxy's host:port, with the port its scheme implies by
// default (as net/http has them).
func proxyAddr(u *url.URL) string {
	if port := u.Port(); port != "" {
		return u.Host
	}
	port := map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
	return net.JoinHostPort(u.Hostname(), port)
}
