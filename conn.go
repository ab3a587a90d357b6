package wsreconnect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// DialFunc dials one WebSocket connection. It is usually a closure around
// the caller's existing websocket.Dial call:
//
//	func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
//		return websocket.Dial(ctx, "wss://example.com/feed", &websocket.DialOptions{...})
//	}
//
// It is called once per attempt, with a ctx that ends after the dial
// timeout or on Close. On a failed handshake it should return the
// *http.Response, as websocket.Dial does, so that the status and
// Retry-After can be classified.
type DialFunc func(ctx context.Context) (*websocket.Conn, *http.Response, error)

// readAhead is how many whole messages the read pump may hold for Read.
// It lets the pump read the next message while the application works on
// this one, and bounds the memory a slow reader pins.
const readAhead = 8

// State is a Conn's connection state.
type State int32

const (
	// StateConnecting: no connection is up; dialling or waiting to.
	StateConnecting State = iota
	// StateConnected: a connection is up and serving Read and Write.
	StateConnected
	// StateClosed: Close or CloseNow was called, or the policy stopped.
	StateClosed
)

// MarshalText makes a State read as its name in JSON and expvar.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

type message struct {
	typ  websocket.MessageType
	data []byte
}

// Conn is a WebSocket connection that redials when it drops. Read and Write
// keep working across reconnects. All methods are safe for concurrent use.
type Conn struct {
	cfg  config
	dial DialFunc

	// base carries the values of Dial's ctx, never its cancellation: each
	// dial attempt derives its own ctx from it and registers its cancel in
	// cancelAttempt, which Close calls.
	base context.Context

	closing chan struct{} // closed by Close/CloseNow
	stopped chan struct{} // closed when the Conn has ended, for any reason
	done    chan struct{} // closed when the supervisor has returned
	first   chan error    // the outcome of the first connection, for Dial

	msgs chan message // read pumps → Read, in order

	cur atomic.Pointer[session] // the live session, for Write's fast path
	// Goroutine ids of the supervisor and of the DialFunc's goroutine, to
	// spot a Close called from a callback, which must not wait for itself.
	supervisor atomic.Uint64
	dialer     atomic.Uint64

	// carry holds messages of a dead session that Read has not taken yet
	// (see session.pump). The supervisor owns it; once the Conn has
	// stopped, Read takes from it under mu.
	carry []message

	mu            sync.Mutex
	state         State
	sess          *session           // the published session, or nil
	changed       chan struct{}      // closed and replaced on every change of sess or state
	cancelAttempt context.CancelFunc // of the dial or OnConnect under way
	stopErr       error              // why the Conn ended when the policy stopped it
	firstSent     bool
	queue         []message // the send queue (WithSendQueue), oldest first
	unsent        error     // an *UnsentError once the Conn has ended with a queue

	// Counters for Stats, under mu.
	connects    uint64
	disconnects [3]uint64 // by Decision
	attempt     int
	last        Disconnect
}

// Dial starts a Conn and returns once its first connection is up (after
// OnConnect). Transient failures before that are retried on the schedules,
// bounded by ctx; a failure the policy stops on (a 401, a 1008) is returned
// at once as a *StopError. ctx bounds only the first connection, as with
// websocket.Dial; later reconnects run until Close.
func Dial(ctx context.Context, dial DialFunc, opts ...Option) (*Conn, error) {
	if dial == nil {
		return nil, errors.New("wsreconnect: nil DialFunc")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			cfg.fail("nil Option")
			continue
		}
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Conn{
		cfg:     cfg,
		dial:    dial,
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
		first:   make(chan error, 1),
		msgs:    make(chan message, readAhead),
		changed: make(chan struct{}),
	}
	c.base = context.WithoutCancel(ctx)
	go c.run()

	select {
	case err := <-c.first:
		if err != nil {
			<-c.done
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		_ = c.CloseNow()
		err := fmt.Errorf("wsreconnect: dial: %w", context.Cause(ctx))
		if last := c.Stats().LastDisconnect; last.Attempt > 0 {
			err = fmt.Errorf("%w; last attempt: %s", err, last.what())
		}
		return nil, err
	}
}

// Stats is a snapshot of a Conn's counters.
type Stats struct {
	State State
	// Connects counts the connections established (OnConnect included).
	Connects uint64
	// Disconnects counts the Disconnects reported, by decision.
	Disconnects map[Decision]uint64
	// Attempt is the Attempt of the last Disconnect: consecutive failures
	// since the last stable connection; 0 before the first Disconnect.
	Attempt int
	// LastDisconnect is the most recent Disconnect; zero before the first.
	LastDisconnect Disconnect
	// Uptime is how long the current connection has been up; 0 when none.
	Uptime time.Duration
	// Queued counts the messages waiting in the send queue.
	Queued int
}

// Stats returns a snapshot of the Conn's counters. It is safe for
// concurrent use and cheap enough to poll.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Stats{
		State:          c.state,
		Connects:       c.connects,
		Disconnects:    make(map[Decision]uint64, len(c.disconnects)),
		Attempt:        c.attempt,
		LastDisconnect: c.last,
		Queued:         len(c.queue),
	}
	for d, n := range c.disconnects {
		st.Disconnects[Decision(d)] = n
	}
	if c.sess != nil {
		st.Uptime = c.sess.uptime()
	}
	return st
}

// State returns the connection state at this instant.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Read returns the next whole message. Messages arrive in order and are
// never duplicated by the Conn; Read keeps working across reconnects.
// ctx bounds this call only: when it ends, Read returns its error and the
// connection is unaffected. After Close or CloseNow, Read returns ErrClosed,
// even when messages were still buffered. After the policy stopped, Read
// returns the messages that had arrived, then a *StopError.
//
// The Conn reads ahead a few messages; while they wait for Read the
// connection is not read, so a peer's pong cannot be seen and the
// heartbeat pauses. Call Read for as long as the server may send data.
func (c *Conn) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	if c.isClosing() {
		return 0, nil, ErrClosed
	}
	select {
	case m := <-c.msgs:
		return m.typ, m.data, nil
	default:
	}
	select {
	case <-c.closing:
		return 0, nil, ErrClosed
	case m := <-c.msgs:
		if c.isClosing() {
			return 0, nil, ErrClosed
		}
		return m.typ, m.data, nil
	case <-c.stopped:
		return c.readAfterStop()
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// readAfterStop returns what had arrived before the policy stopped the
// Conn, in order (the read-ahead, then any carried over), then the reason.
func (c *Conn) readAfterStop() (websocket.MessageType, []byte, error) {
	if c.isClosing() {
		return 0, nil, ErrClosed
	}
	select {
	case m := <-c.msgs:
		return m.typ, m.data, nil
	default:
	}
	c.mu.Lock()
	if len(c.carry) > 0 {
		m := c.carry[0]
		c.carry = c.carry[1:]
		c.mu.Unlock()
		return m.typ, m.data, nil
	}
	c.mu.Unlock()
	return 0, nil, c.endErr()
}

// Write writes a whole message. While the Conn is reconnecting, Write waits
// for the next connection, bounded by ctx. It returns nil only when the whole
// message was written to a live connection; otherwise an error, and the
// message may or may not have reached the peer.
//
// ctx is passed to websocket.Conn.Write: if it ends while the message is
// being written, coder/websocket closes that connection (a half-written
// frame cannot be taken back) and the Conn reconnects.
func (c *Conn) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	if s := c.cur.Load(); s != nil {
		return s.write(ctx, typ, p)
	}
	for {
		c.mu.Lock()
		s, ch, state := c.sess, c.changed, c.state
		c.mu.Unlock()
		if state == StateClosed {
			return c.endErr()
		}
		if s != nil && !s.dead.Load() {
			return s.write(ctx, typ, p)
		}
		if c.cfg.sendQueue > 0 {
			return c.enqueue(ctx, typ, p)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wsreconnect: write: waiting for a connection: %w", ctx.Err())
		}
	}
}

// enqueue queues a copy of p for the next connection, unless the Conn went
// live or ended meanwhile.
func (c *Conn) enqueue(ctx context.Context, typ websocket.MessageType, p []byte) error {
	c.mu.Lock()
	s, state := c.sess, c.state
	switch {
	case state == StateClosed, c.isClosing():
		c.mu.Unlock()
		return c.endErr()
	case s != nil && !s.dead.Load() && len(c.queue) == 0:
		c.mu.Unlock()
		return s.write(ctx, typ, p)
	case len(c.queue) >= c.cfg.sendQueue:
		c.mu.Unlock()
		return ErrSendQueueFull
	}
	c.queue = append(c.queue, message{typ, bytes.Clone(p)})
	c.mu.Unlock()
	return nil
}

// Close ends the Conn: it closes the current connection with a close
// handshake carrying code and reason, stops reconnecting, and returns once
// every goroutine of the Conn has ended. The handshake follows
// websocket.Conn.Close, which waits up to 5 s for the write and 5 s for the
// peer's close frame; on a peer that may be dead, CloseNow returns sooner.
// Blocked Read and Write calls return ErrClosed; no callback fires after
// Close returns. Close is idempotent.
//
// code must be one a close frame may carry (1000-1003, 1007-1014,
// 3000-4999) and reason at most 123 bytes of UTF-8; otherwise the Conn is
// closed as by CloseNow and Close returns an error saying why.
//
// Called from inside an OnConnect or OnDisconnect function, the policy, or
// the DialFunc, Close does not wait: the Conn ends as soon as that function
// returns. A connection still in OnConnect, or writing the send queue, is
// closed without a close frame.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	if err := validCloseFrame(code, reason); err != nil {
		return errors.Join(err, c.shutdown(false, 0, ""))
	}
	return c.shutdown(true, code, reason)
}

// CloseNow ends the Conn at once, without a close handshake: it stops
// reconnecting, closes the current connection and returns once every
// goroutine of the Conn has ended (see Close for calls from a callback).
// It is idempotent. Called while a Close handshake is in progress, it waits
// for that handshake: coder/websocket offers no way to abort one, and bounds
// it at 5 s to write the close frame and 5 s for the answer. To bound a
// shutdown more tightly, call CloseNow instead of Close.
func (c *Conn) CloseNow() error {
	return c.shutdown(false, 0, "")
}

func (c *Conn) shutdown(graceful bool, code websocket.StatusCode, reason string) error {
	c.mu.Lock()
	var s *session
	var cancel context.CancelFunc
	if !c.isClosing() { // closing is closed under mu, so this is the first call
		close(c.closing)
		s, cancel = c.sess, c.cancelAttempt
	}
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	// The live session is closed here, on the caller's goroutine: the
	// supervisor is its read pump, and must go on reading for the close
	// handshake to complete.
	var closeErr error
	if s != nil {
		s.hb.stop()
		if graceful && !s.dead.Load() {
			closeErr = s.ws.Close(code, reason)
			if errors.Is(closeErr, net.ErrClosed) {
				closeErr = nil // it had just dropped: nothing to close
			}
		}
		_ = s.ws.CloseNow()
	}
	if g := goid(); g == c.supervisor.Load() || g == c.dialer.Load() {
		// Called from a callback (OnConnect, OnDisconnect, the policy, the
		// DialFunc): waiting would wait for ourselves. The Conn ends as
		// soon as the callback returns.
		return nil
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if closeErr != nil {
		return errors.Join(fmt.Errorf("wsreconnect: close: %w", closeErr), c.unsent)
	}
	return c.unsent
}

// attemptContext returns the ctx for one dial, OnConnect or queue flush:
// it ends after the dial timeout or when Close is called.
func (c *Conn) attemptContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(c.base, c.cfg.dialTimeout)
	c.mu.Lock()
	if c.isClosing() {
		cancel()
	} else {
		c.cancelAttempt = cancel
	}
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		c.cancelAttempt = nil
		c.mu.Unlock()
		cancel()
	}
}

func validCloseFrame(code websocket.StatusCode, reason string) error {
	switch {
	case code == websocket.StatusNoStatusRcvd, code == websocket.StatusAbnormalClosure,
		code == websocket.StatusTLSHandshake, code == 1004,
		code < websocket.StatusNormalClosure,
		code > websocket.StatusBadGateway && code < 3000,
		code > 4999:
		return fmt.Errorf("wsreconnect: close code %d may not be sent; closed without a close frame", int(code))
	case len(reason) > 123:
		return fmt.Errorf("wsreconnect: close reason of %d bytes exceeds 123; closed without a close frame", len(reason))
	case !utf8.ValidString(reason):
		return errors.New("wsreconnect: close reason is not valid UTF-8; closed without a close frame")
	}
	return nil
}

// goid returns the current goroutine's id, parsed from "goroutine N [".
// Only Close uses it, to avoid waiting for itself when called from a
// callback; any other goroutine's Close waits for the supervisor to end.
func goid() uint64 {
	var buf [32]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("wsreconnect: cannot read the goroutine id: " + err.Error())
	}
	return id
}

func (c *Conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

func (c *Conn) logger() *slog.Logger { return c.cfg.logger }

// endErr is the error Read and Write return once the Conn has ended.
func (c *Conn) endErr() error {
	if c.isClosing() {
		return ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopErr != nil {
		return c.stopErr
	}
	return ErrClosed
}

// broadcastLocked wakes every Write waiting for a change. c.mu must be held.
func (c *Conn) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// errClosing stops publish when Close came first.
var errClosing = errors.New("wsreconnect: closing")

// publish writes the send queue to s, in order, then makes s the live
// session. The queue is checked empty under the same lock that publishes s,
// so no queued message is left behind; the same lock tells Close about s,
// or publish about Close. A failed write leaves its message at the head of
// the queue and s unpublished.
func (c *Conn) publish(s *session) error {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			break
		}
		m := c.queue[0]
		c.mu.Unlock()
		ctx, cancel := c.attemptContext()
		err := s.ws.Write(ctx, m.typ, m.data)
		cancel()
		if err != nil {
			return fmt.Errorf("wsreconnect: writing the send queue: %w", err)
		}
		c.mu.Lock()
		c.queue[0] = message{}
		c.queue = c.queue[1:]
		c.mu.Unlock()
	}
	if c.isClosing() {
		c.mu.Unlock()
		return errClosing
	}
	c.sess = s
	c.connects++
	c.state = StateConnected
	c.cur.Store(s)
	c.broadcastLocked()
	if !c.firstSent {
		c.firstSent = true
		c.first <- nil
	}
	c.mu.Unlock()
	return nil
}

// unpublish retires s after it ended; Writes wait for the next session.
func (c *Conn) unpublish(s *session) {
	c.cur.CompareAndSwap(s, nil)
	c.mu.Lock()
	c.sess = nil
	c.state = StateConnecting
	c.broadcastLocked()
	c.mu.Unlock()
}

// recordDisconnect lets Dial return a final failure before the first
// connection.
func (c *Conn) recordDisconnect(d Disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = d
	if d.Decision >= 0 && int(d.Decision) < len(c.disconnects) {
		c.disconnects[d.Decision]++
	}
	if !d.Reconnect && !c.firstSent {
		c.firstSent = true
		c.first <- &StopError{Disconnect: d}
	}
}

// finish marks the Conn ended: stopErr is the policy's reason, or nil after
// Close.
func (c *Conn) finish(stopErr error) {
	c.cur.Store(nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.queue); n > 0 {
		c.unsent = &UnsentError{Count: n}
		c.queue = nil
	}
	c.sess = nil
	c.state = StateClosed
	if stopErr != nil {
		c.stopErr = stopErr
	}
	if !c.firstSent {
		c.firstSent = true
		if stopErr == nil {
			stopErr = ErrClosed
		}
		c.first <- stopErr
	}
	c.broadcastLocked()
	close(c.stopped)
}
