//go:build !js

package resume

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// pipeNet serves HTTP over net.Pipe (as internal/wstest does), so that a
// client and servers run inside a testing/synctest bubble, and a test can
// cut any connection, even in the middle of a frame. Its handler may be
// replaced between connections (a restarted server, another instance).
type pipeNet struct {
	ctx    context.Context // the server side's request ctx: ends at close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the handlers

	mu      sync.Mutex
	handler http.Handler
	live    []*cutConn // the server ends of the connections, newest last
	dials   int
	tap     func(conn int, fromClient bool, p []byte) // sees the bytes each way, if set
}

func newPipeNet(h http.Handler) *pipeNet {
	n := &pipeNet{handler: h}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

// setHandler serves the next connections with h.
func (n *pipeNet) setHandler(h http.Handler) {
	n.mu.Lock()
	n.handler = h
	n.mu.Unlock()
}

// dial returns a wsreconnect.DialFunc that reaches the network.
func (n *pipeNet) dial() wsreconnect.DialFunc {
	client := &http.Client{Transport: n}
	return func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, "ws://pipe.test/", &websocket.DialOptions{HTTPClient: client})
	}
}

// last returns the newest connection's server end.
func (n *pipeNet) last() *cutConn {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.live) == 0 {
		return nil
	}
	return n.live[len(n.live)-1]
}

// cutAll cuts every connection.
func (n *pipeNet) cutAll() {
	n.mu.Lock()
	live := append([]*cutConn(nil), n.live...)
	n.mu.Unlock()
	for _, c := range live {
		c.cut()
	}
}

// close cuts every connection and waits for the handlers.
func (n *pipeNet) close() {
	n.cancel()
	n.cutAll()
	n.wg.Wait()
}

func (n *pipeNet) RoundTrip(r *http.Request) (*http.Response, error) {
	client, server := net.Pipe()
	cc := &cutConn{Conn: server, readBudget: -1, writeBudget: -1}
	n.mu.Lock()
	h := n.handler
	n.dials++
	if tap := n.tap; tap != nil {
		k := n.dials
		cc.tap = func(fromClient bool, p []byte) { tap(k, fromClient, p) }
	}
	n.live = append(n.live, cc)
	n.mu.Unlock()
	hj := &hijacker{ResponseRecorder: httptest.NewRecorder(), conn: cc, hijacked: make(chan struct{})}
	returned := make(chan struct{})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer cc.Close()
		defer close(returned)
		h.ServeHTTP(hj, r.Clone(n.ctx))
	}()
	select {
	case <-hj.hijacked:
	case <-returned:
	case <-r.Context().Done():
		client.Close()
		cc.Close()
		return nil, r.Context().Err()
	}
	resp := hj.Result()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = client
	} else {
		client.Close()
	}
	return resp, nil
}

type hijacker struct {
	*httptest.ResponseRecorder
	conn     net.Conn
	once     sync.Once
	hijacked chan struct{}
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h.once.Do(func() { close(h.hijacked) })
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// cutConn is the server end of a pipe that a test can cut at once, or
// after so many more bytes in either direction: a frame cut short.
type cutConn struct {
	net.Conn
	mu          sync.Mutex
	readBudget  int // bytes still to read before the cut (-1: no cut planned)
	writeBudget int
	readCut     bool // the planned read cut happened: reads see EOF
	closed      bool
	tap         func(fromClient bool, p []byte)
}

func (c *cutConn) cut() { c.Close() }

// cutAfter plans the cut after read more bytes read and write more
// written (-1: no limit that way).
func (c *cutConn) cutAfter(read, write int) {
	c.mu.Lock()
	c.readBudget, c.writeBudget = read, write
	c.mu.Unlock()
}

var errCut = errors.New("pipe cut")

func (c *cutConn) budget(b *int, n int) (allowed int, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *b < 0 {
		return n, false
	}
	if n <= *b {
		*b -= n
		return n, false
	}
	allowed = *b
	*b = 0
	return allowed, true
}

func (c *cutConn) Write(p []byte) (int, error) {
	n, cut := c.budget(&c.writeBudget, len(p))
	w, err := c.Conn.Write(p[:n])
	if c.tap != nil && w > 0 {
		c.tap(false, p[:w])
	}
	if cut {
		c.Close()
		return w, errCut
	}
	return w, err
}

func (c *cutConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	readCut := c.readCut
	c.mu.Unlock()
	if readCut {
		return 0, io.EOF // as the peer's end of a TCP connection reads
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		allowed, cut := c.budget(&c.readBudget, n)
		if cut {
			c.mu.Lock()
			c.readCut = true
			c.mu.Unlock()
			c.Close()
			if allowed == 0 {
				return 0, io.EOF
			}
			n, err = allowed, nil
		}
		if c.tap != nil {
			c.tap(true, p[:n])
		}
	}
	return n, err
}

func (c *cutConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.Conn.Close()
}
