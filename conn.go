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
	// StateConnecting: no connection serves Read and Write; the Conn is
	// dialling, setting a connection up, dropping one, or waiting to dial.
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

// The lifecycle, in one place.
//
// A Conn is always in exactly one of these states (life), which with
// c.sess answers "is there a connection, and which":
//
//	state      the connection (c.sess)           what runs                            leaves for
//	dialing    none                              the limiter, then the DialFunc       settingUp, waiting, closed
//	settingUp  dialled; the pump reads it        OnConnect, then the send queue       live, ending, closed
//	live       published: Writes use it          the pump, Writes, the heartbeat      ending, closed
//	ending     being dropped; nothing new uses   the pump drains it; a close frame    waiting, closed
//	waiting    none                              the policy, OnDisconnect, the wait   dialing, closed
//	closed     none (the last one is dropped)    nothing: Close, CloseNow or a stop   -
//
// Every change of state goes through Conn.to, under c.mu, which enforces
// that table and does what entering a state means (publishing a session,
// unpublishing it, waking Writes, ending the Conn's ctx). The events that
// change it, and what each does where:
//
//   - The dial succeeds (dialing → settingUp) or fails (→ waiting).
//   - OnConnect and the send queue are done (settingUp → live).
//   - The connection ends (settingUp or live → ending): the pump's read
//     failed or the peer closed; a Write, the send queue or OnConnect
//     failed; the heartbeat found the peer dead; or Reconnect was called,
//     which sends 1000 "reconnecting". Whoever sees the end records what it
//     saw on the session (under c.mu), and session.cause ranks the records
//     once, when the connection has been retired (ending → waiting).
//   - The wait ends (waiting → dialing); Reconnect cuts it short, also when
//     called in ending, for the wait that follows.
//   - Close or CloseNow (any → closed): a live connection gets Close's
//     close frame; one in settingUp is closed without one; one in ending
//     keeps the close frame it has (a Reconnect's).
//   - The policy stops (waiting → closed).
//
// Goroutines, each with one owner that starts it and waits for it:
//   - The supervisor (Conn.run, reconnect.go) is the Conn's one long-lived
//     goroutine. Dial starts it; it closes done when it returns. It walks
//     the states above. From the moment a connection exists it is its
//     reader (session.serve, the pump), so an idle Conn has one goroutine,
//     as a plain coder/websocket client with its reader does.
//   - A session's tasks: the setup (OnConnect, then the send queue), the
//     Writes on it (the application's goroutines, counted while they use
//     it), the close handshake, a pending kill, the heartbeat's timer and
//     pings. Whoever needs one starts it; the supervisor waits for all of
//     them when it retires the session, after which none starts.
//   - The application's callbacks (the DialFunc, the dial limiter,
//     OnConnect, the policy, OnDisconnect, the ping function) each run on
//     a goroutine of their own, which their caller waits for, until the
//     Conn is closed: the Conn never waits for the application's code once
//     Close was called (callback), so Close needs no goroutine ids, and a
//     callback that calls Close, or waits for a goroutine that does, cannot
//     deadlock. No callback starts once Close was called.
//
// State, each piece with one owner:
//   - c.mu guards the state, c.sess, the send queue, the counters, and what
//     each session recorded of its end.
//   - The supervisor owns the schedules.
//   - The inbox (Read's messages) has its own lock and belongs to the Conn,
//     so what a connection received stays readable after it ended.
//   - A session's own mechanics (its tasks, the close handshake, the kill)
//     are under session.mu.
type life uint8

const (
	dialing life = iota
	settingUp
	live
	ending
	waiting
	closed
)

func (l life) String() string {
	return [...]string{"dialing", "setting up", "live", "ending", "waiting", "closed"}[l]
}

// next[l] holds the states l may change to.
var next = [...]uint8{
	dialing:   1<<settingUp | 1<<waiting | 1<<closed,
	settingUp: 1<<live | 1<<ending | 1<<closed,
	live:      1<<ending | 1<<closed,
	ending:    1<<waiting | 1<<closed,
	waiting:   1<<dialing | 1<<closed,
	closed:    0,
}

// Conn is a WebSocket connection that redials when it drops. Read and Write
// keep working across reconnects. All methods are safe for concurrent use.
//
// A Conn runs one goroutine for its lifetime, which is also the reader of
// the connection: an idle Conn costs the same one goroutine a plain
// coder/websocket client needs for its reader. A dial, OnConnect and the
// other callbacks run on short-lived goroutines of their own; the heartbeat
// is a timer, with a goroutine only while a ping waits for its pong. Close,
// CloseNow and a policy stop end them all; Done tells when they have.
type Conn struct {
	cfg  config
	dial DialFunc

	// base carries the values of Dial's ctx, never its cancellation.
	base context.Context
	// end ends when the Conn enters closed: the callbacks, the dial
	// limiter and Read wait on it.
	end    context.Context
	cancel context.CancelFunc

	done  chan struct{} // closed when the supervisor has returned
	first chan error    // the outcome of the first connection, for Dial

	inbox inbox
	cur   atomic.Pointer[session] // the live session, for Write's fast path; set and cleared by to
	trace *tracer                 // nil without WithTrace

	mu         sync.Mutex
	cancelDial context.CancelFunc // ends the dial under way, if any (Close)
	sess       *session           // from settingUp until the supervisor has retired it
	changed    chan struct{}      // closed and replaced on every change of state
	wake       chan struct{}      // cuts the supervisor's wait short (cap 1)
	stopErr    error              // why the Conn ended, when the policy stopped it
	closeErr   error              // the close handshake's error, for Close
	queue      []message          // the send queue (WithSendQueue), oldest first
	unsent     error              // an *UnsentError once the Conn has ended with a queue
	counts     counts             // for Stats

	// The small ones together, so that an idle Conn stays in its size class.
	closeCalled atomic.Bool // Close or CloseNow was called (set under mu)
	life        life
	wakeNow     bool // a Reconnect asked for no wait before the next dial
	firstSent   bool
	offline     bool // the next dial waits for the network (awaitNetwork)
	dialAnyway  bool // Reconnect or Probe said not to wait for it
}

// Dial starts a Conn and returns once its first connection is up (after
// OnConnect). Transient failures before that are retried on the schedules,
// bounded by ctx; a failure the policy stops on (a 401, a 1008) is returned
// at once as a *StopError. ctx bounds only the first connection, as with
// websocket.Dial; later reconnects run until Close. Dial returns when ctx
// ends, whatever a callback of the application is doing (see Close).
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
		cfg:     cfg,
		dial:    dial,
		base:    context.WithoutCancel(ctx),
		done:    make(chan struct{}),
		first:   make(chan error, 1),
		inbox:   newInbox(),
		changed: make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
	c.end, c.cancel = context.WithCancel(c.base)
	c.counts.downSince = time.Now()
	if len(cfg.traces) > 0 {
		c.trace = newTracer(cfg.traces)
		c.trace.emit(traceEvent{kind: evState, state: StateConnecting})
	}
	go c.run()

	select {
	case err := <-c.first:
		if err == nil {
			return c, nil
		}
		// OnDisconnect is told of the failure before Dial returns it,
		// unless ctx ends first.
		select {
		case <-c.done:
		case <-ctx.Done():
			_ = c.CloseNow()
		}
		return nil, err
	case <-ctx.Done():
		_ = c.CloseNow()
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
// stopped, Read returns the messages that had arrived, then a *StopError
// (also once Close has been called since).
//
// The Conn reads ahead a few messages; while they wait for Read the
// connection is not read, so a peer's pong cannot be seen and the
// heartbeat pauses. Call Read for as long as the server may send data.
func (c *Conn) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	m, ok, err := c.inbox.take(ctx, c.end.Done())
	switch {
	case err != nil:
		return 0, nil, fmt.Errorf("wsreconnect: read: %w", err)
	case !ok:
		return 0, nil, c.endErr()
	}
	return m.typ, m.data, nil
}

// Write writes a whole message. While the Conn is reconnecting, Write waits
// for the next connection, bounded by ctx. It returns nil only when the whole
// message was written to a live connection; otherwise an error, and the
// message may or may not have reached the peer. A ctx that has already
// ended is an error at once, and costs no connection (with a send queue
// too: nothing is queued).
//
// ctx is passed to websocket.Conn.Write: if it ends while the message is
// being written, coder/websocket closes that connection (a half-written
// frame cannot be taken back) and the Conn reconnects.
func (c *Conn) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	if s := c.cur.Load(); s != nil {
		if err := s.write(ctx, typ, p); err != errSessionEnded {
			return err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wsreconnect: write: %w", err)
		}
		c.mu.Lock()
		s, ch := c.sess, c.changed
		switch {
		case c.life == closed:
			c.mu.Unlock()
			return c.endErr()
		case c.life == live:
			c.mu.Unlock()
			if err := s.write(ctx, typ, p); err != errSessionEnded {
				return err
			}
			continue
		case c.cfg.sendQueue > 0:
			err := c.enqueueLocked(typ, p)
			c.mu.Unlock()
			return err
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wsreconnect: write: waiting for a connection: %w", ctx.Err())
		}
	}
}

// Close ends the Conn: it closes the current connection with a close
// handshake carrying code and reason, stops reconnecting, and returns once
// every goroutine of the Conn has ended. The handshake waits up to 10 s
// for the peer's answer (coder/websocket's bounds: 5 s to write, 5 s for
// the answer); CloseNow, called meanwhile or instead, cuts it short.
// Blocked Read and Write calls return ErrClosed; no callback starts once
// Close was called. Close is idempotent. It returns an *UnsentError when
// queued messages were never sent (see WithSendQueue).
//
// A close frame goes only to a live connection: one still in OnConnect, or
// writing the send queue, is closed without one; one that Reconnect is
// dropping keeps its 1000 "reconnecting", and Close waits for that
// handshake instead. messages that arrive after the close frame was sent
// may be discarded, as in any close handshake.
//
// code must be one a close frame may carry (1000-1003, 1007-1014,
// 3000-4999) and reason at most 123 bytes of UTF-8; otherwise the Conn is
// closed as by CloseNow and Close returns an error saying why.
//
// Close never waits for the application's own code: a callback (the
// DialFunc, OnConnect, OnDisconnect, the policy, the ping function, the
// dial limiter) that is running when Close is called, or that calls Close
// itself, is left to return on its own: its ctx, if it has one, has ended,
// and what it returns is discarded (a connection the DialFunc returns
// late is closed). Done is closed when the Conn's own goroutines have
// ended, which does not wait for such a callback either.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	if err := validCloseFrame(code, reason); err != nil {
		return errors.Join(err, c.shutdown(false, 0, ""))
	}
	return c.shutdown(true, code, reason)
}

// CloseNow ends the Conn at once, without a close handshake (or cutting
// short one that Close started): it stops reconnecting, closes the current
// connection and returns once every goroutine of the Conn has ended (see
// Close about the application's callbacks). It is idempotent.
func (c *Conn) CloseNow() error {
	return c.shutdown(false, 0, "")
}

func (c *Conn) shutdown(graceful bool, code websocket.StatusCode, reason string) error {
	c.mu.Lock()
	first := !c.closeCalled.Load()
	from, s := c.life, c.sess
	if first {
		c.closeCalled.Store(true)
		c.inbox.drop()
		if from != closed {
			c.to(closed, s)
		}
	}
	c.mu.Unlock()
	switch {
	case s == nil:
	case first && graceful && from == live:
		s.closeHandshake(code, reason, closeGrace)
	case graceful && (from == ending || !first):
		// A handshake under way (a Reconnect's, or an earlier Close's)
		// keeps its close frame; a drain ends within its grace.
	default:
		s.kill()
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if first && graceful && from == live && c.closeErr != nil {
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
//   - A connection that is up, or being set up (in OnConnect, or writing the
//     send queue), is dropped at once, with a close frame, 1000
//     "reconnecting" (the one code the browser's API also allows), after
//     at most 1 s for the server's answer. Messages it received before stay
//     readable; as in any close handshake, those that arrive after it sent
//     the close frame may be discarded. Its end is reported to OnDisconnect
//     once, with Err wrapping ErrReconnectRequested, Decision Retry,
//     Reconnect true and Delay 0; the policy is not consulted.
//   - While a connection is being dropped, during the wait before the next
//     attempt, and from OnDisconnect, it cuts that wait short.
//   - While a dial is under way, it does nothing: that dial is the new
//     connection. While the Conn holds its next dial because the browser
//     says it is offline, it dials anyway. After the Conn has ended, it
//     does nothing.
//
// A requested reconnect counts as an end like any other for Attempt (which
// resets after a stable connection) and for resetting the schedules, but
// it does not advance them: the next failure waits what it would have
// waited. Calling Reconnect on every connection (say, from OnConnect)
// makes a dial loop without backoff; WithDialLimiter bounds it.
func (c *Conn) Reconnect() {
	c.mu.Lock()
	switch s := c.sess; c.life {
	case settingUp, live:
		s.requested = true
		c.to(ending, s)
		c.mu.Unlock()
		s.closeHandshake(websocket.StatusNormalClosure, "reconnecting", reconnectGrace)
		return
	case ending, waiting:
		c.wakeNow = true
		signal(c.wake)
	case dialing:
		c.askedToDial()
	}
	c.mu.Unlock()
}

// Probe checks the connection now, for an application that knows more
// about the network than the Conn can (a reachability callback on a
// phone, a network-change watcher, a VPN that came up). A connection that
// is up is probed at once: a ping (the ping function, if WithPingFunc gave
// one), answered by anything that arrives within the heartbeat's timeout.
// A healthy connection is kept; a dead one is dropped as the heartbeat
// would drop it (code 1006, Err wrapping ErrHeartbeatTimeout) and redialed
// at once, without the wait the schedule would impose. A Conn waiting to
// redial dials at once, also one that holds its dial because the browser
// says it is offline; one that is dialing, or being set up before its
// heartbeat starts, goes on as it is. Probe returns at once: what it finds
// is reported as any end is (OnDisconnect, State, Trace).
//
// Reconnect, by contrast, drops the connection whatever its health. Probe
// works with the heartbeat off too (WithHeartbeat(0, timeout) sets the
// probe's timeout; 10 s if it is not above 0); not in the browser without
// WithPingFunc, where a page has nothing to probe with. While messages
// wait for Read the connection is not read, so nothing is judged: the
// probe has no verdict.
//
// The Conn probes by itself after the process or the machine slept (see
// "Sleep and network changes" in the README).
func (c *Conn) Probe() {
	c.mu.Lock()
	switch s := c.sess; c.life {
	case settingUp, live:
		c.mu.Unlock()
		s.hb.probeNow()
		return
	case ending, waiting:
		c.wakeNow = true
		signal(c.wake)
	case dialing:
		c.askedToDial()
	}
	c.mu.Unlock()
}

// wallNow reads the wall clock alone (no monotonic reading), to tell a
// machine's sleep by (see heartbeat.clockGap).
func (c *Conn) wallNow() time.Time {
	if f := c.cfg.fake; f != nil && f.wall != nil {
		return f.wall()
	}
	return time.Now().Round(0)
}

// WaitConnected waits until a connection serves Read and Write (State is
// StateConnected): after Dial, after Reconnect, while the Conn reconnects.
// It returns nil then; ctx's error (wrapped) if ctx ends first; and, once
// the Conn has ended, what Err says.
func (c *Conn) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		l, ch := c.life, c.changed
		c.mu.Unlock()
		switch l {
		case live:
			return nil
		case closed:
			return c.endErr()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wsreconnect: waiting for a connection: %w", ctx.Err())
		}
	}
}

// Done returns a channel that is closed once the Conn has ended (Close,
// CloseNow or a policy stop) and all its goroutines are gone (see Close
// about the application's callbacks).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the Conn runs; once it has ended, why: the
// *StopError when the policy stopped it (also after a later Close or
// CloseNow, as in a deferred CloseNow), else ErrClosed (from the moment
// Close or CloseNow was called). Read and Write return the same.
func (c *Conn) Err() error {
	if c.end.Err() == nil {
		return nil
	}
	return c.endErr()
}

// Subprotocol returns the subprotocol negotiated by the live connection,
// "" when none was or while the Conn is reconnecting.
func (c *Conn) Subprotocol() string {
	if s := c.cur.Load(); s != nil {
		return s.ws.Subprotocol()
	}
	return ""
}

// State returns the connection state at this instant: StateConnected only
// while a connection serves Read and Write (after OnConnect and the send
// queue; no longer once Reconnect was called), StateClosed as soon as Close
// or CloseNow has been called.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.life.public()
}

func (l life) public() State {
	switch l {
	case live:
		return StateConnected
	case closed:
		return StateClosed
	}
	return StateConnecting
}

// to changes the state to n, and does what entering n means. s is the
// session of settingUp (the one set up), ending (the one that ends) and
// closed (the one Close drops, if any). c.mu must be held. A change from
// closed is ignored (it reports false): Close may come first at any time.
// Any other change the table does not allow is a bug in this package.
func (c *Conn) to(n life, s *session) bool {
	from := c.life
	if from == closed {
		return false
	}
	if next[from]&(1<<n) == 0 {
		panic(fmt.Sprintf("wsreconnect: internal error: %v → %v", from, n))
	}
	c.life = n
	if c.trace != nil && from.public() != n.public() {
		c.trace.emit(traceEvent{kind: evState, state: n.public()})
	}
	switch n {
	case dialing:
		// A Reconnect from before this attempt is answered by it.
		c.wakeNow = false
		select {
		case <-c.wake:
		default:
		}
	case settingUp:
		c.sess = s
	case live:
		s.wentLive = true
		s.outage = c.counts.connectedLocked(time.Now())
		c.counts.attempt = c.counts.dials
		c.cur.Store(s)
		c.emit(traceEvent{kind: evConnected, attempt: c.counts.dials, d: s.outage, text: s.ws.Subprotocol()})
		c.sendFirst(nil)
	case ending:
		s.end()
		c.cur.CompareAndSwap(s, nil)
		if from == live {
			c.counts.downSince = time.Now()
		}
	case waiting:
		c.sess = nil
	case closed:
		c.cur.Store(nil)
		if s != nil {
			s.end()
		}
		if n := len(c.queue); n > 0 {
			c.unsent = &UnsentError{Count: n}
			c.queue = nil
			c.emit(traceEvent{kind: evQueue, dropped: n})
		}
		if !c.counts.downSince.IsZero() {
			c.counts.downtime += time.Since(c.counts.downSince)
			c.counts.downSince = time.Time{}
		}
		c.sendFirst(ErrClosed)
		c.cancel()
		if c.cancelDial != nil {
			c.cancelDial()
		}
		signal(c.wake)
		if c.trace != nil {
			c.trace.stop()
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return true
}

// sendFirst tells Dial the outcome of the first connection, once. c.mu
// must be held.
func (c *Conn) sendFirst(err error) {
	if !c.firstSent {
		c.firstSent = true
		if err == ErrClosed && c.stopErr != nil {
			err = c.stopErr
		}
		c.first <- err
	}
}

// endErr is the error Read, Write and Err return once the Conn has ended.
func (c *Conn) endErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopErr != nil {
		return c.stopErr
	}
	return ErrClosed
}

// emit queues ev for the Conn's Traces, if it has any.
func (c *Conn) emit(ev traceEvent) {
	if c.trace != nil {
		c.trace.emit(ev)
	}
}

// isClosed reports whether the Conn has entered closed.
func (c *Conn) isClosed() bool { return c.end.Err() != nil }

// callback runs fn, the application's code, on a goroutine of its own and
// waits for it to return, or for the Conn to be closed: the Conn never
// waits for the application's code once it is closed. ok is false when
// the Conn was closed first: fn may still be running, and what it returns
// is then given to discard (if not nil), not to the caller. fn does not
// start once the Conn is closed, and once callback has returned, fn has
// started or never will.
func callback[T any](c *Conn, fn func() T, discard func(T)) (v T, ok bool) {
	if c.isClosed() {
		return v, false
	}
	result := make(chan T) // unbuffered: fn's result is either taken or discarded
	entered := make(chan struct{})
	go func() {
		close(entered)
		r := fn()
		select {
		case result <- r:
		case <-c.end.Done():
			if discard != nil {
				discard(r)
			}
		}
	}()
	<-entered
	select {
	case v = <-result:
		return v, true
	case <-c.end.Done():
		return v, false
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
