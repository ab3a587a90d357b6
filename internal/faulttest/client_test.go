package faulttest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// client drives a wsreconnect.Conn the way an application would: a reader
// that always calls Read (with a short ctx, which must never cost the
// connection), and optionally a writer that writes a self-checking stream.
// Everything it sees goes into the world.
type client struct {
	t    testing.TB
	w    *world
	conn *wsreconnect.Conn

	closed     atomic.Bool // set once Close or CloseNow returned
	readerDone chan struct{}
	readErr    error // the error that ended the reader

	writerMu   sync.Mutex
	writerStop chan struct{}
	writerDone chan struct{}

	writeTimeout time.Duration
	// seqMu makes a message's seq and its Write one step: the ledger
	// expects each connection to carry the seqs in order, which two
	// goroutines writing at once (the writer and a test's writeOne) would
	// not guarantee, with any library.
	seqMu sync.Mutex
}

// dialer returns a DialFunc for url that records each attempt in w. Each
// new connection gets a read limit of 4 MiB (coder/websocket's default is
// 32 KiB; the tests send up to 96 KiB); setup, if not nil, runs after that
// (e.g. to set a smaller limit).
func (w *world) dialer(t testing.TB, url func(attempt int) string, setup func(*websocket.Conn)) wsreconnect.DialFunc {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	var attempts atomic.Int64
	return func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		n := int(attempts.Add(1))
		i := w.dialStarted(time.Now())
		ws, resp, err := websocket.Dial(ctx, url(n), &websocket.DialOptions{HTTPClient: hc})
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		w.dialEnded(i, err, status)
		if ws != nil {
			ws.SetReadLimit(4 << 20)
			if setup != nil {
				setup(ws)
			}
		}
		return ws, resp, err
	}
}

func fixedURL(url string) func(int) string { return func(int) string { return url } }

// scriptURL dials base+paths[0] first, then paths[1], …, repeating the last.
func scriptURL(base string, paths ...string) func(int) string {
	return func(n int) string { return base + paths[min(n, len(paths))-1] }
}

// callbacks returns the OnConnect and OnDisconnect options that record into
// w and flag any call after Close returned.
func (c *client) callbacks() []wsreconnect.Option {
	return []wsreconnect.Option{
		wsreconnect.WithOnConnect(func(context.Context, *websocket.Conn) error {
			if c.closed.Load() {
				c.w.violation("OnConnect called after Close returned")
			}
			c.w.connected()
			return nil
		}),
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			if c.closed.Load() {
				c.w.violation("OnDisconnect called after Close returned: %v", d)
			}
			c.w.disconnected(d)
		}),
	}
}

// newClient makes a client whose Conn is not dialled yet.
func newClient(t testing.TB, w *world) *client {
	return &client{t: t, w: w, readerDone: make(chan struct{}), writeTimeout: 2 * time.Second}
}

// dialClient dials a Conn (the first connection must come up within 10 s)
// and starts its reader.
func dialClient(t testing.TB, w *world, dial wsreconnect.DialFunc, opts ...wsreconnect.Option) *client {
	t.Helper()
	c := newClient(t, w)
	conn, err := c.dial(dial, 10*time.Second, opts...)
	if err != nil {
		t.Fatalf("Dial: %v\n%s", err, w.summary())
	}
	c.start(conn)
	return c
}

func (c *client) dial(dial wsreconnect.DialFunc, timeout time.Duration, opts ...wsreconnect.Option) (*wsreconnect.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return wsreconnect.Dial(ctx, dial, append(opts, c.callbacks()...)...)
}

func (c *client) start(conn *wsreconnect.Conn) {
	c.conn = conn
	// If the test fails half way, still end every goroutine before the
	// leak check.
	c.t.Cleanup(func() {
		c.stopWriter()
		_ = c.conn.CloseNow()
		c.closed.Store(true)
		<-c.readerDone
	})
	go c.read()
}

func (c *client) read() {
	defer close(c.readerDone)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		_, p, err := c.conn.Read(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue // a caller's short Read must never cost the connection
		}
		if err != nil {
			c.w.mu.Lock()
			c.readErr = err
			if !errors.Is(err, wsreconnect.ErrClosed) {
				c.w.readEnd = err
			}
			c.w.bumpLocked()
			c.w.mu.Unlock()
			return
		}
		c.w.clientRead(p)
	}
}

// readError returns the error that ended the reader, if it has ended.
func (c *client) readError() error {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return c.readErr
}

// startWriter writes a message every `every` until stopWriter, each with
// its own seq (a failed message is never retried: the server must see each
// seq at most once).
func (c *client) startWriter(every time.Duration, size func(*rand.Rand) int) {
	c.writerMu.Lock()
	defer c.writerMu.Unlock()
	if c.writerStop != nil {
		panic("writer already running")
	}
	stop, done := make(chan struct{}), make(chan struct{})
	c.writerStop, c.writerDone = stop, done
	go func() {
		defer close(done)
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := c.writeOne(size(r)); errors.Is(err, wsreconnect.ErrClosed) {
				return
			} else if isStop(err) {
				return
			}
		}
	}()
}

func (c *client) stopWriter() {
	c.writerMu.Lock()
	stop, done := c.writerStop, c.writerDone
	c.writerStop, c.writerDone = nil, nil
	c.writerMu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// writeOne writes one message of n payload bytes and records its fate. A
// Write must return within its ctx (plus scheduling slack), never hang.
func (c *client) writeOne(n int) error {
	return c.writeOneTimeout(n, c.writeTimeout)
}

func (c *client) writeOneTimeout(n int, timeout time.Duration) error {
	c.seqMu.Lock()
	defer c.seqMu.Unlock()
	seq := c.w.newClientSeq()
	msg := encode(kindClient, seq, n)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	start := time.Now()
	err := c.conn.Write(ctx, websocket.MessageBinary, msg)
	took := time.Since(start)
	cancel()
	if took > timeout+2*time.Second {
		c.w.violation("Write of message %d took %v with a ctx of %v", seq, took, timeout)
	}
	c.w.writeDone(seq, err)
	return err
}

// flush stops the writer and writes a marker on what must now be a healthy
// connection, then waits for its echo: everything the final connection
// carried before it has then arrived. It returns the marker's seq.
func (c *client) flush(timeout time.Duration) uint64 {
	c.t.Helper()
	c.stopWriter()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		seq := c.w.newClientSeq()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := c.conn.Write(ctx, websocket.MessageBinary, encode(kindClient, seq, 8))
		cancel()
		c.w.writeDone(seq, err)
		if err != nil {
			c.t.Logf("flush: marker %d: %v", seq, err)
			continue
		}
		echoWait := min(time.Until(deadline), 3*time.Second)
		t0 := time.Now()
		for time.Since(t0) < echoWait {
			c.w.mu.Lock()
			echoed, ch := c.w.cmsg(seq).echoed, c.w.changed
			c.w.mu.Unlock()
			if echoed {
				return seq
			}
			select {
			case <-ch:
			case <-time.After(echoWait - time.Since(t0)):
			}
		}
		c.t.Logf("flush: no echo of marker %d within %v; trying again", seq, echoWait)
	}
	c.t.Fatalf("flush: no marker came back within %v\n%s\n%s", timeout, c.w.summary(), goroutines())
	return 0
}

// close ends the Conn (gracefully with 1000, or at once) and returns how
// long it took. Every goroutine of the Conn must have ended when it returns;
// the reader must see ErrClosed.
func (c *client) close(graceful bool) time.Duration {
	c.t.Helper()
	c.stopWriter()
	start := time.Now()
	var err error
	if graceful {
		err = c.conn.Close(websocket.StatusNormalClosure, "bye")
	} else {
		err = c.conn.CloseNow()
	}
	took := time.Since(start)
	c.closed.Store(true)
	if err != nil {
		c.t.Errorf("Close: %v", err)
	}
	select {
	case <-c.readerDone:
	case <-time.After(5 * time.Second):
		c.t.Fatalf("Read still blocked 5 s after Close returned\n%s", goroutines())
	}
	if err := c.readError(); !errors.Is(err, wsreconnect.ErrClosed) {
		if !isStop(err) {
			c.t.Errorf("Read after Close returned %v, want ErrClosed", err)
		}
	}
	if s := c.conn.State(); s != wsreconnect.StateClosed {
		c.t.Errorf("State after Close = %v", s)
	}
	return took
}

// isStop reports whether err says the policy stopped the Conn.
func isStop(err error) bool {
	var se *wsreconnect.StopError
	return errors.As(err, &se)
}
