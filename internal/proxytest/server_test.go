package proxytest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noLeaks checks, when the test ends (after its other cleanups, which it
// must precede: proxies stopped, servers closed), that it left no
// goroutine behind.
func noLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// waitTimeout bounds every wait for an event: generous, for a loaded
// 2-core machine under the race detector.
const waitTimeout = 20 * time.Second

// echoServer is a coder/websocket server on 127.0.0.1 that echoes every
// message, and can drop every connection it has with a close code.
type echoServer struct {
	*httptest.Server
	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
	wg    sync.WaitGroup
}

// newEchoServer starts an echo server, over TLS if secure; it is closed,
// with every handler waited for, when the test ends.
func newEchoServer(t *testing.T, secure bool) *echoServer {
	t.Helper()
	s := &echoServer{conns: map[*websocket.Conn]struct{}{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	if secure {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(func() {
		s.Close()
		s.dropAll(websocket.StatusGoingAway)
		s.wg.Wait()
		s.Client().CloseIdleConnections()
	})
	return s
}

func (s *echoServer) serve(w http.ResponseWriter, r *http.Request) {
	s.wg.Add(1)
	defer s.wg.Done()
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns[ws] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, ws)
		s.mu.Unlock()
		ws.CloseNow()
	}()
	ctx := context.Background()
	for {
		typ, msg, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if err := ws.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// dropAll closes every connection with code.
func (s *echoServer) dropAll(code websocket.StatusCode) {
	s.mu.Lock()
	conns := make([]*websocket.Conn, 0, len(s.conns))
	for ws := range s.conns {
		conns = append(conns, ws)
	}
	s.mu.Unlock()
	for _, ws := range conns {
		go ws.Close(code, "")
	}
}

// wsURL is the server's ws:// or wss:// URL on host (its own address if
// host is "").
func (s *echoServer) wsURL(host string) string {
	u, _ := url.Parse(s.URL)
	if host != "" {
		u.Host = net.JoinHostPort(host, u.Port())
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	return u.String() + "/feed"
}

// port is the server's port.
func (s *echoServer) port() string {
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	return port
}

// tlsConfig trusts the server's certificate (when it has one).
func (s *echoServer) tlsConfig() *tls.Config {
	if s.TLS == nil {
		return nil
	}
	return s.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
}

// dialer records where the client dialled (the proxy, or the server
// itself), and dials the names in hosts at 127.0.0.1: a test host name
// that net/http's rules do not take for loopback, so that the environment's
// proxy applies to it.
type dialer struct {
	hosts map[string]bool
	mu    sync.Mutex
	addrs []string
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	if host, port, err := net.SplitHostPort(addr); err == nil && d.hosts[host] {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// dialled returns the addresses dialled since the last call.
func (d *dialer) dialled() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.addrs
	d.addrs = nil
	return a
}

// client is a wsreconnect.Conn under test, with every Disconnect it
// reported and everything it logged.
type client struct {
	t    *testing.T
	c    *wsreconnect.Conn
	ends chan wsreconnect.Disconnect
	log  *syncBuffer
}

// dialVia dials url with a ProxyTransport made of tr, with short
// schedules, and returns the Conn (closed when the test ends) and Dial's
// error. onDisconnect, if set, runs on each Disconnect before it is
// recorded.
func dialVia(t *testing.T, tr *wsreconnect.ProxyTransport, url string, onDisconnect func(wsreconnect.Disconnect), opts ...wsreconnect.Option) (*client, error) {
	t.Helper()
	hc := &http.Client{Transport: tr}
	return dialWith(t.Context(), t, hc, url, onDisconnect, opts...)
}

// dialWith dials url with hc; ctx bounds Dial (and waitTimeout).
func dialWith(ctx context.Context, t *testing.T, hc *http.Client, url string, onDisconnect func(wsreconnect.Disconnect), opts ...wsreconnect.Option) (*client, error) {
	t.Helper()
	cl := &client{t: t, ends: make(chan wsreconnect.Disconnect, 100), log: &syncBuffer{}}
	t.Cleanup(hc.CloseIdleConnections)
	all := append([]wsreconnect.Option{
		wsreconnect.WithInitialDelay(20 * time.Millisecond),
		wsreconnect.WithMaxDelay(100 * time.Millisecond),
		wsreconnect.WithDialTimeout(5 * time.Second),
		wsreconnect.WithLogger(newLogger(cl.log)),
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			if onDisconnect != nil {
				onDisconnect(d)
			}
			cl.ends <- d
		}),
	}, opts...)
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	c, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	}, all...)
	if c != nil {
		cl.c = c
		t.Cleanup(func() { c.CloseNow() })
	}
	return cl, err
}

// next returns the next Disconnect the Conn reports.
func (cl *client) next() wsreconnect.Disconnect {
	cl.t.Helper()
	select {
	case d := <-cl.ends:
		return d
	case <-time.After(waitTimeout):
		cl.t.Fatalf("no Disconnect within %v", waitTimeout)
		return wsreconnect.Disconnect{}
	}
}

// echo writes msg and reads it back: the connection works end to end.
func (cl *client) echo(msg string) {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(cl.t.Context(), waitTimeout)
	defer cancel()
	if err := cl.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		cl.t.Fatalf("Write: %v", err)
	}
	_, got, err := cl.c.Read(ctx)
	if err != nil || string(got) != msg {
		cl.t.Fatalf("Read: %q, %v; want %q", got, err, msg)
	}
}

// proxyError returns the *wsreconnect.ProxyError in err, or fails.
func proxyError(t *testing.T, err error) *wsreconnect.ProxyError {
	t.Helper()
	var pe *wsreconnect.ProxyError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *wsreconnect.ProxyError", err, err)
	}
	return pe
}

// mustNotContain fails if any of texts contains secret.
func mustNotContain(t *testing.T, secret string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, secret) {
			t.Errorf("%q appears in: %s", secret, s)
		}
	}
}

// clearProxyEnv unsets every proxy variable for the test (and restores
// them after it): the tests that read the environment set their own.
func clearProxyEnv(t *testing.T) {
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
