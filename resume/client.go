package resume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// closeGrace bounds how long Close waits for its E frame to be written
// and for the server to close the connection after it.
const closeGrace = time.Second

// maxPendingSessions bounds the new sessions whose stream the server has
// not started yet (PROTOCOL.md: S follows W at once, so more than a few
// means a broken server).
const maxPendingSessions = 16

// The client's lifecycle, in one place.
//
// Goroutines, each with one owner that starts it and waits for it:
//   - wsreconnect's own. It runs the handshake as OnConnect, on a goroutine
//     that its Close does not wait for; the Client counts the handshake's
//     own part (after the application's OnConnect), and its end waits for
//     that (c.shaking): the Conn's end has ended the handshake's ctx, so
//     it returns at once.
//   - The reader (readLoop): Dial starts it; it reads every frame the
//     Conn delivers, and ends when the Conn ends or Close stops it. Its
//     end (retire) stops the last link, waits for the handshakes, and
//     closes done, which Close waits for.
//   - One link writer per connection (link.run): the handshake starts it,
//     and the next handshake, or the reader's end, stops it and waits.
//
// The Conn owns each connection (ws): it reads it and closes it. The
// Client only writes to it: the hello, then the link's frames. A
// handshake that finds the server breaking the protocol returns a
// *ProtocolError, which wraps the websocket.CloseError the Conn sends.
//
// State, all guarded by c.mu: the sessions, the links, the queue Read
// takes from. The Conn delivers the messages of successive connections
// through one queue, so the messages an old connection left behind may
// come after a new connection's handshake. Hence two session pointers:
//   - cur: where Writes go, switched by the handshake (the welcome);
//   - rd: whose frames the reader reads, switched when it reads the new
//     connection's S frame, the first of its stream.
//
// They differ only between a handshake that did not resume the session and
// its S frame; at that S frame Read returns the *NotRecoveredError.

// Client is the client end of a resumable session, on a *wsreconnect.Conn:
// Write's reliable messages reach the server exactly once and in order,
// and Read returns the server's exactly once and in order, across any
// number of reconnects, for as long as the server keeps the session (its
// resume window). When the server could not keep it, Read says so with a
// *NotRecoveredError, which lists the messages never confirmed. All
// methods are safe for concurrent use.
//
// A Client runs wsreconnect's goroutine, a reader, and a writer per
// connection; Close and CloseNow end them all.
type Client struct {
	cfg  config
	conn *wsreconnect.Conn

	readCtx  context.Context // ends at Close: bounds the reader's Conn.Read
	stopRead context.CancelFunc
	done     chan struct{} // closed once the reader and the last link have ended

	mu        sync.Mutex
	cur       *clientSession // where Writes go: the latest handshake's session
	rd        *clientSession // whose frames the reader reads
	pending   []started      // handshakes whose S frame the reader has not read, oldest first
	link      *link          // the current connection's writer
	conns     uint64         // connection numbers handed out
	queue     []inbound      // queue[qhead:] wait for Read
	qhead     int
	volatiles int   // volatile messages in the queue
	readable  cond  // broadcast when the queue grows or the Client ends
	room      cond  // broadcast when the outbox has room, or the session or state changed
	suspect   error // the reader dropped a malformed frame: the next must start a connection
	err       error // why the Client ended
	closing   bool  // Close or CloseNow was called
	stats     Stats
	trace     *tracer // nil without WithTrace

	// shaking counts the handshakes past the application's OnConnect. It
	// grows only under mu while the Client runs (err == nil, !closing),
	// so retire's Wait, which follows the end, sees every Add.
	shaking sync.WaitGroup
}

// clientSession is one session: both directions of it.
type clientSession struct {
	id   string
	tx   outbox   // this client's messages
	rx   receiver // the server's messages
	peer limits   // what the server announced at the latest handshake
}

// started is a range of connections whose handshake ended in sess and
// whose S frame the reader has not read yet.
type started struct {
	lo, hi uint64 // connection numbers
	sess   *clientSession
	peer   limits
}

// inbound is one entry of the queue Read takes from.
type inbound struct {
	typ  websocket.MessageType
	data []byte
	sess *clientSession // of a reliable message (nil: volatile, or a notice)
	seq  uint64
	err  error // a *NotRecoveredError
}

// cond is a broadcast a caller waits on with a ctx. Its owner's mutex
// guards it; it allocates only when someone waits.
type cond struct{ ch chan struct{} }

func (c *cond) wait() <-chan struct{} {
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// await waits for the next broadcast with mu held, releasing it
// meanwhile; it returns nil with mu held again, or ctx's error without.
func (c *cond) await(ctx context.Context, mu *sync.Mutex) error {
	ch := c.wait()
	mu.Unlock()
	select {
	case <-ch:
		mu.Lock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *cond) broadcast() {
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// Stats are a Client's counters.
type Stats struct {
	// Session is the current session's id.
	Session string
	// Sessions counts the sessions the server started for this client: 1,
	// plus one for each that was not recovered.
	Sessions int
	// Resumes counts the connections that resumed the session.
	Resumes int
	// Replayed counts the reliable messages written at the start of a
	// connection because the server had not acknowledged them.
	Replayed uint64
	// Duplicates counts the reliable messages received again, and dropped.
	Duplicates uint64
	// Unacked and UnackedBytes are the reliable messages written that the
	// server has not acknowledged yet, and their payload.
	Unacked, UnackedBytes int
	// VolatileDropped counts the volatile messages dropped because Read
	// did not keep up (see WithVolatileBacklog).
	VolatileDropped uint64
	// TraceDropped counts the events dropped because 1,024 waited for the
	// hooks of a slow Trace (see WithTrace).
	TraceDropped uint64
}

// Dial starts a Client: it dials with wsreconnect.Dial (passing the
// WithConnOptions) and returns once the first connection is up and the
// server has started the session. ctx bounds only that, as with
// wsreconnect.Dial.
func Dial(ctx context.Context, dial wsreconnect.DialFunc, opts ...Option) (*Client, error) {
	cfg, err := newConfig(clientSide, opts)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, done: make(chan struct{}), trace: newTracer(cfg.traces)}
	c.readCtx, c.stopRead = context.WithCancel(context.WithoutCancel(ctx))
	// The handshake comes first, so that an OnConnect among the caller's
	// options replaces it visibly (checked below) rather than the reverse.
	connOpts := append([]wsreconnect.Option{wsreconnect.WithOnConnect(c.handshake)}, cfg.connOpts...)
	conn, err := wsreconnect.Dial(ctx, dial, connOpts...)
	if err != nil {
		c.end(wsreconnect.ErrClosed)
		c.retire()
		return nil, err
	}
	c.mu.Lock()
	shook := c.cur != nil
	c.mu.Unlock()
	if !shook {
		_ = conn.CloseNow()
		c.end(wsreconnect.ErrClosed)
		c.retire()
		return nil, fmt.Errorf("%w: WithConnOptions: wsreconnect.WithOnConnect replaces the resume handshake; use resume.WithOnConnect", ErrInvalidOption)
	}
	c.conn = conn
	go c.readLoop()
	return c, nil
}

// Conn returns the wsreconnect.Conn the Client runs on, for its State,
// Stats, Done and Reconnect. Read, Write and Close belong to the Client.
func (c *Client) Conn() *wsreconnect.Conn { return c.conn }

// Read returns the next message from the server: each reliable message
// once, in order, across reconnects, and the volatile messages that
// arrived, in the order they came. ctx bounds this call only.
//
// When the server could not resume the session, Read returns a
// *NotRecoveredError once, where the old session's messages end; the
// next Read goes on with the new session. After Close, Read returns
// wsreconnect.ErrClosed; after the Conn stopped (a *wsreconnect.StopError)
// or the server broke the protocol (a *ProtocolError), Read returns what
// had arrived, then that error.
func (c *Client) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	c.mu.Lock()
	for {
		if c.closing {
			c.mu.Unlock()
			return 0, nil, wsreconnect.ErrClosed
		}
		if c.qhead < len(c.queue) {
			m := c.queue[c.qhead]
			c.queue[c.qhead] = inbound{}
			c.qhead++
			if c.qhead == len(c.queue) {
				c.queue, c.qhead = c.queue[:0], 0
				if cap(c.queue) > 4096 {
					c.queue = nil
				}
			}
			switch {
			case m.sess != nil:
				r := &m.sess.rx
				r.consume(m.seq)
				// Wake the writer when an ack is due, or to arm its
				// quiet-time timer for the first unacknowledged one.
				if l := c.link; l != nil && l.rx == r && (r.consumed == r.ackSent+1 || r.ackDue(c.cfg.ackEvery)) {
					l.kick()
				}
			case m.err == nil:
				c.volatiles--
			}
			c.mu.Unlock()
			if m.err != nil {
				return 0, nil, m.err
			}
			return m.typ, m.data, nil
		}
		if c.err != nil {
			c.mu.Unlock()
			return 0, nil, c.err
		}
		ch := c.readable.wait()
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("resume: read: %w", ctx.Err())
		}
		c.mu.Lock()
	}
}

// Write writes a reliable message: it is numbered, kept in the outbox,
// sent on the live connection, and sent again on the next one until the
// server acknowledges it. It returns once the message is in the outbox,
// without waiting for a connection; when the outbox is full (see
// WithOutbox), it waits for room, bounded by ctx (or fails at once with
// ErrOutboxFull, see WithOutboxFullError). A message larger than the
// server accepts is refused with ErrTooLarge.
//
// Text messages must be valid UTF-8, as for any WebSocket text message.
func (c *Client) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	if err := checkWrite(ctx, typ); err != nil {
		return err
	}
	c.mu.Lock()
	var s *clientSession
	for {
		if err := c.stateErrLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
		s = c.cur
		if peer := s.peer.message; len(p) > peer || len(p) > c.cfg.outbox.bytes {
			c.mu.Unlock()
			return fmt.Errorf("%w: %d bytes (the server accepts %d, the outbox holds %d)", ErrTooLarge, len(p), peer, c.cfg.outbox.bytes)
		}
		if s.tx.fits(len(p), c.cfg.outbox) {
			break
		}
		if c.cfg.failWhenFull {
			c.mu.Unlock()
			return ErrOutboxFull
		}
		if err := c.room.await(ctx, &c.mu); err != nil {
			return fmt.Errorf("resume: write: waiting for room in the outbox: %w", err)
		}
	}
	seq := s.tx.last() + 1
	frame := encodeData(seq, p)
	s.tx.add(outEntry{seq: seq, typ: typ, frame: frame, size: len(p)})
	if l := c.link; l != nil && !l.dead && l.rx == &s.rx {
		l.push(outItem{typ: typ, frame: frame, seq: seq})
	}
	c.mu.Unlock()
	return nil
}

// WriteVolatile writes a message that is sent only on the live connection
// and never again: it may be lost when the connection drops, and it is
// not numbered or acknowledged. It returns once the message is queued for
// the connection; ErrNotConnected while no connection is up. When
// WithVolatileBacklog messages wait to be sent, it waits, bounded by ctx
// (or fails with ErrOutboxFull, see WithOutboxFullError).
func (c *Client) WriteVolatile(ctx context.Context, typ websocket.MessageType, p []byte) error {
	if err := checkWrite(ctx, typ); err != nil {
		return err
	}
	c.mu.Lock()
	for {
		if err := c.stateErrLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
		l := c.link
		if l == nil || l.dead {
			c.mu.Unlock()
			return ErrNotConnected
		}
		if len(p) > l.peer.message {
			c.mu.Unlock()
			return fmt.Errorf("%w: %d bytes (the server accepts %d)", ErrTooLarge, len(p), l.peer.message)
		}
		if l.volatiles < c.cfg.volatile {
			l.push(outItem{typ: typ, frame: encodeData(0, p)})
			c.mu.Unlock()
			return nil
		}
		if c.cfg.failWhenFull {
			c.mu.Unlock()
			return ErrOutboxFull
		}
		if err := c.room.await(ctx, &c.mu); err != nil {
			return fmt.Errorf("resume: write volatile: %w", err)
		}
	}
}

func checkWrite(ctx context.Context, typ websocket.MessageType) error {
	if typ != websocket.MessageText && typ != websocket.MessageBinary {
		return fmt.Errorf("resume: write: message type %v is neither text nor binary", typ)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("resume: write: %w", err)
	}
	return nil
}

// Flush waits until the server has acknowledged every reliable message
// written so far, bounded by ctx. It returns ErrNotRecovered if the
// session was replaced meanwhile (Read returns the details).
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	s := c.cur
	for {
		if err := c.stateErrLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
		if c.cur != s {
			c.mu.Unlock()
			return ErrNotRecovered
		}
		if s.tx.len() == 0 {
			c.mu.Unlock()
			return nil
		}
		if err := c.room.await(ctx, &c.mu); err != nil {
			return fmt.Errorf("resume: flush: %w", err)
		}
	}
}

// Close ends the session: it tells the server (an E frame, after what is
// queued), which forgets the session at once and closes the connection
// with 1000 (if it has not within a second, Close closes it), and returns
// once every goroutine of the Client has ended. Messages never
// acknowledged are returned in an *UnconfirmedError: Flush first to wait
// for them. Close is idempotent.
func (c *Client) Close() error { return c.close(true) }

// CloseNow ends the Client at once, without telling the server (which
// keeps the session for its resume window) and without a close handshake.
// It returns as Close does.
func (c *Client) CloseNow() error { return c.close(false) }

func (c *Client) close(graceful bool) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closing = true
	unconfirmed := c.unconfirmedLocked()
	var ended, gone <-chan struct{}
	if l := c.link; graceful && l != nil && !l.dead && c.err == nil {
		l.endWanted = true
		l.kick()
		ended, gone = l.ended, l.done
	}
	c.readable.broadcast()
	c.room.broadcast()
	c.mu.Unlock()

	if ended != nil {
		// The server answers E by closing (1000), which stops the Conn:
		// wait for that, rather than cross it with a close handshake of
		// our own (each would see the other's as an error).
		t := time.NewTimer(closeGrace)
		select {
		case <-ended:
			select {
			case <-c.conn.Done():
			case <-t.C:
			}
		case <-gone:
		case <-t.C:
		}
		t.Stop()
	}
	var err error
	if graceful {
		err = c.conn.Close(websocket.StatusNormalClosure, "")
	} else {
		err = c.conn.CloseNow()
	}
	c.stopRead()
	<-c.done // the reader, the links and the handshakes have ended
	<-c.conn.Done()
	if len(unconfirmed) > 0 {
		err = errors.Join(&UnconfirmedError{Messages: unconfirmed}, err)
	}
	return err
}

// Done returns a channel that is closed once the Client has ended (Close,
// CloseNow, the Conn's policy stopped, or the server broke the protocol)
// and its goroutines are gone.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the Client runs, and then why it ended:
// wsreconnect.ErrClosed after Close, a *wsreconnect.StopError, or a
// *ProtocolError.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateErrLocked()
}

// Stats returns the Client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	if c.cur != nil {
		st.Session = c.cur.id
		st.Unacked, st.UnackedBytes = c.cur.tx.len(), c.cur.tx.bytes
	}
	st.TraceDropped = c.trace.dropped()
	return st
}

func (c *Client) stateErrLocked() error {
	if c.closing {
		return wsreconnect.ErrClosed
	}
	return c.err
}

// unconfirmedLocked returns every message written and not acknowledged,
// of every session still held, oldest first.
func (c *Client) unconfirmedLocked() []Message {
	var ms []Message
	seen := map[*clientSession]bool{nil: true}
	add := func(s *clientSession) {
		if !seen[s] {
			seen[s] = true
			ms = append(ms, s.tx.messages()...)
		}
	}
	add(c.rd)
	for _, p := range c.pending {
		add(p.sess)
	}
	add(c.cur)
	return ms
}

// end records why the Client ended (the first reason wins) and wakes every
// waiting call.
func (c *Client) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	c.readable.broadcast()
	c.room.broadcast()
}

// retire stops the last link, waits for the handshakes under way, and
// closes done: the end of the reader, called once the Client has ended
// (c.err or c.closing is set), so no handshake starts a link afterwards.
func (c *Client) retire() {
	c.mu.Lock()
	l := c.link
	c.link = nil
	c.mu.Unlock()
	if l != nil {
		l.stop()
	}
	c.shaking.Wait()
	c.trace.stop()
	close(c.done)
}

// handshake is the Conn's OnConnect: the application's own first, then the
// hello, the welcome, and the start of this connection's writer, which
// resends what the server has not acknowledged. A server that breaks the
// protocol gets a *ProtocolError back: it wraps the websocket.CloseError
// that the Conn closes the connection with, and classifies (1002 and 1008
// stop it).
func (c *Client) handshake(ctx context.Context, ws *websocket.Conn) error {
	if c.cfg.onConnect != nil {
		if err := c.cfg.onConnect(ctx, ws); err != nil {
			return err
		}
	}
	ws.SetReadLimit(int64(c.cfg.outbox.message + maxHeader))

	c.mu.Lock()
	if err := c.stateErrLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.shaking.Add(1)
	defer c.shaking.Done()
	old := c.link
	c.link = nil
	c.conns++
	k, s := c.conns, c.cur
	sid, ack := noSession, uint64(0)
	if s != nil {
		sid, ack = s.id, s.rx.consumed
		s.rx.acked(ack) // the hello acknowledges what was read
	}
	c.mu.Unlock()
	if old != nil {
		old.stop() // its connection is over: the Conn dialled this one
	}
	if h := c.cfg.handshakeHook; h != nil {
		h()
	}

	if err := ws.Write(ctx, websocket.MessageText, appendHello(nil, sid, ack, k, c.cfg.outbox)); err != nil {
		return fmt.Errorf("resume: writing the hello: %w", err)
	}
	typ, p, err := wsreconnect.ReadOnConnect(ctx)
	if err != nil {
		return fmt.Errorf("resume: waiting for the welcome: %w", err)
	}
	f, err := parseFrame(typ, p)
	if err != nil {
		// A welcome cut short by the connection's end is no fault of the
		// server's: if nothing more can be read, the connection is gone.
		if _, _, rerr := wsreconnect.ReadOnConnect(ctx); rerr != nil {
			return fmt.Errorf("resume: the connection ended during the handshake: %w", rerr)
		}
	} else if f.kind != kindWelcome {
		// A whole frame, never a welcome cut short: no need to wait.
		err = malformed("expected a welcome")
	}
	if err != nil {
		return protocolError(err)
	}

	if err := c.adopt(ws, k, s, f); err != nil {
		var fe *frameError
		if errors.As(err, &fe) {
			return protocolError(err)
		}
		return err
	}
	return nil
}

// adopt applies the welcome f to the session s the hello named (nil: a new
// one) and starts connection k's writer, which resends what the server has
// not acknowledged. A *frameError is the server's violation.
func (c *Client) adopt(ws *websocket.Conn, k uint64, s *clientSession, f frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stateErrLocked(); err != nil {
		return err
	}
	var ns *clientSession
	switch {
	case f.resumed && (s == nil || f.session != s.id):
		return malformed("resumed a session not asked for")
	case f.resumed && f.ack < s.tx.acked:
		return malformed("resumed without messages it had acknowledged")
	case f.resumed:
		if _, err := s.tx.ack(f.ack); err != nil {
			return err
		}
		ns = s
		c.stats.Resumes++
		c.trace.emit(traceEvent{resumed: true, id: s.id, replayed: s.tx.len()})
	case s != nil && f.session == s.id:
		return malformed("a new session with the old one's id")
	default:
		ns = &clientSession{id: f.session}
		c.cur = ns
		c.stats.Sessions++
		ev := traceEvent{id: ns.id}
		if s != nil {
			ev.lost, ev.unconfirmed = s.id, s.tx.len()
		}
		c.trace.emit(ev)
	}
	ns.peer = f.limits

	if n := len(c.pending); n > 0 && c.pending[n-1].sess == ns {
		p := &c.pending[n-1]
		p.hi = k
		p.peer.count = max(p.peer.count, f.limits.count)
		p.peer.bytes = max(p.peer.bytes, f.limits.bytes)
	} else {
		if len(c.pending) >= maxPendingSessions {
			return malformed("no S frame after the welcome")
		}
		c.pending = append(c.pending, started{lo: k, hi: k, sess: ns, peer: f.limits})
	}

	l := newLink(ws, &c.mu, &ns.rx, f.limits, &c.cfg)
	l.drained = c.room.broadcast
	for _, e := range ns.tx.entries[ns.tx.head:] {
		l.queue = append(l.queue, outItem{typ: e.typ, frame: e.frame, seq: e.seq})
	}
	c.stats.Replayed += uint64(len(l.queue))
	c.link = l
	c.room.broadcast()
	l.start()
	return nil
}

// readLoop reads every frame the Conn delivers, until the Conn ends or
// Close stops it.
func (c *Client) readLoop() {
	defer c.retire()
	for {
		typ, p, err := c.conn.Read(c.readCtx)
		if err != nil {
			if c.readCtx.Err() == nil {
				c.end(err)
			}
			return
		}
		if err := c.handleFrame(typ, p); err != nil {
			pe := protocolError(err)
			c.end(pe)
			_ = c.conn.Close(pe.Code, closeReason(pe.Reason))
			return
		}
	}
}

// handleFrame applies one frame from the server; an error is a protocol
// violation.
func (c *Client) handleFrame(typ websocket.MessageType, p []byte) error {
	f, err := parseFrame(typ, p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		// A malformed frame is a violation, unless it was cut short by
		// the end of its connection: then the next frame is the S of
		// the next connection.
		if c.suspect != nil {
			return c.suspect
		}
		c.suspect = err
		return nil
	}
	if c.suspect != nil && f.kind != kindStart {
		return c.suspect
	}
	c.suspect = nil
	if c.rd == nil && f.kind != kindStart {
		return malformed("a frame before the stream started")
	}
	switch f.kind {
	case kindStart:
		return c.startLocked(f.conn)
	case kindMessage:
		fresh, err := c.rd.rx.accept(f.seq, len(f.payload))
		if err != nil {
			return err
		}
		if !fresh {
			c.stats.Duplicates++
			return nil
		}
		c.pushLocked(inbound{typ: typ, data: f.payload, sess: c.rd, seq: f.seq})
	case kindVolatile:
		if c.volatiles >= c.cfg.volatile {
			c.stats.VolatileDropped++
			return nil
		}
		c.volatiles++
		c.pushLocked(inbound{typ: typ, data: f.payload})
	case kindAck:
		n, err := c.rd.tx.ack(f.seq)
		if err != nil {
			return err
		}
		if n > 0 && c.rd == c.cur {
			c.room.broadcast()
		}
	default:
		return malformed(fmt.Sprintf("unexpected %c frame", f.kind))
	}
	return nil
}

// startLocked handles the S frame of connection k: the frames that follow
// are that connection's, in its handshake's session. If that session is
// not the one read so far, the old one was not recovered: Read says so
// here.
func (c *Client) startLocked(k uint64) error {
	i := -1
	for j, p := range c.pending {
		if p.lo <= k && k <= p.hi {
			i = j
			break
		}
	}
	if i < 0 {
		return malformed("S frame for an unknown connection")
	}
	next := c.pending[i]
	// The session read so far, and any that came and went before its S
	// frame arrived (even the first, cut before its stream started), are
	// over if they are not next's.
	var lost []*clientSession
	for _, s := range append([]*clientSession{c.rd}, sessionsOf(c.pending[:i])...) {
		if s != nil && s != next.sess && !slices.Contains(lost, s) {
			lost = append(lost, s)
		}
	}
	if len(lost) > 0 {
		nr := &NotRecoveredError{OldSession: lost[0].id, NewSession: next.sess.id}
		for _, s := range lost {
			nr.Unconfirmed = append(nr.Unconfirmed, s.tx.messages()...)
		}
		c.pushLocked(inbound{err: nr})
	}
	clear(c.pending[:i])
	c.pending = c.pending[i:]
	c.pending[0].lo = k
	c.rd = next.sess
	c.rd.rx.peer = next.peer
	return nil
}

func sessionsOf(ps []started) []*clientSession {
	ss := make([]*clientSession, len(ps))
	for i, p := range ps {
		ss[i] = p.sess
	}
	return ss
}

func (c *Client) pushLocked(m inbound) {
	c.queue = append(c.queue, m)
	c.readable.broadcast()
}
