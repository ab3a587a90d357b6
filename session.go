package wsreconnect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// session is one connection, from the moment its dial succeeded until the
// supervisor retires it. The supervisor is its reader (the pump, serve);
// the setup, Writes, the heartbeat and Close or Reconnect act on it
// concurrently. What ended it is recorded by whoever saw it, in the fields
// under the Conn's mu, and ranked once, by cause.
type session struct {
	c       *Conn
	ws      *websocket.Conn
	netConn net.Conn // the socket under ws, if the dial revealed it
	born    time.Time
	outage  time.Duration // how long the Conn was without a connection before this one (set under c.mu)

	// setup is the state of the session's setup (OnConnect, the send
	// queue); nil when it had none, so that an idle Conn keeps no more than
	// it needs. Set under c.mu.
	setup *setupState

	// Evidence of life for the heartbeat (see evidence), counted rather
	// than timed: a clock read costs more than the rest of the bookkeeping
	// of a small message.
	in          atomic.Uint64 // data frames and pieces of them read, pings, pongs, unparks
	stampWanted atomic.Bool   // the heartbeat wants the time of the next evidence
	stampAt     atomic.Int64  // that time, in nanoseconds since born
	out         atomic.Int64  // bytes of messages handed to the connection
	parked      atomic.Bool   // the pump waits for Read: nothing reads the connection

	// The pump and the close handshake take turns at reading (see
	// closeHandshake): inMsg while the pump reads a message's payload,
	// closing once the handshake wants to read (shake is set by then).
	inMsg, closing atomic.Bool
	pumpEnded      atomic.Bool // serve has returned

	// ended is set, and endedCh closed, once the session is ending (by
	// Conn.to): Writes stop using it and the pump drains it.
	ended   atomic.Bool
	endedCh chan struct{}

	hb heartbeat

	// What ended it, recorded under c.mu by whoever saw it (see cause).
	requested   bool          // Reconnect was called while it was set up or live
	death       error         // the heartbeat's verdict
	readErr     error         // what ended the pump
	writeErr    error         // a failed Write that broke the connection
	writeCtxErr error         // a Write whose ctx ended: coder/websocket closes a connection whose write ctx ends mid-frame
	wentLive    bool          // it was published
	diedAt      time.Duration // when it began to end, since born

	mu        sync.Mutex
	shake     *shakeState // the close handshake, once one started
	killed    bool        // the connection has been closed without a handshake
	retired   bool        // the supervisor retires it: no task may start
	killTimer *time.Timer
	tasks     sync.WaitGroup // the setup, Writes, the close handshake, a pending kill

	scratch   []byte // the pump's read buffer, for small messages
	largeHint int    // the length of the last large message, if the last was large
	//lint:ignore U1000 used by the browser's platform (platform_js.go)
	plat platform // what the platform needs (platform*.go)
}

const (
	// drainGrace bounds how long a session whose write failed is still
	// read, for the messages and the close frame that had already arrived.
	drainGrace = time.Second
	// reconnectGrace bounds how long Reconnect (and a failed OnConnect)
	// waits for the server to answer its close frame before it closes the
	// connection anyway.
	reconnectGrace = time.Second
	// maxScratch bounds the read buffer a session keeps between messages.
	maxScratch = 16 << 10
	// fragmentSize is the largest frame a Write sends while the heartbeat
	// is on: a longer message goes out in fragments, between which the
	// heartbeat's pings can pass (coder/websocket holds its write lock for
	// a whole frame).
	fragmentSize = 64 << 10
)

// errSessionEnded is what a session's write returns when the session had
// ended before the write began: nothing was written, and Conn.Write waits
// for the next connection.
var errSessionEnded = errors.New("wsreconnect: the connection ended")

// errClosing ends the pump when a close handshake takes over reading.
var errClosing = fmt.Errorf("wsreconnect: closing: %w", net.ErrClosed)

// setupState is what a session's setup needs.
type setupState struct {
	// ctx ends when the session ends (or the Conn is closed): the ctx of
	// OnConnect and of the send queue's writes.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the setup has returned
	err    error         // OnConnect's error (under c.mu)
	ended  bool          // and it ended the session: its close frame followed (under c.mu)
}

// shakeState is a close handshake's.
type shakeState struct {
	done    chan struct{} // closed when closeConn has returned
	killed  chan struct{} // closed by kill
	msgDone chan struct{} // the pump has finished the message it read (cap 1)
	err     error         // the handshake's error (under s.mu)
}

func newSession(c *Conn, ws *websocket.Conn, netConn net.Conn) *session {
	s := &session{c: c, ws: ws, netConn: netConn, born: time.Now(), endedCh: make(chan struct{})}
	s.initPlatform()
	s.hb.init(s, &c.cfg)
	watchControlFrames(ws, s.evidence)
	return s
}

// uptime is how long the session has been up.
func (s *session) uptime() time.Duration { return time.Since(s.born) }

// end marks the session as ending: Writes stop using it at once, the pump
// drains it, OnConnect's and the send queue's ctx end. Conn.to calls it,
// under c.mu.
func (s *session) end() {
	if s.ended.Swap(true) {
		return
	}
	s.diedAt = time.Since(s.born)
	close(s.endedCh)
	if s.setup != nil {
		s.setup.cancel()
	}
}

// closeErr is the close handshake's error, if one ran.
func (s *session) closeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shake == nil {
		return nil
	}
	return s.shake.err
}

// endedErr says why the session ended, for ReadOnConnect: what ended the
// pump, if it has.
func (s *session) endedErr() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.readErr != nil {
		return fmt.Errorf("wsreconnect: the connection ended: %w", s.readErr)
	}
	return errSessionEnded
}

// task runs fn on a goroutine, as one of the session's tasks.
func (s *session) task(fn func()) {
	s.tasks.Add(1)
	go func() {
		defer s.tasks.Done()
		fn()
	}()
}

// cause is why the session ended, from what was recorded, in this order: a
// reconnect the application asked for, or OnConnect's error, when the
// session ended for it (and sent its close frame: what the peer answers
// says nothing new); the peer's close frame, or the code coder/websocket
// sent itself on a protocol violation or an oversize message; the
// heartbeat's verdict; the error that ended reading, unless it only says
// that we closed the connection; OnConnect's error once the connection was
// gone (likely a consequence); the write error that made us close it; the
// error of a Write whose ctx ended, for a connection coder/websocket
// closed. c.mu must be held.
func (s *session) cause() error {
	switch {
	case s.requested:
		return ErrReconnectRequested
	case s.setup != nil && s.setup.ended:
		return s.setup.err
	case s.readErr != nil && connEnd(s.readErr).Code != websocket.StatusAbnormalClosure:
		return s.readErr
	case s.death != nil:
		return s.death
	case s.readErr != nil && !errors.Is(s.readErr, net.ErrClosed):
		return s.readErr
	case s.setup != nil && s.setup.err != nil:
		return s.setup.err
	case s.writeErr != nil:
		return s.writeErr
	case s.writeCtxErr != nil:
		return s.writeCtxErr
	}
	return s.readErr
}

// serve is the pump: it reads whole messages into the Conn's inbox until
// the connection ends, and returns the error that ended it. It runs on
// the supervisor, from the moment the connection exists, so a connection
// costs no goroutine beyond the reader it needs anyway: OnConnect and the
// send queue write while it reads, so that a server's answers, pings and
// close frame are seen. It reads with a context that never ends (see
// readContext; in the browser, one that the Conn ends to stop it):
// coder/websocket closes a connection whose read context ends. While
// readAhead messages wait for Read it stops reading (parks); once the
// session is ending it drains what had arrived, past that bound, so that
// nothing received is lost.
func (s *session) serve() error {
	defer s.pumpEnded.Store(true)
	ctx := s.readContext()
	for {
		typ, data, err := s.readMessage(ctx)
		if err != nil {
			return s.peerClose(err)
		}
		switch n := s.c.inbox.push(message{typ, data}); {
		case n >= maxDrain:
			s.kill()
		case n > readAhead:
			s.c.inbox.waitRoom(s.endedCh, s.setParked)
		}
	}
}

// setParked records that the pump stops or resumes reading. Resuming
// counts as evidence: the idle clock restarts then, since nothing could be
// read while parked.
func (s *session) setParked(p bool) {
	s.parked.Store(p)
	if !p {
		s.evidence()
	}
}

// evidence counts a sign of life: a piece of a message, a ping or pong
// from the peer. The first one after each of the heartbeat's checks is
// timed, and brings the next check to within a step (see heartbeat.nudge):
// the heartbeat knows when silence began, to within a step, without a
// clock read per message.
func (s *session) evidence() {
	s.in.Add(1)
	if s.stampWanted.Load() && s.stampWanted.CompareAndSwap(true, false) {
		s.stampAt.Store(int64(time.Since(s.born)))
		s.hb.nudge()
	}
}

// errCutMessage is what the pump reports when the connection ended in the
// middle of a message that coder/websocket would have called whole (see
// messageComplete).
var errCutMessage = fmt.Errorf("wsreconnect: the connection ended in the middle of a message: %w", io.ErrUnexpectedEOF)

// readMessage reads one whole message, counting each piece of it as it
// arrives so that a long message on a slow link is not mistaken for
// silence. A small message is read into the pump's buffer and copied out;
// a large one is read into a buffer of its own, handed over as is: sized
// after the last large message (a stream of them costs one allocation
// each, no copy), and doubled when it is too small.
//
// It reads a message's payload only while no close handshake wants to
// read (see closeHandshake), and delivers a message only if it arrived
// whole (see messageComplete).
func (s *session) readMessage(ctx context.Context) (websocket.MessageType, []byte, error) {
	typ, r, err := s.ws.Reader(ctx)
	if err != nil {
		return 0, nil, err
	}
	s.inMsg.Store(true)
	defer s.doneWithMessage()
	if s.closing.Load() {
		// A close handshake reads from here on, and drops the rest.
		return 0, nil, errClosing
	}
	s.evidence()
	if cap(s.scratch) == 0 {
		s.scratch = make([]byte, 0, 512)
	}
	buf, inScratch := s.scratch[:0], true
	if s.largeHint > 0 {
		buf, inScratch = make([]byte, 0, s.largeHint), false
	}
	for {
		var n int
		var err error
		if inScratch && len(buf) == cap(buf) {
			buf, inScratch = append(make([]byte, 0, 2*cap(buf)), buf...), false
		}
		if len(buf) < cap(buf) {
			end := cap(buf)
			if end-len(buf) > s.hb.readChunk {
				end = len(buf) + s.hb.readChunk // see heartbeat.readChunk
			}
			n, err = r.Read(buf[len(buf):end])
			buf = buf[:len(buf)+n]
		} else {
			// Full: read on into a small buffer, and grow only if more
			// than the end of the message comes (a message that fills its
			// hint exactly is not copied).
			probe := s.probe()
			probe = probe[:min(len(probe), s.hb.readChunk)]
			n, err = r.Read(probe)
			if n > 0 {
				grown := make([]byte, len(buf), 2*cap(buf)+n)
				copy(grown, buf)
				buf = append(grown, probe[:n]...)
			}
		}
		if n > 0 {
			s.evidence()
		}
		if err == io.EOF {
			if !messageComplete(s.ws) {
				return 0, nil, errCutMessage
			}
			break
		}
		if err != nil {
			return 0, nil, err
		}
	}
	switch {
	case inScratch:
		return typ, bytes.Clone(buf), nil
	case len(buf) > maxScratch:
		s.largeHint = len(buf)
		if cap(buf) > 2*len(buf) {
			return typ, bytes.Clone(buf), nil // do not hand over more than twice the message
		}
		return typ, buf, nil
	case cap(buf) > maxScratch:
		// A small message after large ones: the large buffer was no use.
		s.largeHint = 0
		return typ, bytes.Clone(buf), nil
	}
	// Grown out of the scratch buffer, but small: keep it as the next one.
	s.scratch = buf[:0]
	return typ, bytes.Clone(buf), nil
}

// doneWithMessage lets a close handshake that waits for the message to be
// read take over.
func (s *session) doneWithMessage() {
	s.inMsg.Store(false)
	if s.closing.Load() {
		signal(s.shake.msgDone)
	}
}

// probe returns a small buffer to read into: the pump's own buffer, when
// a message is read into one of its own.
func (s *session) probe() []byte { return s.scratch[:cap(s.scratch)] }

// write writes one whole message, as one of the session's tasks: its
// error may be what ended the connection, so the session is not retired
// before it returns. It returns errSessionEnded, having written nothing,
// when the session had ended before it began.
func (s *session) write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	// coder/websocket may take its lock before it notices that ctx has
	// ended, then arm context.AfterFunc on it, which closes the connection:
	// a Write that is over before it starts must not cost the connection.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wsreconnect: write: %w", err)
	}
	if s.ended.Load() {
		return errSessionEnded
	}
	s.mu.Lock()
	if s.retired {
		s.mu.Unlock()
		return errSessionEnded
	}
	s.tasks.Add(1)
	s.mu.Unlock()
	defer s.tasks.Done()
	if len(p) <= fragmentSize || !s.hb.fragments {
		err := s.ws.Write(ctx, typ, p)
		if err != nil {
			return s.writeFailed(ctx, err, false)
		}
		s.wrote(len(p))
		return nil
	}
	w, err := s.ws.Writer(ctx, typ)
	if err != nil {
		return s.writeFailed(ctx, err, false)
	}
	for len(p) > 0 {
		n := min(len(p), fragmentSize)
		if _, err := w.Write(p[:n]); err != nil {
			return s.writeFailed(ctx, err, true)
		}
		s.wrote(n)
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		return s.writeFailed(ctx, err, true)
	}
	return nil
}

// wrote counts n bytes handed to the connection, and has the heartbeat
// place a ping among them when they pass its mark (see heartbeat.marker).
func (s *session) wrote(n int) {
	if s.out.Add(int64(n)) >= s.hb.nextMarker.Load() {
		s.hb.marker()
	}
}

// testHookWriteFailed, if set, runs as a failed write starts to record
// its error.
var testHookWriteFailed func()

// writeFailed records a failed write. started reports whether part of the
// message may be on the wire in fragments.
func (s *session) writeFailed(ctx context.Context, err error, started bool) error {
	if testHookWriteFailed != nil {
		testHookWriteFailed()
	}
	c := s.c
	if c.closeCalled.Load() {
		return ErrClosed
	}
	if !started && ctx.Err() != nil {
		// ctx ended while the write waited for the lock, which leaves the
		// connection healthy, or in the middle of its one frame, when
		// coder/websocket closes the connection itself: then the pump sees
		// it closed, and this error explains why, unless something else
		// does (see cause).
		c.mu.Lock()
		s.writeCtxErr = err
		c.mu.Unlock()
		return fmt.Errorf("wsreconnect: write: %w", err)
	}
	// A broken connection (a write error does not close a
	// websocket.Conn), or a message cut between its fragments, which
	// nothing can finish: Writes stop using the session at once, and the
	// pump may still read what had arrived, a close frame among it, for a
	// moment. A connection closed already (net.ErrClosed) was closed for a
	// reason recorded elsewhere.
	if c.ends(s, func() {
		if s.writeErr == nil && !errors.Is(err, net.ErrClosed) {
			s.writeErr = err
		}
	}) {
		s.killAfter(drainGrace)
	}
	return fmt.Errorf("wsreconnect: write: %w", err)
}

// closeHandshake closes the connection with a close frame, on a task of
// the session. It reads the answer itself, with coder/websocket's Close,
// once the pump is between messages: the pump stops there and leaves
// reading to it (two readers would cut a message in two). Messages that
// arrive meanwhile are dropped, as in any close handshake. With a grace,
// the connection is closed anyway when the answer takes longer.
func (s *session) closeHandshake(code websocket.StatusCode, reason string, grace time.Duration) {
	s.mu.Lock()
	if s.shake != nil || s.killed || s.retired {
		s.mu.Unlock()
		return
	}
	sh := &shakeState{done: make(chan struct{}), killed: make(chan struct{}), msgDone: make(chan struct{}, 1)}
	s.shake = sh
	s.tasks.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.tasks.Done()
		defer close(sh.done)
		if handshakeReads {
			s.closing.Store(true)
			for s.inMsg.Load() {
				select {
				case <-sh.msgDone:
				case <-sh.killed:
					return
				}
			}
		}
		err := closeConn(s.ws, code, reason)
		s.mu.Lock()
		if sh.err == nil {
			sh.err = err
		}
		s.mu.Unlock()
	}()
	if grace > 0 {
		s.killAfter(grace)
	}
}

// errHandshakeCut is the close handshake's error when the connection was
// closed before the server answered it.
var errHandshakeCut = errors.New("wsreconnect: the close handshake was cut short: the server did not answer in time")

// kill closes the connection at once, without a handshake, or cutting
// short one under way: coder/websocket's CloseNow would wait for that
// handshake (up to 10 s on a peer that does not answer) and has no call to
// abort one, so the socket under it is closed instead. Without the socket
// (a DialFunc that does not dial through net/http's Transport),
// coder/websocket's own bounds end the handshake.
func (s *session) kill() {
	s.mu.Lock()
	if s.killed {
		s.mu.Unlock()
		return
	}
	s.killed = true
	handshake := s.shake != nil
	if handshake {
		close(s.shake.killed)
		if s.shake.err == nil && !s.handshakeAnswered() {
			s.shake.err = errHandshakeCut
		}
	}
	s.mu.Unlock()
	if !handshake {
		closeNow(s.ws)
	} else if s.netConn != nil {
		_ = s.netConn.Close()
	}
	s.stopReading()
}

// killAfter kills the session after d unless it is retired first.
func (s *session) killAfter(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired || s.killed || s.killTimer != nil {
		return
	}
	s.tasks.Add(1)
	s.killTimer = time.AfterFunc(d, func() {
		defer s.tasks.Done()
		s.kill()
	})
}

// retire ends everything that still runs for the session once its pump
// has returned, and waits for it: a close handshake (within its grace),
// the heartbeat, its pings, the setup, the Writes (which return once the
// connection is closed), a pending kill.
func (s *session) retire() {
	s.hb.stop()
	s.mu.Lock()
	shake := s.shake
	s.mu.Unlock()
	if shake != nil {
		<-shake.done // bounded by its grace, or coder/websocket's
	}
	s.mu.Lock()
	s.retired = true
	if s.killTimer != nil && s.killTimer.Stop() {
		s.tasks.Done() // it will never run
	}
	s.mu.Unlock()
	s.kill()
	// Close the websocket.Conn itself too (kill may have closed only the
	// socket under it): a Write that waits for coder/websocket's writer
	// lock, held by a Write that failed between two fragments, returns
	// only then.
	closeNow(s.ws)
	s.tasks.Wait()
	s.hb.wait()
}
