package proxytest

// The scenarios: every kind of proxy and URL, what each answer of a proxy
// becomes (a stop or a retry, and what the error says), a proxy that
// restarts and one that cuts idle tunnels, and the environment read at
// every attempt.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// proxyURL parses a proxy URL.
func proxyURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// via is a ProxyTransport to the server srv through proxy (nil: direct).
func via(srv *echoServer, proxy *url.URL, d *dialer) *wsreconnect.ProxyTransport {
	base := &http.Transport{TLSClientConfig: srv.tlsConfig()}
	if d != nil {
		base.DialContext = d.DialContext
	}
	return &wsreconnect.ProxyTransport{Base: base, Proxy: http.ProxyURL(proxy)}
}

// The whole matrix a user may meet: ws:// and wss:// through an HTTP
// proxy (tinyproxy, squid), a proxy reached over TLS (squid's
// https_port) and a SOCKS5 proxy (dante), each tunnelled: the client
// dials only the proxy, and the server answers through it.
func TestTunnels(t *testing.T) {
	noLeaks(t)
	tiny := tinyproxy(t)
	sq := squid(t)
	socks := dante(t)
	for _, secure := range []bool{false, true} {
		srv := newEchoServer(t, secure)
		for _, p := range []struct {
			name  string
			proxy string
		}{
			{"tinyproxy", "http://" + tiny.addr},
			{"squid", "http://" + sq.addr},
			{"squid over TLS", "https://" + sq.tlsAddr},
			{"dante socks5", "socks5://" + socks.addr},
			{"dante socks5h", "socks5h://" + socks.addr},
		} {
			scheme := map[bool]string{false: "ws", true: "wss"}[secure]
			t.Run(scheme+" through "+p.name, func(t *testing.T) {
				d := &dialer{}
				tr := via(srv, proxyURL(t, p.proxy), d)
				tr.ProxyTLSConfig = sq.proxyTLS()
				cl, err := dialVia(t, tr, srv.wsURL(""), nil)
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				cl.echo("hello through " + p.name)
				want := proxyURL(t, p.proxy).Host
				if got := d.dialled(); !slices.Equal(got, []string{want}) {
					t.Errorf("dialled %v, want the proxy only (%s)", got, want)
				}
				cl.c.Close(websocket.StatusNormalClosure, "")
			})
		}
	}
}

// What happens without ProxyTransport, with net/http's own proxy support
// (http.Transport.Proxy) as the issue found it: a ws:// handshake is sent
// to tinyproxy as a plain request, which loses its Upgrade header, and
// the server answers 426: the error says a proxy dropped the header, and
// which (Via). A wss:// handshake through a proxy that wants credentials
// is a CONNECT answered 407, which net/http reports by its reason phrase
// only: it is recognised, and stops instead of being retried for ever.
func TestNetHTTPProxyFailuresAreNamed(t *testing.T) {
	noLeaks(t)
	tiny := tinyproxy(t)
	srv := newEchoServer(t, false)
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL(t, "http://"+tiny.addr))}
	_, err := dialWith(t.Context(), t, &http.Client{Transport: tr}, srv.wsURL(""), nil)
	var he *wsreconnect.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("Dial: %v, want a 426 HandshakeError", err)
	}
	for _, want := range []string{"did not see the request's Upgrade header", "Via: 1.1", "tinyproxy", "ProxyTransport"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	authed := tinyproxy(t, "BasicAuth alice s3cretpass")
	secure := newEchoServer(t, true)
	tr = &http.Transport{Proxy: http.ProxyURL(proxyURL(t, "http://"+authed.addr)), TLSClientConfig: secure.tlsConfig()}
	cl, err := dialWith(t.Context(), t, &http.Client{Transport: tr}, secure.wsURL(""), nil)
	pe := proxyError(t, err)
	if pe.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("ProxyError %+v, want status 407", pe)
	}
	if d := cl.next(); d.Decision != wsreconnect.Stop || d.Attempt != 1 {
		t.Fatalf("Disconnect %v: want a stop at the first attempt", d)
	}
	if !strings.Contains(err.Error(), "407 Proxy Authentication Required: it needs credentials") {
		t.Errorf("error %q does not say the proxy needs credentials", err)
	}
}

// A proxy that wants credentials: without them, Dial stops at once with
// an error that names the proxy and says what is missing; with wrong ones
// (tinyproxy answers those with 401), it says they were rejected; with the
// right ones it connects. The password appears in no error and no log
// line.
func TestProxyCredentials(t *testing.T) {
	noLeaks(t)
	tiny := tinyproxy(t, "BasicAuth alice s3cretpass")
	for _, secure := range []bool{false, true} {
		srv := newEchoServer(t, secure)
		scheme := map[bool]string{false: "ws", true: "wss"}[secure]
		t.Run(scheme+" without credentials", func(t *testing.T) {
			cl, err := dialVia(t, via(srv, proxyURL(t, "http://"+tiny.addr), nil), srv.wsURL(""), nil)
			pe := proxyError(t, err)
			if pe.StatusCode != http.StatusProxyAuthRequired || pe.Proxy != "http://"+tiny.addr ||
				pe.Header.Get("Proxy-Authenticate") != `Basic realm="Tinyproxy"` {
				t.Fatalf("ProxyError %+v", pe)
			}
			want := fmt.Sprintf(`wsreconnect: proxy http://%s refused the tunnel to %s: 407 Proxy Authentication Required: it needs credentials, and the proxy URL has none (scheme://user:password@host:port) (Proxy-Authenticate: Basic realm="Tinyproxy")`,
				tiny.addr, srv.Listener.Addr())
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q\ndoes not say %q", err, want)
			}
			if d := cl.next(); d.Decision != wsreconnect.Stop {
				t.Errorf("Disconnect %v, want a stop", d)
			}
		})
		t.Run(scheme+" with wrong credentials", func(t *testing.T) {
			cl, err := dialVia(t, via(srv, proxyURL(t, "http://alice:wr0ngpassword@"+tiny.addr), nil), srv.wsURL(""), nil)
			pe := proxyError(t, err)
			if pe.StatusCode != http.StatusUnauthorized && pe.StatusCode != http.StatusProxyAuthRequired {
				t.Fatalf("ProxyError %+v, want 401 or 407", pe)
			}
			if !strings.Contains(err.Error(), "proxy http://"+tiny.addr+" refused the tunnel") ||
				!strings.Contains(err.Error(), "it rejected the credentials in the proxy URL") {
				t.Errorf("error %q does not say the proxy rejected the credentials", err)
			}
			if d := cl.next(); d.Decision != wsreconnect.Stop {
				t.Errorf("Disconnect %v, want a stop", d)
			}
			mustNotContain(t, "wr0ngpassword", err.Error(), cl.log.String())
			mustNotContain(t, "alice", err.Error(), cl.log.String())
		})
		t.Run(scheme+" with credentials", func(t *testing.T) {
			cl, err := dialVia(t, via(srv, proxyURL(t, "http://alice:s3cretpass@"+tiny.addr), nil), srv.wsURL(""), nil)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			cl.echo("authenticated")
			cl.c.CloseNow()
			mustNotContain(t, "s3cretpass", cl.log.String())
		})
	}
}

// A proxy that does not allow the destination (tinyproxy with CONNECT to
// port 443 only, as many corporate proxies are set up) answers 403: the
// client stops at once, saying so. A SOCKS5 proxy's refusal by its rules
// (dante's "socks block") stops too.
func TestProxyRefusesTarget(t *testing.T) {
	noLeaks(t)
	srv := newEchoServer(t, false)
	tiny := tinyproxy(t, "ConnectPort 443")
	cl, err := dialVia(t, via(srv, proxyURL(t, "http://"+tiny.addr), nil), srv.wsURL(""), nil)
	pe := proxyError(t, err)
	if pe.StatusCode != http.StatusForbidden {
		t.Fatalf("ProxyError %+v, want 403", pe)
	}
	if !strings.Contains(err.Error(), "403 Access violation: it does not allow this destination") {
		t.Errorf("error %q", err)
	}
	if d := cl.next(); d.Decision != wsreconnect.Stop {
		t.Errorf("Disconnect %v, want a stop", d)
	}

	socks := dante(t, "socks block { from: 0.0.0.0/0 to: 127.0.0.1/32 port = "+srv.port()+" }")
	cl, err = dialVia(t, via(srv, proxyURL(t, "socks5://"+socks.addr), nil), srv.wsURL(""), nil)
	pe = proxyError(t, err)
	if pe.SOCKSReply != 2 || !strings.Contains(err.Error(), "connection not allowed by ruleset (SOCKS5 reply 2)") {
		t.Fatalf("ProxyError %+v: %v", pe, err)
	}
	if d := cl.next(); d.Decision != wsreconnect.Stop {
		t.Errorf("Disconnect %v, want a stop", d)
	}
}

// A SOCKS5 proxy that wants a username and password (microsocks): none,
// wrong ones, the right ones.
func TestSOCKSCredentials(t *testing.T) {
	noLeaks(t)
	srv := newEchoServer(t, false)
	ms := microsocks(t, "bob", "hunter2secret")
	for _, tt := range []struct {
		user, want string
	}{
		{"", "requires a username and password, and the proxy URL has none"},
		{"bob:wrongsecret@", "rejected the username and password in the proxy URL"},
	} {
		cl, err := dialVia(t, via(srv, proxyURL(t, "socks5://"+tt.user+ms.addr), nil), srv.wsURL(""), nil)
		pe := proxyError(t, err)
		if !strings.Contains(err.Error(), "proxy socks5://"+ms.addr+" "+tt.want) {
			t.Errorf("error %q (%+v) does not say %q", err, pe, tt.want)
		}
		if d := cl.next(); d.Decision != wsreconnect.Stop {
			t.Errorf("Disconnect %v, want a stop", d)
		}
		mustNotContain(t, "wrongsecret", err.Error(), cl.log.String())
	}
	cl, err := dialVia(t, via(srv, proxyURL(t, "socks5://bob:hunter2secret@"+ms.addr), nil), srv.wsURL(""), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	cl.echo("through microsocks")
}

// A proxy that is down is retried on the standard schedule, and so is a
// proxy that cannot reach the server (squid answers 503, dante replies
// "connection refused", tinyproxy answers 500): none of them says
// anything about the request. Each is seen three times, a retry each
// time, before the test gives up on the first connection.
func TestProxyDownOrServerUnreachableRetries(t *testing.T) {
	noLeaks(t)
	srv := newEchoServer(t, false)
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // no server there
	sq := squid(t)
	socks := dante(t)
	tiny := tinyproxy(t)
	for _, tt := range []struct {
		name, proxy, target string
		check               func(*wsreconnect.ProxyError) bool
	}{
		{"proxy down", "http://" + closed, srv.wsURL(""), func(pe *wsreconnect.ProxyError) bool {
			return pe.StatusCode == 0 && errors.Is(pe, syscall.ECONNREFUSED) && strings.Contains(pe.Error(), "proxy http://"+closed+" could not be reached")
		}},
		{"squid, server down", "http://" + sq.addr, "ws://" + closed + "/", func(pe *wsreconnect.ProxyError) bool { return pe.StatusCode == 503 }},
		{"tinyproxy, server down", "http://" + tiny.addr, "ws://" + closed + "/", func(pe *wsreconnect.ProxyError) bool { return pe.StatusCode == 500 }},
		{"dante, server down", "socks5://" + socks.addr, "ws://" + closed + "/", func(pe *wsreconnect.ProxyError) bool { return pe.SOCKSReply == 5 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var seen []wsreconnect.Disconnect
			_, err := dialWith(ctx, t, &http.Client{Transport: via(srv, proxyURL(t, tt.proxy), nil)}, tt.target, func(d wsreconnect.Disconnect) {
				if seen = append(seen, d); len(seen) == 3 {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Dial: %v, want it to retry until its ctx ended", err)
			}
			for _, d := range seen {
				var pe *wsreconnect.ProxyError
				var uerr *url.Error // the chain from websocket.Dial is intact
				if !errors.As(d.Err, &pe) || !tt.check(pe) || !errors.As(d.Err, &uerr) {
					t.Fatalf("Disconnect %v: not the ProxyError expected (%+v)", d, pe)
				}
				if d.Decision != wsreconnect.Retry || !d.Reconnect || d.HTTPStatus != 0 {
					t.Fatalf("Disconnect %v: want a retry on the standard schedule", d)
				}
			}
		})
	}
}

// The proxy restarts while the client is connected through it (a crash:
// its process group is killed): the tunnel breaks, the client retries
// while the proxy is down (connection refused, a retry), and once the
// proxy is back it reconnects through it, and messages flow again.
func TestProxyRestartWhileConnected(t *testing.T) {
	noLeaks(t)
	srv := newEchoServer(t, false)
	tiny := tinyproxy(t)
	d := &dialer{}
	cl, err := dialVia(t, via(srv, proxyURL(t, "http://"+tiny.addr), d), srv.wsURL(""), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	cl.echo("before the restart")

	tiny.stop()
	if end := cl.next(); end.Code != websocket.StatusAbnormalClosure || end.Decision != wsreconnect.Retry {
		t.Fatalf("the tunnel broke: %v, want 1006 and a retry", end)
	}
	down := cl.next()
	if pe := proxyError(t, down.Err); pe.StatusCode != 0 || down.Decision != wsreconnect.Retry {
		t.Fatalf("while the proxy is down: %v, want a retry", down)
	}
	tiny.start()
	cl.echo("after the restart")
	for _, a := range d.dialled() {
		if a != tiny.addr {
			t.Fatalf("dialled %s: every dial goes to the proxy (%s)", a, tiny.addr)
		}
	}
	if s := cl.c.Stats(); s.Connects != 2 {
		t.Errorf("%d connects, want 2", s.Connects)
	}
}

// tinyproxy cuts a tunnel idle for its Timeout (2 s here, 600 s in
// Debian's configuration; corporate proxies have such limits). A
// client whose heartbeat interval is below it keeps its tunnel: its pings
// and the server's pongs are traffic. A client without a heartbeat,
// connected after it through the same proxy, loses its tunnel twice
// meanwhile, the second time more than twice the Timeout after the first
// client connected.
func TestHeartbeatKeepsIdleTunnelOpen(t *testing.T) {
	noLeaks(t)
	srv := newEchoServer(t, false)
	tiny := tinyproxy(t, "Timeout 2")
	tr := via(srv, proxyURL(t, "http://"+tiny.addr), nil)
	alive, err := dialVia(t, tr, srv.wsURL(""), nil, wsreconnect.WithHeartbeat(200*time.Millisecond, 2*time.Second))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	idle, err := dialVia(t, tr, srv.wsURL(""), nil, wsreconnect.WithHeartbeat(0, 0))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	for i := range 2 {
		if end := idle.next(); end.Code != websocket.StatusAbnormalClosure || end.Decision != wsreconnect.Retry {
			t.Fatalf("cut %d of the idle tunnel: %v, want 1006 and a retry", i+1, end)
		}
	}
	select {
	case end := <-alive.ends:
		t.Fatalf("the client with a heartbeat lost its tunnel: %v", end)
	default:
	}
	alive.echo("still up")
	if s := alive.c.Stats(); s.Connects != 1 {
		t.Errorf("the client with a heartbeat connected %d times, want once", s.Connects)
	}
}

// wsserverHost is a host name for the server that net/http's rules do not
// take for loopback (localhost and 127.0.0.0/8 always go direct), so that
// the environment's proxy applies to it; the tests' dialer and squid's
// hosts file resolve it to 127.0.0.1.
const wsserverHost = "wsserver.test"

// NO_PROXY (or no_proxy) in each of its forms sends the client straight
// to the server, past the proxy HTTP_PROXY names (which is not even
// running).
func TestNoProxyBypass(t *testing.T) {
	noLeaks(t)
	srv := newEchoServer(t, false)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	port := srv.port()
	for _, tt := range []struct{ name, value string }{
		{"NO_PROXY", wsserverHost},
		{"no_proxy", wsserverHost},
		{"NO_PROXY", ".test"},
		{"NO_PROXY", "*.test"},
		{"NO_PROXY", "example.org, " + wsserverHost + ":" + port},
		{"NO_PROXY", "*"},
	} {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			clearProxyEnv(t)
			t.Setenv("HTTP_PROXY", "http://"+dead)
			t.Setenv(tt.name, tt.value)
			d := &dialer{hosts: map[string]bool{wsserverHost: true}}
			tr := &wsreconnect.ProxyTransport{Base: &http.Transport{DialContext: d.DialContext}}
			cl, err := dialVia(t, tr, srv.wsURL(wsserverHost), nil)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			cl.echo("direct")
			if got := d.dialled(); !slices.Equal(got, []string{wsserverHost + ":" + port}) {
				t.Errorf("dialled %v, want the server only", got)
			}
			cl.c.CloseNow()
		})
	}
}

// The environment is read at every attempt, so a setting changed while
// the client reconnects applies at its next attempt: ALL_PROXY names a
// proxy that is down (a retry); then http_proxy (which ALL_PROXY only
// stands in for) names squid, and the client connects through squid; the
// server restarts (1012); NO_PROXY now names the server, and the client
// connects directly.
func TestEnvironmentReadAtEachAttempt(t *testing.T) {
	noLeaks(t)
	clearProxyEnv(t)
	srv := newEchoServer(t, false)
	sq := squid(t, wsserverHost)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	target := wsserverHost + ":" + srv.port()
	t.Setenv("ALL_PROXY", "http://"+dead)
	d := &dialer{hosts: map[string]bool{wsserverHost: true}}
	tr := &wsreconnect.ProxyTransport{Base: &http.Transport{DialContext: d.DialContext}}
	cl, err := dialVia(t, tr, srv.wsURL(wsserverHost), func(end wsreconnect.Disconnect) {
		// The supervisor waits for OnDisconnect before its next attempt.
		var pe *wsreconnect.ProxyError
		switch {
		case errors.As(end.Err, &pe) && pe.Proxy == "http://"+dead:
			os.Setenv("http_proxy", "http://"+sq.addr)
		case end.Code == websocket.StatusServiceRestart:
			os.Setenv("NO_PROXY", wsserverHost)
		}
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if end := cl.next(); proxyError(t, end.Err).Proxy != "http://"+dead || end.Decision != wsreconnect.Retry {
		t.Fatalf("first attempt: %v, want the dead proxy of ALL_PROXY, and a retry", end)
	}
	cl.echo("through squid")
	if got := d.dialled(); !slices.Equal(got, []string{dead, sq.addr}) {
		t.Fatalf("dialled %v, want the dead proxy, then squid", got)
	}

	srv.dropAll(websocket.StatusServiceRestart)
	if end := cl.next(); end.Code != websocket.StatusServiceRestart {
		t.Fatalf("the server's restart: %v", end)
	}
	cl.echo("direct")
	if got := d.dialled(); !slices.Equal(got, []string{target}) {
		t.Fatalf("dialled %v after NO_PROXY, want the server only", got)
	}
}

// HTTPS_PROXY applies to wss:// URLs; here it names squid's TLS port (a
// proxy reached over TLS).
func TestEnvironmentHTTPSProxy(t *testing.T) {
	noLeaks(t)
	clearProxyEnv(t)
	srv := newEchoServer(t, true)
	sq := squid(t, wsserverHost)
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1") // not for wss://
	t.Setenv("HTTPS_PROXY", "https://"+sq.tlsAddr)
	d := &dialer{hosts: map[string]bool{wsserverHost: true}}
	tlsCfg := srv.tlsConfig()
	tlsCfg.ServerName = "example.com" // httptest's certificate names example.com and 127.0.0.1
	tr := &wsreconnect.ProxyTransport{
		Base:           &http.Transport{DialContext: d.DialContext, TLSClientConfig: tlsCfg},
		ProxyTLSConfig: sq.proxyTLS(),
	}
	cl, err := dialVia(t, tr, srv.wsURL(wsserverHost), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	cl.echo("wss through an https proxy")
	if got := d.dialled(); !slices.Equal(got, []string{sq.tlsAddr}) {
		t.Errorf("dialled %v, want squid's TLS port only", got)
	}
}
