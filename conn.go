package wsreconnect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
// timeout or on Close; it must dial with that ctx. On a failed handshake it
// should return the *http.Response, as websocket.Dial does, so that the
// status and Retry-After can be classified.
type DialFunc func(ctx context.Context) (*websocket.Conn, *http.Response, error)

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

// phase is where the supervisor is in its loop; Reconnect and Close act
// on it.
type phase int

const (
	phaseDialing    phase = iota // waiting on the limiter, or in the DialFunc
	phaseConnecting              // OnConnect, then the send queue, on c.sess
	phaseLive                    // c.sess is published and served
	phaseWaiting                 // after an end: the policy, OnDisconnect, the backoff wait
	phaseEnded
)

// The lifecycle, in one place.
//
// Goroutines, each with one owner that starts it and waits for it:
//   - The supervisor (Conn.run, reconnect.go) is the Conn's one long-lived
//     goroutine. Dial starts it; it closes done when it returns. It runs the
//     loop: dial, OnConnect, serve the connection, classify its end,
//     OnDisconnect, wait. While a connection is live, the supervisor is its
//     reader (session.serve, the pump), so an idle Conn has one goroutine,
//     as a plain coder/websocket client with its reader does.
//   - Each dial runs on a short-lived goroutine the supervisor starts and
//     waits for (dialOnOwnStack), to keep the supervisor's stack small.
//   - A session (session.go) is one connection. Its tasks are the Writes
//     on it (the application's goroutines, counted while they use it), the
//     close handshake, a pending kill, and the heartbeat's timer and pings
//     (heartbeat.go); whoever needs one starts it, and the supervisor waits
//     for all of them when it retires the session, after which none starts.
//     So what a Write saw is recorded before the session's end is decided.
//
// State, each piece with one owner:
//   - The supervisor owns the schedules and the session it serves.
//   - c.mu guards the state, the phase, the counters, the send queue and
//     c.sess, through which Close and Reconnect act on the connection.
//   - A session's end is recorded by whoever sees it (session.mu) and
//     decided once, by session.endErr.
//   - The inbox (Read's messages) has its own lock and belongs to the Conn,
//     so what a connection received stays readable after it ended.
//
// Close ends it all and waits for done, except while one of the
// application's callbacks runs (the caller may be in it): Close never waits
// for the application's own code, so it needs no goroutine ids and a
// callback that waits for a helper calling Close cannot deadlock. No
// callback starts once Close was called.

// Conn is a WebSocket connection that redials when it drops. Read and Write
// keep working across reconnects. All methods are safe for concurrent use.
//
// A Conn runs one goroutine for its lifetime, which is also the reader of
// the live connection: an idle Conn costs the same one goroutine a plain
// coder/websocket client needs for its reader. A dial runs on a
// short-lived goroutine of its own; the heartbeat is a timer, with a
// goroutine only while a ping waits for its pong. Close, CloseNow and a
// policy stop end them all; Done tells when they have.
type Conn struct {
	cfg  config
	dial DialFunc

	// base carries the values of Dial's ctx, never its cancellation: each
	// attempt derives its own ctx from it and registers its cancel in
	// cancelAttempt, which Close calls.
	base context.Context

	closeCalled chan struct{} // closed by the first Close or CloseNow, under mu
	done        chan struct{} // closed when the supervisor has returned
	readStop    chan struct{} // closed with the first of closeCalled and the Conn's end: Read stops waiting
	first       chan error    // the outcome of the first connection, for Dial

	// ended ends when Close is called: the ctx of waits that only Close
	// bounds (the dial limiter).
	ended context.Context
	end   context.CancelFunc

	inbox inbox
	cur   atomic.Pointer[session] // the live session, for Write's fast path

	mu            sync.Mutex
	state         State
	phase         phase
	sess          *session           // the session set up or served, in phaseConnecting and phaseLive
	changed       chan struct{}      // closed and replaced on every change of state
	cancelAttempt context.CancelFunc // of the dial or OnConnect under way
	wake          chan struct{}      // Reconnect wakes the supervisor's wait (cap 1)
	wakeNow       bool               // a Reconnect cuts the coming wait short
	callbacks     int                // the application's callbacks running now
	stopErr       error              // why the Conn ended when the policy stopped it
	closeErr      error              // the close handshake's error, for Close
	firstSent     bool
	queue         []message // the send queue (WithSendQueue), oldest first
	unsent        error     // an *UnsentError once the Conn has ended with a queue
	counts        counts    // for Stats
}

// Dial starts a Conn and returns once its first connection is up (after
// OnConnect). Transient failures before that are retried on the schedules,
// bounded by ctx; a failure the policy stops on (a 401, a 1008) is returned
// at once as a *StopError. ctx bounds only the first connection, as with
// websocket.Dial; later reconnects run until Close.
func Dial(ctx context.Context, dial DialFunc, opts ...Option) (*Conn, error) {
	if dial == nil {
		return nil, fmt.Errorf("%w: nil DialFunc", ErrInvalidOption)
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
		cfg:         cfg,
		dial:        dial,
		base:        context.WithoutCancel(ctx),
		closeCalled: make(chan struct{}),
		done:        make(chan struct{}),
		readStop:    make(chan struct{}),
		first:       make(chan error, 1),
		inbox:       newInbox(),
		changed:     make(chan struct{}),
		wake:        make(chan struct{}, 1),
	}
	c.ended, c.end = context.WithCancel(c.base)
	c.counts.downSince = time.Now()
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
		<-c.done
		err := fmt.Errorf("wsreconnect: dial: %w", context.Cause(ctx))
		if last := c.Stats().LastDisconnect; last.Attempt > 0 {
			err = fmt.Errorf("%w; last attempt: %s", err, last.what())
		}
		return nil, err
	}
}

// Read returns the next whole message. Messages arrive in order and are
// never duplicated by the Conn; Read keeps working across reconnects, and
// returns the messages a connection received even after that connection
// is gone. ctx bounds this call only: when it ends, Read returns its error
// and the connection is unaffected. After Close or CloseNow, Read returns
// ErrClosed, even when messages were still buffered. After the policy
// stopped, Read returns the messages that had arrived, then a *StopError.
//
// The Conn reads ahead a few messages; while they wait for Read the
// connection is not read, so a peer's pong cannot be seen and the
// heartbeat pauses. Call Read for as long as the server may send data.
func (c *Conn) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	if c.isClosing() {
		return 0, nil, ErrClosed
	}
	m, ok, err := c.inbox.take(ctx, c.readStop)
	switch {
	case c.isClosing():
		return 0, nil, ErrClosed
	case err != nil:
		return 0, nil, err
	case !ok:
		return 0, nil, c.endErr()
	}
	return m.typ, m.data, nil
}

// Write writes a whole message. While the Conn is reconnecting, Write waits
// for the next connection, bounded by ctx. It returns nil only when the whole
// message was written to a live connection; otherwise an error, and the
// message may or may not have reached the peer. A ctx that has already
// ended is an error at once, and costs no connection.
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
		if state == StateConnected && !s.ended.Load() {
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

// Close ends the Conn: it closes the current connection with a close
// handshake carrying code and reason, stops reconnecting, and returns once
// every goroutine of the Conn has ended. The handshake follows
// websocket.Conn.Close, which waits up to 5 s for the write and 5 s for the
// peer's close frame; CloseNow, called meanwhile or instead, cuts it short.
// Blocked Read and Write calls return ErrClosed; no callback starts once
// Close was called. Close is idempotent.
//
// code must be one a close frame may carry (1000-1003, 1007-1014,
// 3000-4999) and reason at most 123 bytes of UTF-8; otherwise the Conn is
// closed as by CloseNow and Close returns an error saying why.
//
// Close never waits for the application's own code: called while a
// callback (the DialFunc, OnConnect, OnDisconnect, the policy, the ping
// function, the dial limiter) is running, possibly from inside it, Close
// returns once it has stopped everything else, and the Conn ends as soon
// as that callback returns (Done is closed then). A connection still in
// OnConnect, or writing the send queue, is closed without a close frame.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	if err := validCloseFrame(code, reason); err != nil {
		return errors.Join(err, c.shutdown(false, 0, ""))
	}
	return c.shutdown(true, code, reason)
}

// CloseNow ends the Conn at once, without a close handshake (or cutting
// short one that Close started): it stops reconnecting, closes the current
// connection and returns once every goroutine of the Conn has ended (see
// Close for calls during a callback). It is idempotent.
func (c *Conn) CloseNow() error {
	return c.shutdown(false, 0, "")
}

func (c *Conn) shutdown(graceful bool, code websocket.StatusCode, reason string) error {
	c.mu.Lock()
	first := !c.isClosing()
	if first {
		close(c.closeCalled)
		c.stopReads()
		signal(c.wake)
	}
	s, ph, cancel := c.sess, c.phase, c.cancelAttempt
	inCallback := c.callbacks > 0
	c.mu.Unlock()
	if first {
		c.end()
		c.inbox.drop()
		if cancel != nil {
			cancel()
		}
	}
	if s != nil {
		if first && graceful && ph == phaseLive && !s.ended.Load() {
			s.closeHandshake(code, reason, closeGrace)
		} else if !graceful {
			s.kill()
		}
	}
	if inCallback {
		return nil
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if first && graceful && c.closeErr != nil {
		// The handshake this Close started failed (or CloseNow cut it).
		return errors.Join(fmt.Errorf("wsreconnect: close: %w", c.closeErr), c.unsent)
	}
	return c.unsent
}

// Reconnect drops the current connection and dials again at once, without
// a backoff wait: after a network change, a token rotation, or a server
// message that says "reconnect". It returns at once: it waits neither for
// the close handshake nor for the new connection.
//
//   - A live connection is closed with a close frame, 1000 "reconnecting"
//     (the one code the browser's API also allows), after at most 1 s for
//     the server's answer. Messages it received before stay readable; as in
//     any close handshake, those that arrive after it sent the close frame
//     may be discarded. Its end is reported to OnDisconnect once, with Err
//     wrapping ErrReconnectRequested, Decision Retry, Reconnect true and
//     Delay 0; the policy is not consulted.
//   - During the wait before the next attempt (and from OnDisconnect, for
//     the wait the Disconnect announces), it cuts the wait short.
//   - From OnConnect, or while the send queue is written, the connection
//     being set up is dropped the same way once OnConnect returns.
//   - While a dial is under way, it does nothing: that dial is the new
//     connection. After the Conn has ended, it does nothing.
//
// A requested reconnect counts as an end like any other for Attempt (which
// resets after a stable connection) and for resetting the schedules, but
// it does not advance them: the next failure waits what it would have
// waited. Calling Reconnect on every connection (say, from OnConnect)
// makes a dial loop without backoff; WithDialLimiter bounds it.
func (c *Conn) Reconnect() {
	c.mu.Lock()
	s, ph, connects := c.sess, c.phase, c.counts.connects
	switch ph {
	case phaseConnecting:
		s.markReconnect()
		s = nil
	case phaseLive:
	case phaseWaiting:
		c.wakeNow = true
		signal(c.wake)
		s = nil
	default:
		s = nil
	}
	c.mu.Unlock()
	if s == nil {
		return
	}
	if s.markReconnect() {
		s.reconnect()
		return
	}
	// It ended on its own a moment ago: cut the wait after it instead,
	// unless a newer connection is up by now, which answers the call.
	if testHookReconnectEnded != nil {
		testHookReconnectEnded()
	}
	c.mu.Lock()
	if c.counts.connects == connects && (c.phase == phaseLive || c.phase == phaseWaiting) {
		c.wakeNow = true
		signal(c.wake)
	}
	c.mu.Unlock()
}

// testHookReconnectEnded, if set, runs when Reconnect finds that the
// connection had already ended.
var testHookReconnectEnded func()

// Done returns a channel that is closed once the Conn has ended (Close,
// CloseNow or a policy stop) and all its goroutines are gone.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the Conn runs; once Close or CloseNow was called,
// ErrClosed; once the policy stopped it, the *StopError, as Read does.
func (c *Conn) Err() error {
	if c.isClosing() {
		return ErrClosed
	}
	select {
	case <-c.done:
		return c.endErr()
	default:
		return nil
	}
}

// Subprotocol returns the subprotocol negotiated by the live connection,
// "" when none was or while the Conn is reconnecting.
func (c *Conn) Subprotocol() string {
	if s := c.cur.Load(); s != nil {
		return s.subprotocol
	}
	return ""
}

// State returns the connection state at this instant: StateClosed as
// soon as Close or CloseNow has been called.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosing() {
		return StateClosed
	}
	return c.state
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

func (c *Conn) isClosing() bool {
	select {
	case <-c.closeCalled:
		return true
	default:
		return false
	}
}

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

// callback runs fn, the application's code, counted so that Close does
// not wait for it. It reports false, without running fn, once Close was
// called.
func (c *Conn) callback(fn func()) bool {
	c.mu.Lock()
	if c.isClosing() {
		c.mu.Unlock()
		return false
	}
	c.callbacks++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.callbacks--
		c.mu.Unlock()
	}()
	fn()
	return true
}

// stopReads makes Reads stop waiting (once). c.mu must be held.
func (c *Conn) stopReads() {
	select {
	case <-c.readStop:
	default:
		close(c.readStop)
	}
}

// broadcastLocked wakes every Write waiting for a change. c.mu must be held.
func (c *Conn) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}
