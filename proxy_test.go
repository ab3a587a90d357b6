//go:build !js

package wsreconnect

// ProxyTransport against scripted proxies on loopback: what it sends, how
// it reads what they answer, and the rules by which it reads the
// environment. The real proxies (tinyproxy, squid, dante, microsocks) are
// in internal/proxytest.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

func TestEnvProxyRules(t *testing.T) {
	const (
		httpP  = "http://http-proxy.test:3128"
		httpsP = "http://https-proxy.test:3129"
		allP   = "socks5://all-proxy.test:1080"
	)
	tests := []struct {
		name   string
		env    map[string]string
		target string
		want   string // "" for direct
	}{
		{"nothing set", nil, "ws://example.test/", ""},
		{"ws takes HTTP_PROXY", map[string]string{"HTTP_PROXY": httpP, "HTTPS_PROXY": httpsP}, "ws://example.test/", httpP},
		{"http takes HTTP_PROXY", map[string]string{"HTTP_PROXY": httpP, "HTTPS_PROXY": httpsP}, "http://example.test/", httpP},
		{"wss takes HTTPS_PROXY", map[string]string{"HTTP_PROXY": httpP, "HTTPS_PROXY": httpsP}, "wss://example.test/", httpsP},
		{"https takes HTTPS_PROXY", map[string]string{"HTTP_PROXY": httpP, "HTTPS_PROXY": httpsP}, "https://example.test/", httpsP},
		{"wss without HTTPS_PROXY goes direct", map[string]string{"HTTP_PROXY": httpP}, "wss://example.test/", ""},
		{"lower case", map[string]string{"http_proxy": httpP}, "ws://example.test/", httpP},
		{"upper case wins", map[string]string{"HTTP_PROXY": httpP, "http_proxy": "http://other.test"}, "ws://example.test/", httpP},
		{"ALL_PROXY stands in", map[string]string{"ALL_PROXY": allP}, "wss://example.test/", allP},
		{"all_proxy stands in", map[string]string{"all_proxy": allP}, "ws://example.test/", allP},
		{"ALL_PROXY only stands in", map[string]string{"ALL_PROXY": allP, "https_proxy": httpsP}, "wss://example.test/", httpsP},
		{"no scheme is http", map[string]string{"HTTP_PROXY": "proxy.test:3128"}, "ws://example.test/", "http://proxy.test:3128"},
		{"IP without scheme", map[string]string{"HTTP_PROXY": "10.1.2.3:3128"}, "ws://example.test/", "http://10.1.2.3:3128"},
		{"credentials kept", map[string]string{"HTTP_PROXY": "http://u:p@proxy.test"}, "ws://example.test/", "http://u:p@proxy.test"},
		{"localhost direct", map[string]string{"HTTP_PROXY": httpP}, "ws://localhost:8080/", ""},
		{"loopback direct", map[string]string{"HTTP_PROXY": httpP}, "ws://127.0.0.2:8080/", ""},
		{"IPv6 loopback direct", map[string]string{"HTTP_PROXY": httpP}, "ws://[::1]:8080/", ""},
		{"other scheme direct", map[string]string{"HTTP_PROXY": httpP, "ALL_PROXY": allP}, "ftp://example.test/", ""},

		{"NO_PROXY *", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "*"}, "ws://example.test/", ""},
		{"NO_PROXY domain", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "example.test"}, "ws://example.test/", ""},
		{"NO_PROXY domain, subdomain", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "example.test"}, "ws://a.b.example.test/", ""},
		{"NO_PROXY domain, other", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "example.test"}, "ws://badexample.test/", httpP},
		{"NO_PROXY .domain, subdomain", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": ".example.test"}, "ws://a.example.test/", ""},
		{"NO_PROXY .domain, itself", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": ".example.test"}, "ws://example.test/", httpP},
		{"NO_PROXY *.domain", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "*.example.test"}, "ws://a.example.test/", ""},
		{"NO_PROXY case", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "EXAMPLE.test"}, "ws://Example.TEST/", ""},
		{"NO_PROXY list with spaces", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "a.test, example.test ,b.test"}, "ws://example.test/", ""},
		{"no_proxy lower case", map[string]string{"HTTP_PROXY": httpP, "no_proxy": "example.test"}, "ws://example.test/", ""},
		{"NO_PROXY port match", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "example.test:8080"}, "ws://example.test:8080/", ""},
		{"NO_PROXY port mismatch", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "example.test:8080"}, "ws://example.test:9090/", httpP},
		{"NO_PROXY default port", map[string]string{"HTTPS_PROXY": httpsP, "NO_PROXY": "example.test:443"}, "wss://example.test/", ""},
		{"NO_PROXY IP", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "10.0.0.7"}, "ws://10.0.0.7/", ""},
		{"NO_PROXY IP, other", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "10.0.0.7"}, "ws://10.0.0.8/", httpP},
		{"NO_PROXY CIDR", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "10.0.0.0/8"}, "ws://10.9.8.7/", ""},
		{"NO_PROXY CIDR, outside", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "10.0.0.0/8"}, "ws://11.0.0.1/", httpP},
		{"NO_PROXY CIDR is no domain", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "10.0.0.0/8"}, "ws://example.test/", httpP},
		{"NO_PROXY IPv6", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "[2001:db8::1]:8080"}, "ws://[2001:db8::1]:8080/", ""},
		{"NO_PROXY IPv6 CIDR", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "2001:db8::/32"}, "ws://[2001:db8::5]/", ""},
		{"NO_PROXY domain is no IP", map[string]string{"HTTP_PROXY": httpP, "NO_PROXY": "0.1"}, "ws://10.0.0.1/", httpP},
		{"NO_PROXY with ALL_PROXY", map[string]string{"ALL_PROXY": allP, "NO_PROXY": "example.test"}, "wss://example.test/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := url.Parse(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			got, err := envProxy(func(k string) string { return tt.env[k] }, target)
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if gotS := urlString(got); gotS != tt.want {
				t.Errorf("proxy %q, want %q", gotS, tt.want)
			}
		})
	}
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// A proxy setting that is not a URL is a misconfiguration that stops,
// saying which variable, without what could be a password; so is
// HTTP_PROXY in a CGI program (httpoxy).
func TestEnvProxyErrors(t *testing.T) {
	target, _ := url.Parse("ws://example.test/")
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HTTP_PROXY": "http://user:hunter2pass@[::1"}, `HTTP_PROXY is not a proxy URL: "REDACTED@[::1"`},
		{map[string]string{"ALL_PROXY": "%zz"}, `ALL_PROXY is not a proxy URL: "%zz"`},
		{map[string]string{"HTTP_PROXY": "http://proxy.test", "REQUEST_METHOD": "GET"}, "refusing to use HTTP_PROXY in a CGI program"},
	} {
		_, err := envProxy(func(k string) string { return tt.env[k] }, target)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: error %v, want %q", tt.env, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2pass") {
			t.Errorf("error %q shows the password", err)
		}
		if !permanentDialError(err) {
			t.Errorf("env %v: error %v is not a misconfiguration", tt.env, err)
		}
	}
}

// scriptedProxy is a proxy on loopback that reads each request (CONNECT,
// or a SOCKS5 greeting) and hands the connection to serve.
type scriptedProxy struct {
	ln net.Listener
	wg sync.WaitGroup
}

func newScriptedProxy(t *testing.T, serve func(conn net.Conn)) *scriptedProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &scriptedProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *scriptedProxy) url(scheme string) *url.URL {
	return &url.URL{Scheme: scheme, Host: p.ln.Addr().String()}
}

// tunnel answers a CONNECT with 200 and relays bytes to the target it
// names; requests records each CONNECT.
func tunnel(requests chan<- *http.Request) func(net.Conn) {
	return func(conn net.Conn) {
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		requests <- req
		up, err := net.Dial("tcp", req.Host)
		if err != nil {
			io.WriteString(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
			return
		}
		defer up.Close()
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{})
		go func() {
			io.Copy(up, br)
			up.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(conn, up)
		conn.Close()
		<-done
	}
}

// answer answers a CONNECT with a canned response.
func answer(resp string) func(net.Conn) {
	return func(conn net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
			io.WriteString(conn, resp)
		}
	}
}

// wsServer is an echo server on loopback, as a ws:// URL (ending in /).
func wsServer(t *testing.T) string {
	t.Helper()
	u, _, cleanup := wstest.NewServer(wstest.Echo()).Listen()
	t.Cleanup(cleanup)
	return u
}

func dialThrough(t *testing.T, tr *ProxyTransport, wsURL string, opts ...Option) (*Conn, error) {
	t.Helper()
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	opts = append([]Option{WithInitialDelay(10 * time.Millisecond), WithMaxDelay(50 * time.Millisecond)}, opts...)
	return Dial(t.Context(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: hc})
	}, opts...)
}

// A ws:// URL goes through the tunnel of a CONNECT too, with the proxy
// URL's credentials as Basic Proxy-Authorization and the Base's
// ProxyConnectHeader; the handshake itself never reaches the proxy.
func TestProxyTransportTunnelsWS(t *testing.T) {
	noLeaks(t)
	target := wsServer(t)
	requests := make(chan *http.Request, 10)
	p := newScriptedProxy(t, tunnel(requests))
	proxy := p.url("http")
	proxy.User = url.UserPassword("alice", "s3cret")
	tr := &ProxyTransport{
		Base:  &http.Transport{ProxyConnectHeader: http.Header{"X-Team": {"feeds"}}},
		Proxy: http.ProxyURL(proxy),
	}
	c, err := dialThrough(t, tr, target+"feed?token=abc")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(t.Context(), websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(t.Context()); err != nil || string(msg) != "hi" {
		t.Fatalf("Read: %q, %v", msg, err)
	}
	req := <-requests
	host := strings.TrimSuffix(strings.TrimPrefix(target, "ws://"), "/")
	if req.Method != http.MethodConnect || req.Host != host || req.RequestURI != host {
		t.Errorf("request %s %s (Host %s), want CONNECT %s", req.Method, req.RequestURI, req.Host, host)
	}
	if got := req.Header.Get("Proxy-Authorization"); got != "Basic YWxpY2U6czNjcmV0" {
		t.Errorf("Proxy-Authorization %q", got)
	}
	if req.Header.Get("X-Team") != "feeds" {
		t.Errorf("ProxyConnectHeader not sent: %v", req.Header)
	}
}

// Each answer a proxy may give to CONNECT, and what the Conn decides: the
// proxy's 503 takes the standard schedule (the proxy cannot reach the
// server; the server is not overloaded), and its Retry-After is honoured;
// a 407 names the missing credentials; a proxy that answers something
// other than HTTP is a misconfiguration.
func TestProxyAnswersAreClassified(t *testing.T) {
	noLeaks(t)
	target := wsServer(t)
	for _, tt := range []struct {
		name       string
		serve      func(net.Conn)
		decision   Decision
		status     int
		retryAfter time.Duration
		says       string
	}{
		{"407", answer("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate\r\nContent-Length: 5\r\n\r\ndenied"),
			Stop, 407, 0, "407 Proxy Authentication Required: it needs credentials, and the proxy URL has none (scheme://user:password@host:port) (Proxy-Authenticate: Negotiate)"},
		{"403", answer("HTTP/1.1 403 Forbidden\r\n\r\n"), Stop, 403, 0, "403 Forbidden: it does not allow this destination"},
		{"405", answer("HTTP/1.1 405 Method Not Allowed\r\n\r\n"), Stop, 405, 0, "refused the tunnel to"},
		{"429", answer("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\n\r\n"), RetryOverload, 429, 2 * time.Second, "429 Too Many Requests (Retry-After: 2)"},
		{"502", answer("HTTP/1.1 502 Bad Gateway\r\n\r\n"), Retry, 502, 0, "could not open a tunnel to"},
		{"503 + Retry-After", answer("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\n\r\n"), Retry, 503, 3 * time.Second, "503 Service Unavailable (Retry-After: 3)"},
		{"504", answer("HTTP/1.1 504 Gateway Timeout\r\n\r\n"), Retry, 504, 0, "504 Gateway Timeout"},
		{"closed at once", func(net.Conn) {}, Retry, 0, 0, "could not be reached: "},
		{"not HTTP", answer("\x05\xff"), Stop, 0, 0, "does not speak the protocol of its URL's scheme"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newScriptedProxy(t, tt.serve)
			ends := make(chan Disconnect, 1)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			hc := &http.Client{Transport: &ProxyTransport{Proxy: http.ProxyURL(p.url("http"))}}
			_, _ = Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
				return websocket.Dial(ctx, target, &websocket.DialOptions{HTTPClient: hc})
			}, WithOnDisconnect(func(d Disconnect) {
				select {
				case ends <- d:
					cancel() // one attempt is enough
				default:
				}
			}))
			d := <-ends
			var pe *ProxyError
			if !errors.As(d.Err, &pe) || pe.StatusCode != tt.status || pe.Proxy != "http://"+p.ln.Addr().String() {
				t.Fatalf("Disconnect %v: want a ProxyError with status %d", d, tt.status)
			}
			if d.Decision != tt.decision || d.RetryAfter != tt.retryAfter || d.HTTPStatus != 0 {
				t.Errorf("Disconnect %v (RetryAfter %v): want %v, RetryAfter %v", d, d.RetryAfter, tt.decision, tt.retryAfter)
			}
			if tt.retryAfter > 0 && d.Delay < tt.retryAfter {
				t.Errorf("delay %v, want at least the Retry-After %v", d.Delay, tt.retryAfter)
			}
			if !strings.Contains(d.Err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", d.Err, tt.says)
			}
		})
	}
}

// A proxy that never answers the CONNECT: the attempt times out as any
// dial does, and nothing of it is left running (net/http would dial on in
// the background for a connection it could pool; this one is of no use).
// Close cuts a hanging CONNECT short as well.
func TestHangingProxyEndsWithTheAttempt(t *testing.T) {
	noLeaks(t)
	release := make(chan struct{})
	defer close(release)
	p := newScriptedProxy(t, func(conn net.Conn) {
		http.ReadRequest(bufio.NewReader(conn))
		<-release
	})
	ends := make(chan Disconnect, 10)
	hc := &http.Client{Transport: &ProxyTransport{Proxy: http.ProxyURL(p.url("http"))}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var c *Conn
	var dialErr error
	dialed := make(chan struct{})
	go func() {
		defer close(dialed)
		c, dialErr = Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, "ws://127.0.0.1:1/", &websocket.DialOptions{HTTPClient: hc})
		}, WithDialTimeout(100*time.Millisecond), WithInitialDelay(5*time.Second), WithOnDisconnect(func(d Disconnect) { ends <- d }))
	}()
	var d Disconnect
	select {
	case d = <-ends:
	case <-dialed:
		t.Fatalf("Dial returned before any attempt ended: %v", dialErr)
	}
	if !strings.Contains(d.Err.Error(), "dial timed out after 100ms") || d.Decision != Retry {
		t.Fatalf("Disconnect %v, want a dial timeout and a retry", d)
	}
	cancel() // Dial gives up during the wait that follows
	<-dialed
	if c != nil || dialErr == nil {
		t.Fatalf("Dial: %v, %v", c, dialErr)
	}
	hc.CloseIdleConnections()
}

// The DialTLSContext of a Base would bypass the tunnel: a misconfiguration
// that stops at the first attempt; so does a proxy URL of a scheme it
// does not speak.
func TestProxyTransportMisconfigurationStops(t *testing.T) {
	noLeaks(t)
	target := wsServer(t)
	tr := &ProxyTransport{Base: &http.Transport{DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return tls.Dial(network, addr, nil)
	}}}
	_, err := dialThrough(t, tr, target)
	var se *StopError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "Base.DialTLSContext is set") {
		t.Errorf("Dial: %v, want a stop about DialTLSContext", err)
	}
	ftp, _ := url.Parse("ftp://user:topsecret@proxy.test:21")
	_, err = dialThrough(t, &ProxyTransport{Proxy: http.ProxyURL(ftp)}, target)
	if !errors.As(err, &se) || !strings.Contains(err.Error(), `proxy ftp://proxy.test:21: unsupported scheme "ftp"`) {
		t.Errorf("Dial: %v, want a stop about the scheme", err)
	}
	if err != nil && strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %q shows the password", err)
	}
}

// The SOCKS5 exchange, byte for byte, for a name, an IPv4 and an IPv6
// address, with a reply whose bound address is a name (which must be
// read in full, or the tunnel would start with its leftovers).
func TestSOCKSConnectBytes(t *testing.T) {
	noLeaks(t)
	for _, tt := range []struct {
		addr string
		want []byte // the CONNECT request
	}{
		{"example.test:443", append(append([]byte{5, 1, 0, 3, 12}, "example.test"...), 1, 187)},
		{"10.1.2.3:80", []byte{5, 1, 0, 1, 10, 1, 2, 3, 0, 80}},
		{"[2001:db8::1]:8080", append(append([]byte{5, 1, 0, 4}, net.ParseIP("2001:db8::1")...), 0x1f, 0x90)},
	} {
		client, server := net.Pipe()
		got := make(chan []byte, 1)
		go func() {
			defer server.Close()
			var greet [4]byte // 5, 2 methods: 0 and 2
			io.ReadFull(server, greet[:])
			server.Write([]byte{5, 2})
			var auth [1 + 1 + 3 + 1 + 4]byte
			io.ReadFull(server, auth[:])
			server.Write([]byte{1, 0})
			req := make([]byte, len(tt.want))
			io.ReadFull(server, req)
			got <- req
			reply := append([]byte{5, 0, 0, 3, 4}, "bind"...)
			server.Write(binary.BigEndian.AppendUint16(reply, 1080))
			server.Write([]byte("tunnel"))
		}()
		pe := &ProxyError{}
		if err := socksConnect(client, url.UserPassword("bob", "pass"), tt.addr, pe); err != nil {
			t.Fatalf("%s: %v", tt.addr, err)
		}
		if req := <-got; string(req) != string(tt.want) {
			t.Errorf("%s: CONNECT % x, want % x", tt.addr, req, tt.want)
		}
		rest := make([]byte, 6)
		if _, err := io.ReadFull(client, rest); err != nil || string(rest) != "tunnel" {
			t.Errorf("%s: the tunnel starts with %q, %v", tt.addr, rest, err)
		}
		client.Close()
	}
}

// Whatever the environment holds, choosing a proxy never panics, never
// quotes a password in its error, and NO_PROXY=* always goes direct.
func FuzzEnvProxy(f *testing.F) {
	f.Add("http://user:pw0rd@proxy.test:3128", "example.test,.corp,10.0.0.0/8", "ws://a.corp:80/")
	f.Add("proxy.test", "[::1]:80, *.example.test", "wss://[2001:db8::1]:443/")
	f.Add("socks5h://u:p@[::1", "*", "http://x/")
	f.Add("%zz@host", ":80,[]", "https://EXAMPLE.test./")
	f.Fuzz(func(t *testing.T, proxy, noProxy, target string) {
		u, err := url.Parse(target)
		if err != nil {
			return
		}
		env := map[string]string{"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": noProxy}
		got, err := envProxy(func(k string) string { return env[k] }, u)
		if err != nil {
			userinfo := proxy
			if i := strings.Index(userinfo, "://"); i >= 0 {
				userinfo = userinfo[i+3:]
			}
			if i := strings.LastIndex(userinfo, "@"); i > 0 {
				if _, pw, ok := strings.Cut(userinfo[:i], ":"); ok && len(pw) >= 4 && strings.Contains(err.Error(), pw) {
					t.Fatalf("error %q quotes the password %q", err, pw)
				}
			}
			return
		}
		if got != nil && strings.TrimSpace(noProxy) == "*" {
			t.Fatalf("NO_PROXY=* and still the proxy %v", got)
		}
	})
}
