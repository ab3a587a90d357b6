//go:build !js

package wsreconnect

// Regression tests for three ways the Conn used to misread an end and retry
// forever or say the wrong thing, all on real loopback sockets:
//
//   - a protocol error the client detects (coder/websocket sends 1002 and
//     fails the read) is reported as 1002 and stops, as a received 1002 does;
//   - misconfigurations (wss:// to a server that does not speak TLS, a
//     DialFunc that returns nothing, a DialFunc that dials with an ended
//     outer ctx) stop at once with an error that names them;
//   - "dial timed out after <d>" is said only when the attempt's own ctx
//     expired; a DialFunc's own shorter deadline is named as such.
//
// Every Dial runs with a ctx derived from context.Background() that the test
// cancels only after a bound has passed: a regression that retries forever
// fails the test instead of hanging it.

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// dialErrBound is how long a Dial that must fail at once may take. The
// failures come in milliseconds; the default dial timeout is 10 s, so a Dial
// that waits for it, or retries, is caught.
const dialErrBound = 3 * time.Second

// dialWithin runs Dial with a ctx that ends only if Dial has not returned
// within bound, and fails the test in that case (reporting what Dial said
// once its ctx was cancelled). A Conn it returns is closed at cleanup.
func dialWithin(t *testing.T, bound time.Duration, dial DialFunc, opts ...Option) (*Conn, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		c   *Conn
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		c, err := Dial(ctx, dial, opts...)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		elapsed := time.Since(start)
		t.Logf("Dial returned in %v: %v", elapsed, r.err)
		if r.c != nil {
			t.Cleanup(func() { r.c.CloseNow() })
		}
		return r.c, r.err
	case <-time.After(bound):
	}
	cancel()
	select {
	case r := <-done:
		if r.c != nil {
			r.c.CloseNow()
		}
		t.Fatalf("Dial did not return within %v (it kept retrying); after its ctx was cancelled it said: %v", bound, r.err)
	case <-time.After(netPromptly):
		t.Fatalf("Dial did not return within %v, nor within %v after its ctx was cancelled", bound, netPromptly)
	}
	panic("unreachable")
}

// wantDialStop checks that err is the *StopError of a failed first dial:
// no close code, no handshake status, attempt 1, decision Stop.
func wantDialStop(t *testing.T, err error) *StopError {
	t.Helper()
	var se *StopError
	if !errors.As(err, &se) {
		t.Fatalf("Dial error %v (%T) is not a *StopError", err, err)
	}
	d := se.Disconnect
	if d.Code != 0 || d.HTTPStatus != 0 || d.Attempt != 1 || d.Decision != Stop || d.Reconnect {
		t.Fatalf("Dial's Disconnect %+v, want code 0, no status, attempt 1, stop", d)
	}
	return se
}

// The raw server: a WebSocket handshake done by hand, so that the server
// can write frames coder/websocket would never produce.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// rawClose is what a client sent the raw server after the bad frame.
type rawClose struct {
	sawClose bool   // a close frame arrived
	code     int    // its status code (0 if its payload was empty)
	reason   string // its reason
	err      error  // why reading stopped, if no close frame arrived
}

// rawServer accepts WebSocket handshakes on 127.0.0.1, answers 101, waits
// until the test releases it, writes frame, then reads what the client
// sends back until a close frame arrives or the connection ends.
type rawServer struct {
	ln       net.Listener
	url      string
	frame    []byte
	release  chan struct{} // closed by the test: write the frame now
	stop     chan struct{} // closed by Close
	received chan rawClose // one per connection
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func newRawServer(t *testing.T, frame []byte) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{
		ln:       ln,
		url:      "ws://" + ln.Addr().String() + "/",
		frame:    frame,
		release:  make(chan struct{}),
		stop:     make(chan struct{}),
		received: make(chan rawClose, 64),
		conns:    map[net.Conn]struct{}{},
	}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.Close)
	return s
}

// dial returns a DialFunc with its own transport, whose idle connections
// are closed at cleanup.
func (s *rawServer) dial(t *testing.T) DialFunc {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	return func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, s.url, &websocket.DialOptions{HTTPClient: client})
	}
}

func (s *rawServer) acceptLoop() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		select {
		case <-s.stop:
			s.mu.Unlock()
			conn.Close()
			return
		default:
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.accepted.Add(1)
		go s.serve(conn)
	}
}

func (s *rawServer) serve(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	conn.SetDeadline(time.Now().Add(20 * time.Second)) // a stuck test ends anyway
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + wsGUID))
	if _, err := fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\n"+
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:])); err != nil {
		return
	}
	select {
	case <-s.release:
	case <-s.stop:
		return
	}
	if _, err := conn.Write(s.frame); err != nil {
		s.received <- rawClose{err: err}
		return
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	s.received <- readClientClose(br)
}

// readClientClose reads masked client frames until a close frame.
func readClientClose(r io.Reader) rawClose {
	for {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return rawClose{err: err}
		}
		opcode := h[0] & 0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return rawClose{err: err}
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return rawClose{err: err}
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 1<<20 {
			return rawClose{err: fmt.Errorf("frame of %d bytes", n)}
		}
		var key [4]byte
		if h[1]&0x80 != 0 {
			if _, err := io.ReadFull(r, key[:]); err != nil {
				return rawClose{err: err}
			}
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			return rawClose{err: err}
		}
		for i := range p {
			p[i] ^= key[i%4]
		}
		if opcode != 0x8 {
			continue
		}
		rc := rawClose{sawClose: true}
		if len(p) >= 2 {
			rc.code = int(binary.BigEndian.Uint16(p))
			rc.reason = string(p[2:])
		}
		return rc
	}
}

// Close stops accepting, ends every connection and joins the goroutines.
func (s *rawServer) Close() {
	s.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.ln.Close()
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// A frame the client must reject with 1002: the Conn stops instead of
// retrying, Read and OnDisconnect report 1002 (websocket.CloseStatus sees
// it), the server saw one connection only, and it received coder/websocket's
// 1002 close frame.
func TestProtocolViolationStopsWith1002(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		words string // in coder/websocket's error
	}{
		{"reserved opcode 3", []byte{0x83, 0x00}, "unknown opcode"},
		{"RSV2 on a text frame", []byte{0x80 | 0x20 | 0x1, 0x00}, "unexpected rsv bits"},
		{"fragmented ping", []byte{0x09, 0x00}, "fragmented control frame"},
		// The other errors coder/websocket answers with 1002.
		{"ping with a 126-byte payload", append([]byte{0x89, 126, 0, 126}, make([]byte, 126)...), "control frame payload with invalid length"},
		{"continuation without a message", []byte{0x80, 0x00}, "continuation frame without text or binary frame"},
		{"new message inside a fragmented one", []byte{0x01, 0x01, 'a', 0x81, 0x01, 'b'}, "new data message without finishing the previous message"},
		{"close frame with a 1-byte payload", []byte{0x88, 0x01, 0x03}, "invalid close payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			srv := newRawServer(t, tc.frame)
			w := newNetWatcher()
			// A 1 ms initial delay: a Conn that wrongly retries does so at once,
			// and the server sees it.
			c, err := dialWithin(t, 5*time.Second, srv.dial(t), w.option(), WithInitialDelay(time.Millisecond))
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			close(srv.release) // the client's Dial succeeded: now the bad frame

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, p, err := c.Read(ctx)
			if err == nil {
				t.Fatalf("Read returned a message %q", p)
			}
			t.Logf("Read: %v", err)
			var se *StopError
			if !errors.As(err, &se) {
				t.Fatalf("Read error %v (%T) is not a *StopError (%d connections so far; disconnects %v)",
					err, err, srv.accepted.Load(), w.all())
			}
			if got := websocket.CloseStatus(err); got != websocket.StatusProtocolError {
				t.Errorf("websocket.CloseStatus(Read error) = %d, want 1002", got)
			}
			if se.Disconnect.Code != websocket.StatusProtocolError || se.Disconnect.Decision != Stop || se.Disconnect.Reconnect {
				t.Errorf("StopError's Disconnect %v, want 1002, stop", se.Disconnect)
			}
			if !strings.Contains(err.Error(), tc.words) {
				t.Errorf("Read error %q does not carry coder/websocket's %q", err, tc.words)
			}

			// The supervisor ended on its own: no attempt can follow.
			select {
			case <-c.done:
			case <-time.After(netPromptly):
				t.Fatal("the supervisor did not end after the policy stopped")
			}
			ds := w.all()
			if len(ds) != 1 {
				t.Fatalf("%d disconnects, want 1: %v", len(ds), ds)
			}
			d := ds[0]
			if d.Code != websocket.StatusProtocolError || d.Decision != Stop || d.Reconnect || d.Attempt != 1 {
				t.Errorf("OnDisconnect got %v, want code 1002, stop, attempt 1", d)
			}
			if got := websocket.CloseStatus(d.Err); got != websocket.StatusProtocolError {
				t.Errorf("websocket.CloseStatus(Disconnect.Err) = %d, want 1002", got)
			}
			if n := srv.accepted.Load(); n != 1 {
				t.Errorf("the server saw %d connections, want 1", n)
			}

			// What the client sent the server: coder/websocket's own 1002.
			select {
			case rc := <-srv.received:
				t.Logf("the server received: %+v", rc)
				if !rc.sawClose || rc.code != int(websocket.StatusProtocolError) {
					t.Errorf("the server received %+v, want a close frame with 1002", rc)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the raw server's connection did not end")
			}
		})
	}
}

// wss:// to a server that answers in plain HTTP: net/http says "server gave
// HTTP response to HTTPS client". Dial stops at once, with context.Background()
// and the default 10 s dial timeout, saying the server does not speak TLS.
func TestWSSToPlainServerStops(t *testing.T) {
	noLeaks(t)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "plain HTTP")
	}))
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.Start()
	defer hs.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "wss://" + hs.Listener.Addr().String() + "/"
	var calls atomic.Int64
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		calls.Add(1)
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	}

	c, err := dialWithin(t, dialErrBound, dial)
	if c != nil {
		t.Fatal("Dial succeeded")
	}
	wantDialStop(t, err)
	if !strings.Contains(err.Error(), "does not speak TLS") {
		t.Errorf("Dial error %q does not say the server does not speak TLS", err)
	}
	if !errors.Is(err, http.ErrSchemeMismatch) {
		t.Errorf("Dial error %v does not wrap http.ErrSchemeMismatch", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d DialFunc calls, want 1", n)
	}
}

// wss:// to a server that answers with bytes that are neither TLS nor
// HTTP (here an SSH banner): crypto/tls reports a record-header error. Dial
// stops at once with the same message.
func TestWSSToNonTLSGarbageStops(t *testing.T) {
	noLeaks(t)
	addr, accepted := tcpServer(t, func(conn net.Conn) {
		io.WriteString(conn, "SSH-2.0-OpenSSH_9.6\r\n")
		io.Copy(io.Discard, conn) // until the client hangs up: no RST
	})
	client := testClient(t)
	url := "wss://" + addr + "/"
	var calls atomic.Int64
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		calls.Add(1)
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	}

	c, err := dialWithin(t, dialErrBound, dial)
	if c != nil {
		t.Fatal("Dial succeeded")
	}
	wantDialStop(t, err)
	var rhErr tls.RecordHeaderError
	if !errors.As(err, &rhErr) {
		t.Errorf("Dial error %v does not wrap a tls.RecordHeaderError", err)
	}
	if !strings.Contains(err.Error(), "does not speak TLS") {
		t.Errorf("Dial error %q does not say the server does not speak TLS", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d DialFunc calls, want 1", n)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the server saw %d connections, want 1", n)
	}
}

// A DialFunc that returns (nil, nil, nil): Dial stops at once and says so;
// the DialFunc is called once.
func TestDialFuncReturningNothingStops(t *testing.T) {
	noLeaks(t)
	var calls atomic.Int64
	dial := func(context.Context) (*websocket.Conn, *http.Response, error) {
		calls.Add(1)
		return nil, nil, nil
	}
	c, err := dialWithin(t, dialErrBound, dial, WithInitialDelay(time.Millisecond))
	if c != nil {
		t.Fatal("Dial succeeded")
	}
	wantDialStop(t, err)
	if !strings.Contains(err.Error(), "DialFunc returned neither a connection nor an error") {
		t.Errorf("Dial error %q does not say the DialFunc returned neither a connection nor an error", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d DialFunc calls, want 1", n)
	}
}

// A DialFunc that dials with an outer ctx that has already been cancelled
// fails every attempt at once with context.Canceled while its own attempt
// ctx is live: Dial stops at once, does not call it a timeout, and names
// the cause; the DialFunc is called once and the server never sees a request.
func TestDialFuncWithEndedOuterContextStops(t *testing.T) {
	noLeaks(t)
	srv, url, _ := netListenURL(t, wstest.Echo())
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	outer, cancelOuter := context.WithCancel(context.Background())
	cancelOuter()
	var (
		calls   atomic.Int64
		liveCtx atomic.Bool
	)
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		calls.Add(1)
		liveCtx.Store(ctx.Err() == nil)
		return websocket.Dial(outer, url, &websocket.DialOptions{HTTPClient: client}) // the mistake
	}

	c, err := dialWithin(t, dialErrBound, dial, WithInitialDelay(time.Millisecond))
	if c != nil {
		t.Fatal("Dial succeeded")
	}
	if !liveCtx.Load() {
		t.Fatal("the attempt's ctx had already ended when the DialFunc ran")
	}
	wantDialStop(t, err)
	msg := err.Error()
	if strings.Contains(msg, "timed out") {
		t.Errorf("Dial error %q says the dial timed out; the DialFunc failed at once", msg)
	}
	if !strings.Contains(msg, "DialFunc returned") || !strings.Contains(msg, "context canceled") ||
		!strings.Contains(msg, "the ctx it was given is live") {
		t.Errorf("Dial error %q does not say the DialFunc returned a context error while its ctx was live", msg)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d DialFunc calls, want 1", n)
	}
	if n := srv.Attempts.Load(); n != 0 {
		t.Errorf("the server saw %d handshakes, want 0", n)
	}
}

// dialRetriesUntilCancelled runs Dial against a dial that always fails,
// waits for n Disconnects, then cancels Dial's ctx (which closes the Conn)
// and returns them. Dial must not return before that.
func dialRetriesUntilCancelled(t *testing.T, n int, dial DialFunc, opts ...Option) []Disconnect {
	t.Helper()
	w := newNetWatcher()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := Dial(ctx, dial, append(opts, w.option())...)
		if c != nil {
			c.CloseNow()
			err = errors.New("Dial succeeded")
		}
		done <- err
	}()
	var ds []Disconnect
	for range n {
		select {
		case s := <-w.ch:
			ds = append(ds, s.d)
			t.Logf("disconnect: %v", s.d)
		case err := <-done:
			t.Fatalf("Dial returned after %d disconnects (%v): %v", len(ds), ds, err)
		case <-time.After(10 * time.Second):
			cancel()
			<-done
			t.Fatalf("only %d disconnects within 10 s: %v", len(ds), ds)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial after its ctx was cancelled: %v, want context.Canceled", err)
		}
	case <-time.After(netPromptly):
		t.Fatalf("Dial did not return within %v after its ctx was cancelled", netPromptly)
	}
	return ds
}

// A DialFunc that sets its own 1 ms deadline against a server that never
// completes the handshake: each failure says "the DialFunc's own deadline
// expired", not "dial timed out after", and is retried.
func TestDialFuncOwnDeadlineIsRetriedAndNamed(t *testing.T) {
	noLeaks(t)
	_, url, _ := netListenURL(t, wstest.Hang())
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	var calls atomic.Int64
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		calls.Add(1)
		ctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	}
	ds := dialRetriesUntilCancelled(t, 2, dial, WithInitialDelay(10*time.Millisecond))
	for i, d := range ds {
		msg := ""
		if d.Err != nil {
			msg = d.Err.Error()
		}
		if strings.Contains(msg, "dial timed out after") {
			t.Errorf("disconnect %d says %q: the attempt's own ctx (10 s) had not expired", i, msg)
		}
		if !strings.Contains(msg, "the DialFunc's own deadline expired") {
			t.Errorf("disconnect %d: %q does not say the DialFunc's own deadline expired", i, msg)
		}
		if !errors.Is(d.Err, context.DeadlineExceeded) {
			t.Errorf("disconnect %d: %v does not wrap context.DeadlineExceeded", i, d.Err)
		}
		if d.Code != 0 || d.HTTPStatus != 0 || d.Decision != Retry || !d.Reconnect || d.Attempt != i+1 {
			t.Errorf("disconnect %d: %v, want a failed dial retried, attempt %d", i, d, i+1)
		}
	}
	if n := calls.Load(); n < 2 {
		t.Errorf("%d DialFunc calls, want at least 2", n)
	}
}

// A real dial timeout (WithDialTimeout(100ms) against a server that never
// completes the handshake) still says "dial timed out after 100ms", and is
// retried.
func TestDialTimeoutIsNamedWithItsDuration(t *testing.T) {
	noLeaks(t)
	_, dial := netListen(t, wstest.Hang())
	ds := dialRetriesUntilCancelled(t, 2, dial, WithDialTimeout(100*time.Millisecond), WithInitialDelay(10*time.Millisecond))
	for i, d := range ds {
		msg := ""
		if d.Err != nil {
			msg = d.Err.Error()
		}
		if !strings.Contains(msg, "dial timed out after 100ms") {
			t.Errorf("disconnect %d: %q does not say the dial timed out after 100ms", i, msg)
		}
		if strings.Contains(msg, "own deadline") {
			t.Errorf("disconnect %d: %q blames the DialFunc's own deadline", i, msg)
		}
		if d.Code != 0 || d.HTTPStatus != 0 || d.Decision != Retry || !d.Reconnect || d.Attempt != i+1 {
			t.Errorf("disconnect %d: %v, want a failed dial retried, attempt %d", i, d, i+1)
		}
	}
}

// A 101 answer that breaks the protocol (here a wrong Sec-WebSocket-Accept,
// as a mangling proxy or a broken server sends) is a misconfiguration, not
// a network blip: Dial stops after the one attempt and says so. (That
// attempt takes up to 3 s: coder/websocket reads what follows a failed
// handshake for that long, and this server keeps the connection open.)
func TestInvalidUpgradeAnswerStops(t *testing.T) {
	noLeaks(t)
	addr, accepted := tcpServer(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBrZXk=\r\n\r\n")
		io.Copy(io.Discard, br)
	})
	client := testClient(t)
	url := "ws://" + addr + "/"
	c, err := dialWithin(t, 3*time.Second+dialErrBound, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	})
	if c != nil {
		t.Fatal("Dial succeeded")
	}
	wantDialStop(t, err)
	if !strings.Contains(err.Error(), "not a valid WebSocket upgrade") || !strings.Contains(err.Error(), "Sec-WebSocket-Accept") {
		t.Errorf("Dial error %q does not say what is wrong", err)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the server saw %d connections, want 1", n)
	}
}

// tcpServer serves raw TCP on 127.0.0.1 with handle, one goroutine per
// connection (each closed after handle, and cut after 10 s), until the
// test ends; it returns the address and the count of accepted connections.
func tcpServer(t *testing.T, handle func(net.Conn)) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				handle(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), accepted
}

// testClient is an HTTP client with a transport of its own, whose idle
// connections are closed when the test ends.
func testClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}
