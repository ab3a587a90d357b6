//go:build !js

package resume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// Session is one client's session on a Server: its serve function reads
// and writes it across the client's reconnects. Read returns each of the
// client's reliable messages once, in order; Write keeps a reliable
// message, in the Store too, until the client acknowledges it, sends it on
// the live connection, and again on the next. Messages written while the
// client is away wait for it (for the resume window). All methods are safe
// for concurrent use.
type Session struct {
	srv     *Server
	id      string
	resumed bool
	ctx     context.Context // the serve function's: ends with the session here
	cancel  context.CancelFunc
	serving bool // its serve function was started (guarded by the Server's mu)

	readMu  sync.Mutex // one Read at a time: Received never goes back in the Store
	writeMu sync.Mutex // one Write at a time: messages reach the Store in order

	mu        sync.Mutex
	gen       uint64   // the Store generation this server holds
	tx        outbox   // to the client
	rx        receiver // from the client
	peerMsg   int      // the largest payload the client accepts (0: not told yet)
	queue     []inbound
	qhead     int
	volatiles int
	conn      *serverConn // the attached connection, nil while the client is away
	detaches  uint64      // changes of conn, to tell a stale expiry

	// Guarded by the Server's mu: the latest expiry scheduled, and
	// whether the heap holds an entry for the session.
	expiry       expiry
	expiryQueued bool
	readable     cond
	room         cond
	err          error // why the session ended here
}

// serverConn is one attached connection: its reader is ServeConn, its
// writer the link.
type serverConn struct {
	ws   *websocket.Conn
	link *link

	mu      sync.Mutex
	closing bool           // a close was started, or ServeConn is over
	closer  sync.WaitGroup // the close under way, which ServeConn waits for
}

// drainGrace bounds how long a session that ends normally waits for its
// connection's writer to send what is queued, before the close frame.
const drainGrace = 5 * time.Second

// close closes the connection with a close frame, on a goroutine of the
// connection's (its reader may be blocked reading), unless one was started
// or the connection is over. With drain, what is queued is written first:
// the last messages of a session that ends normally are not cut off.
func (sc *serverConn) close(code websocket.StatusCode, reason string, drain bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closing {
		return
	}
	sc.closing = true
	sc.closer.Add(1)
	go func() {
		defer sc.closer.Done()
		if drain {
			sc.link.drain(drainGrace)
		}
		_ = sc.ws.Close(code, reason)
	}()
}

// finish waits for a close under way; none starts afterwards.
func (sc *serverConn) finish() {
	sc.mu.Lock()
	sc.closing = true
	sc.mu.Unlock()
	sc.closer.Wait()
}

// newSession returns a session from its Record, for a client whose hello
// announced peer: its serve function may write before the connection is
// attached.
func newSession(srv *Server, rec Record, resumed bool, peer limits) *Session {
	s := &Session{srv: srv, id: rec.ID, resumed: resumed, gen: rec.Gen, peerMsg: peer.message}
	s.ctx, s.cancel = context.WithCancel(srv.ctx)
	s.tx.acked = rec.Acked
	for i, m := range rec.Unacked {
		if m.Seq != rec.Acked+uint64(i)+1 {
			break // a broken Store: resend what follows on
		}
		s.tx.add(outEntry{seq: m.Seq, typ: m.Type, frame: encodeData(m.Seq, m.Data), size: len(m.Data)})
	}
	s.rx.recv, s.rx.consumed, s.rx.ackSent = rec.Received, rec.Received, rec.Received
	return s
}

// ID returns the session's id.
func (s *Session) ID() string { return s.id }

// Resumed reports whether this server took the session over from the
// Store, where another server (or this one, before a restart) had left it:
// the serve function rebuilds what it kept in memory. It is false for a
// session started here, which the client may still resume here many times
// (the serve function runs once for it).
func (s *Session) Resumed() bool { return s.resumed }

// Done returns a channel closed when the session has ended here: the ctx
// of the serve function is done.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Err returns nil while the session lives here, then why it ended:
// ErrSessionClosed, ErrSessionExpired, ErrSessionMoved, ErrServerClosed, a
// *ProtocolError (the client broke the protocol), or a Store failure.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Read returns the next message from the client: each reliable message
// once, in order, across reconnects (and across servers sharing the
// Store: a message counts as read once its number is recorded there), and
// the volatile messages that arrived. While the client is away, Read
// waits. ctx bounds this call only.
func (s *Session) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	for s.err == nil && s.qhead == len(s.queue) {
		ch := s.readable.wait()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, nil, s.ctxErr("read", ctx)
		}
		s.mu.Lock()
	}
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return 0, nil, err
	}
	m := s.queue[s.qhead]
	if m.seq == 0 {
		s.popLocked()
		s.volatiles--
		s.mu.Unlock()
		return m.typ, m.data, nil
	}
	s.mu.Unlock()
	// Recorded before the application has it, and before it is
	// acknowledged: a server that takes the session over resends exactly
	// what follows.
	if err := s.update(Update{Received: m.seq}); err != nil {
		s.storeFailed(err)
		return 0, nil, fmt.Errorf("resume: read: recording the message: %w", err)
	}
	// Recorded as read: the application gets it, even if the session
	// ended here meanwhile (a server resuming it will not resend it).
	s.mu.Lock()
	if s.err == nil { // else the queue is gone with the session
		s.popLocked()
		s.rx.consume(m.seq)
		if sc := s.conn; sc != nil && (s.rx.consumed == s.rx.ackSent+1 || s.rx.ackDue(s.srv.cfg.ackEvery)) {
			sc.link.kick()
		}
	}
	s.mu.Unlock()
	return m.typ, m.data, nil
}

// ctxErr is the error of a call whose ctx ended while it waited: the
// session's own end, if it came with it (the serve function's ctx ends
// with the session), else ctx's.
func (s *Session) ctxErr(op string, ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return fmt.Errorf("resume: %s: %w", op, ctx.Err())
}

func (s *Session) popLocked() {
	s.queue[s.qhead] = inbound{}
	s.qhead++
	if s.qhead == len(s.queue) {
		s.queue, s.qhead = s.queue[:0], 0
		if cap(s.queue) > 4096 {
			s.queue = nil
		}
	}
}

// Write writes a reliable message to the client: it is numbered, appended
// to the session in the Store, and sent on the live connection, or on the
// next one, until the client acknowledges it. It returns once the Store
// holds it. When the outbox is full (WithOutbox) it waits for room,
// bounded by ctx (or fails with ErrOutboxFull, see WithOutboxFullError). A
// message larger than the client accepts is refused with ErrTooLarge.
func (s *Session) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	if err := checkWrite(ctx, typ); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cfg := &s.srv.cfg
	s.mu.Lock()
	for {
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return err
		}
		if peer := s.peerMsg; peer > 0 && len(p) > peer || len(p) > cfg.outbox.bytes {
			s.mu.Unlock()
			return fmt.Errorf("%w: %d bytes (the client accepts %d, the outbox holds %d)", ErrTooLarge, len(p), peer, cfg.outbox.bytes)
		}
		if s.tx.fits(len(p), cfg.outbox) {
			break
		}
		if cfg.failWhenFull {
			s.mu.Unlock()
			return ErrOutboxFull
		}
		if s.room.await(ctx, &s.mu) != nil {
			return s.ctxErr("write: waiting for room in the outbox", ctx)
		}
	}
	seq := s.tx.last() + 1 // Writes are serialized: no one else adds
	s.mu.Unlock()

	frame := encodeData(seq, p)
	m := Message{Seq: seq, Type: typ, Data: frame[len(frame)-len(p):]}
	if err := s.update(Update{Append: []Message{m}}); err != nil {
		s.storeFailed(err)
		return fmt.Errorf("resume: write: %w", err)
	}
	s.mu.Lock()
	s.tx.add(outEntry{seq: seq, typ: typ, frame: frame, size: len(p)})
	if sc := s.conn; sc != nil && !sc.link.dead {
		sc.link.push(outItem{typ: typ, frame: frame, seq: seq})
	}
	s.mu.Unlock()
	return nil
}

// WriteVolatile writes a message sent only on the live connection, never
// again, and never stored: ErrNotConnected while the client is away. It
// returns once the message is queued for the connection; when
// WithVolatileBacklog messages wait, it waits, bounded by ctx (or fails
// with ErrOutboxFull, see WithOutboxFullError).
func (s *Session) WriteVolatile(ctx context.Context, typ websocket.MessageType, p []byte) error {
	if err := checkWrite(ctx, typ); err != nil {
		return err
	}
	s.mu.Lock()
	for {
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return err
		}
		sc := s.conn
		if sc == nil || sc.link.dead {
			s.mu.Unlock()
			return ErrNotConnected
		}
		if peer := s.peerMsg; len(p) > peer {
			s.mu.Unlock()
			return fmt.Errorf("%w: %d bytes (the client accepts %d)", ErrTooLarge, len(p), peer)
		}
		if sc.link.volatiles < s.srv.cfg.volatile {
			sc.link.push(outItem{typ: typ, frame: encodeData(0, p)})
			s.mu.Unlock()
			return nil
		}
		if s.srv.cfg.failWhenFull {
			s.mu.Unlock()
			return ErrOutboxFull
		}
		if s.room.await(ctx, &s.mu) != nil {
			return s.ctxErr("write volatile", ctx)
		}
	}
}

// Flush waits until the client has acknowledged every reliable message
// written so far, bounded by ctx.
func (s *Session) Flush(ctx context.Context) error {
	s.mu.Lock()
	for {
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return err
		}
		if s.tx.len() == 0 {
			s.mu.Unlock()
			return nil
		}
		if s.room.await(ctx, &s.mu) != nil {
			return s.ctxErr("flush", ctx)
		}
	}
}

// Close ends the session: the Store forgets it, and the connection, if
// one is attached, is closed with code and reason. With 1000 (normal
// closure) the client stops; with a code its policy retries (1001, 1011,
// 1012, or an application code) it reconnects and finds the session gone:
// its Read reports that it was not recovered. Messages not yet read are
// dropped. code must be one a close frame may carry (1000-1003,
// 1007-1014, 3000-4999) and reason at most 123 bytes of UTF-8.
func (s *Session) Close(code websocket.StatusCode, reason string) error {
	switch {
	case code < 1000 || code == 1004 || code == 1005 || code == 1006 || code == 1015 || code > 1014 && code < 3000 || code > 4999:
		return fmt.Errorf("resume: close code %d may not be sent", int(code))
	case len(reason) > 123 || !utf8.ValidString(reason):
		return errors.New("resume: close reason must be at most 123 bytes of UTF-8")
	}
	if !s.end(ErrSessionClosed, code, reason, true) {
		return s.Err()
	}
	return nil
}

// connect attaches ws to the session after the client's hello f: it
// answers with W and S, and starts the connection's writer, which resends
// what the client has not acknowledged. A connection attached before is
// closed (1008: the session was taken over).
func (s *Session) connect(ctx context.Context, ws *websocket.Conn, f frame, resumed bool) (*serverConn, error) {
	cfg := &s.srv.cfg
	sc := &serverConn{ws: ws}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		_ = ws.Close(websocket.StatusGoingAway, closeReason("session ended"))
		return nil, err
	}
	var acked int
	var err error
	switch {
	case !resumed: // the hello's ack is about the session it named
	case f.ack < s.tx.acked:
		err = malformed("resumed without messages it had acknowledged")
	default:
		acked, err = s.tx.ack(f.ack)
	}
	if err != nil {
		s.mu.Unlock()
		pe := protocolError(err)
		s.srv.counts.protocolErrors.Add(1)
		s.end(pe, pe.Code, closeReason(pe.Reason), true)
		_ = ws.Close(pe.Code, closeReason(pe.Reason))
		return nil, pe
	}
	old := s.conn
	s.conn = sc
	s.detaches++
	s.peerMsg = f.limits.message
	s.rx.peer = f.limits
	ack := s.rx.consumed
	s.rx.acked(ack) // the welcome acknowledges what was read
	announce := limits{count: max(cfg.outbox.count, s.tx.len()), bytes: max(cfg.outbox.bytes, s.tx.bytes), message: cfg.outbox.message}
	l := newLink(ws, &s.mu, &s.rx, f.limits, cfg)
	l.tick, l.tickEvery = s.renew, max(cfg.window/3, time.Millisecond)
	l.abort = func() { _ = ws.CloseNow() } // the server owns ws
	l.drained = s.room.broadcast
	for _, e := range s.tx.entries[s.tx.head:] {
		l.queue = append(l.queue, outItem{typ: e.typ, frame: e.frame, seq: e.seq})
	}
	sc.link = l
	replayed := len(l.queue)
	if acked > 0 {
		s.room.broadcast()
	}
	s.mu.Unlock()
	s.srv.counts.replayed.Add(uint64(replayed))
	if resumed {
		s.srv.counts.resumed.Add(1)
	}
	if old != nil {
		old.close(websocket.StatusPolicyViolation, closeReason("session taken over"), false)
	}
	if acked > 0 { // may lag in the Store, see handle
		if err := s.update(Update{Acked: f.ack}); err != nil && isSessionGone(err) {
			s.storeFailed(err)
		}
	}
	// W and S go first; the writer starts after them.
	welcome := appendWelcome(nil, s.id, resumed, ack, announce)
	if ws.Write(ctx, websocket.MessageText, welcome) == nil {
		_ = ws.Write(ctx, websocket.MessageText, appendStart(nil, f.conn))
	}
	l.start()
	return sc, nil
}

// serveConn reads the attached connection sc until it ends, then detaches
// it: the session waits for the client for the resume window.
func (s *Session) serveConn(ctx context.Context, sc *serverConn) error {
	defer s.detach(sc)
	// The reads get a ctx that never ends (coder/websocket arms a timer
	// per read for one that can): ctx's end closes the connection.
	defer afterFunc(ctx, func() { _ = sc.ws.CloseNow() })()
	var suspect error
	var buf []byte
	for {
		typ, p, err := readMessage(sc.ws, &buf)
		if err != nil {
			return err
		}
		f, err := parseFrame(typ, p)
		if err != nil {
			// A malformed frame is a violation, unless it was cut short
			// by the end of the connection: then nothing follows it.
			if suspect == nil {
				suspect = err
				continue
			}
		}
		if suspect != nil {
			return s.violation(sc, suspect)
		}
		if err := s.handle(sc, typ, f); err != nil {
			return err
		}
	}
}

// readMessage reads one message into *buf (grown as needed, and kept for
// the next one) and returns a copy of it: one allocation, of its size.
func readMessage(ws *websocket.Conn, buf *[]byte) (websocket.MessageType, []byte, error) {
	typ, r, err := ws.Reader(context.Background())
	if err != nil {
		return 0, nil, err
	}
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, nil, err
		}
	}
	if cap(b) <= 64<<10 {
		*buf = b // keep a buffer of ordinary size, not a huge one
	}
	return typ, bytes.Clone(b), nil
}

// errStale ends the reading of a connection that no longer serves the
// session (taken over, or the session ended).
var errStale = errors.New("resume: the connection no longer serves the session")

// handle applies one frame from the client.
func (s *Session) handle(sc *serverConn, typ websocket.MessageType, f frame) error {
	s.mu.Lock()
	if s.conn != sc || s.err != nil {
		s.mu.Unlock()
		return errStale
	}
	switch f.kind {
	case kindMessage:
		fresh, err := s.rx.accept(f.seq, len(f.payload))
		if err != nil {
			s.mu.Unlock()
			return s.violation(sc, err)
		}
		if fresh {
			s.queue = append(s.queue, inbound{typ: typ, data: f.payload, seq: f.seq})
			s.readable.broadcast()
		}
	case kindVolatile:
		if s.volatiles < s.srv.cfg.volatile {
			s.volatiles++
			s.queue = append(s.queue, inbound{typ: typ, data: f.payload})
			s.readable.broadcast()
		}
	case kindAck:
		n, err := s.tx.ack(f.seq)
		if err != nil {
			s.mu.Unlock()
			return s.violation(sc, err)
		}
		if n > 0 {
			s.room.broadcast()
			s.mu.Unlock()
			// The Store may lag: a server that takes the session over
			// resends a few messages more, which the client drops.
			if err := s.update(Update{Acked: f.seq}); err != nil && isSessionGone(err) {
				s.storeFailed(err)
			}
			return nil
		}
	case kindEnd:
		s.mu.Unlock()
		s.end(ErrSessionClosed, websocket.StatusNormalClosure, "", true)
		return ErrSessionClosed
	default:
		s.mu.Unlock()
		return s.violation(sc, malformed(fmt.Sprintf("unexpected %c frame", f.kind)))
	}
	s.mu.Unlock()
	return nil
}

// violation ends the session for a violation of the protocol on sc (if sc
// still serves it): the Store forgets it, and sc is closed with the code.
func (s *Session) violation(sc *serverConn, err error) error {
	pe := protocolError(err)
	s.srv.counts.protocolErrors.Add(1)
	s.mu.Lock()
	current := s.conn == sc
	s.mu.Unlock()
	if current {
		s.end(pe, pe.Code, closeReason(pe.Reason), true)
	} else {
		sc.close(pe.Code, closeReason(pe.Reason), false)
	}
	return pe
}

// detach ends sc's part in the session: its writer stops, and the session
// waits for the client for the resume window.
func (s *Session) detach(sc *serverConn) {
	s.mu.Lock()
	current := s.conn == sc && s.err == nil
	var n uint64
	if current {
		s.conn = nil
		s.detaches++
		n = s.detaches
	}
	s.mu.Unlock()
	// The close under way first: stopping the writer in the middle of a
	// frame would cut the connection before its close frame.
	sc.finish()
	sc.link.stop()
	if current {
		deadline := time.Now().Add(s.srv.cfg.window)
		if err := s.update(Update{Expires: deadline}); err != nil && isSessionGone(err) {
			s.storeFailed(err)
			return
		}
		s.srv.expireAt(s, deadline, n)
	}
}

// expire ends the session if its client stayed away since detachment n.
func (s *Session) expire(n uint64) {
	s.endIf(func() bool { return s.conn == nil && s.detaches == n }, ErrSessionExpired, 0, "", true)
}

// renew extends the session's expiry in the Store while a connection is
// attached (the link calls it periodically), so that a session whose
// server died expires one resume window later.
func (s *Session) renew() {
	if err := s.update(Update{}); err != nil && isSessionGone(err) {
		s.storeFailed(err)
	}
}

// update applies u to the session's Record, with the expiry renewed. A
// takeover by a newer connection on this server moves the generation on:
// the update is then made again with it. Such a takeover may be between
// its Store.Take, which moved the generation on, and adopt, which tells
// this Session: so an update refused as moved waits for the attach under
// way (its lock) before it decides that another server took the session.
// Deciding sooner ended the session here under its own takeover: the
// serve function ran again, and what the first one had read and not yet
// answered lost its answer.
func (s *Session) update(u Update) error {
	ctx := s.ctx // bounded by the session's life here: a timer per call would cost one per message
	if u.Expires.IsZero() {
		u.Expires = time.Now().Add(s.srv.cfg.window)
	}
	for {
		s.mu.Lock()
		gen := s.gen
		s.mu.Unlock()
		err := s.srv.store.Update(ctx, s.id, gen, u)
		if errors.Is(err, ErrSessionMoved) {
			s.srv.waitAttach(s.id)
			s.mu.Lock()
			again := s.gen != gen
			s.mu.Unlock()
			if again {
				continue
			}
		}
		return err
	}
}

// storeFailed ends the session here after the Store failed it: another
// server took it over, it expired, or the Store failed.
func (s *Session) storeFailed(err error) {
	switch {
	case errors.Is(err, ErrSessionMoved):
		s.end(ErrSessionMoved, websocket.StatusPolicyViolation, closeReason("session taken over"), false)
	case errors.Is(err, ErrSessionNotFound):
		s.end(ErrSessionExpired, websocket.StatusInternalError, closeReason("session lost"), false)
	case errors.Is(err, ErrStoreFull):
		// Not the session's fault: the Write that met it says so.
	default:
		s.end(fmt.Errorf("resume: store: %w", err), websocket.StatusInternalError, closeReason("store failure"), false)
	}
}

// end ends the session here, once: err says why. The attached connection,
// if any, is closed with code and reason; del makes the Store forget the
// session. It reports whether this call ended it.
func (s *Session) end(err error, code websocket.StatusCode, reason string, del bool) bool {
	return s.endIf(nil, err, code, reason, del)
}

// endIf is end if cond (called with s.mu held) holds.
func (s *Session) endIf(cond func() bool, err error, code websocket.StatusCode, reason string, del bool) bool {
	s.mu.Lock()
	if s.err != nil || cond != nil && !cond() {
		s.mu.Unlock()
		return false
	}
	s.err = err
	sc := s.conn
	s.conn = nil
	gen := s.gen
	clear(s.queue)
	s.queue, s.qhead, s.volatiles = nil, 0, 0
	s.readable.broadcast()
	s.room.broadcast()
	s.mu.Unlock()
	s.cancel()
	s.srv.forget(s)
	if sc != nil {
		// A session that ends normally (its serve function returned, or
		// Close) sends what it has queued before the close frame.
		sc.close(code, reason, errors.Is(err, ErrSessionClosed))
	}
	if del {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		_ = s.srv.store.Delete(ctx, s.id, gen)
		cancel()
	}
	return true
}

// isSessionGone reports a Store error that means this server no longer
// holds the session.
func isSessionGone(err error) bool {
	return errors.Is(err, ErrSessionMoved) || errors.Is(err, ErrSessionNotFound)
}
