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
// supervisor retires it. The supervisor runs its pump; Writes, the
// heartbeat and Reconnect act on it concurrently, and each records what it
// saw in the fields under mu. The end reason is decided once, from those
// records, by endErr.
type session struct {
	c           *Conn
	ws          *websocket.Conn
	netConn     net.Conn // the socket under ws, if the dial revealed it
	born        time.Time
	subprotocol string
	outage      time.Duration // how long the Conn was without a connection before this one

	// Evidence of life for the heartbeat (see evidence), counted rather
	// than timed: a clock read costs more than the rest of the bookkeeping
	// of a small message.
	in          atomic.Uint64 // data frames and pieces of them read, pongs, unparks
	stampWanted atomic.Bool   // the heartbeat wants the time of the next evidence
	stampAt     atomic.Int64  // that time, in nanoseconds since born
	out         atomic.Int64  // bytes of messages handed to the connection
	parked      atomic.Bool   // the pump waits for Read: nothing reads the connection

	// ended is set, and endedCh closed, once the session is known to be
	// ending: Writes stop using it and the pump drains it.
	ended   atomic.Bool
	endedCh chan struct{}

	hb heartbeat

	mu        sync.Mutex
	diedAt    time.Duration
	requested error // ErrReconnectRequested, once Reconnect asked
	death     error // the heartbeat's verdict
	writeErr  error // the first failed Write
	readErr   error // what ended the pump
	closeErr  error // the close handshake's error (Close)
	handshake bool  // a close handshake is under way
	killed    bool  // the connection has been closed without a handshake
	retired   bool  // the supervisor retires it: no task may start
	killTimer *time.Timer
	tasks     sync.WaitGroup // Writes, the close handshake and a pending kill

	scratch   []byte // the pump's read buffer, for small messages
	largeHint int    // the length of the last large message, if the last was large
	//lint:ignore U1000 used by the browser's platform (platform_js.go)
	plat platform // what the platform needs (platform*.go)
}

const (
	// drainGrace bounds how long a session whose write failed is still
	// read, for the messages and the close frame that had already arrived.
	drainGrace = time.Second
	// reconnectGrace bounds how long Reconnect waits for the server to
	// answer its close frame before it closes the connection anyway.
	reconnectGrace = time.Second
	// maxScratch bounds the read buffer a session keeps between messages.
	maxScratch = 16 << 10
	// fragmentSize is the largest frame a Write sends while the heartbeat
	// is on: a longer message goes out in fragments, between which the
	// heartbeat's pings can pass (coder/websocket holds its write lock for
	// a whole frame).
	fragmentSize = 64 << 10
)

func newSession(c *Conn, ws *websocket.Conn, netConn net.Conn) *session {
	s := &session{c: c, ws: ws, netConn: netConn, born: time.Now(), subprotocol: ws.Subprotocol(), endedCh: make(chan struct{})}
	s.initPlatform()
	s.hb.init(s, &c.cfg)
	return s
}

// uptime is how long the session was up: until it ended, or until now.
func (s *session) uptime() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() {
		return s.diedAt
	}
	return time.Since(s.born)
}

// end marks the session as ending: Writes stop using it at once.
func (s *session) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() {
		return
	}
	s.diedAt = time.Since(s.born)
	s.ended.Store(true)
	close(s.endedCh)
	s.c.cur.CompareAndSwap(s, nil)
}

// endErr is why the session ended, from what was recorded, in this order:
// a reconnect the application asked for; the peer's close frame, or the
// code coder/websocket sent itself on a protocol violation or an oversize
// message; the heartbeat's verdict; the error that ended reading, unless it
// only says that we closed the connection; then the write error that made
// us close it.
func (s *session) endErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.requested != nil:
		return s.requested
	case connEnd(s.readErr).Code != websocket.StatusAbnormalClosure:
		return s.readErr
	case s.death != nil:
		return s.death
	case s.readErr != nil && !errors.Is(s.readErr, net.ErrClosed):
		return s.readErr
	case s.writeErr != nil:
		return s.writeErr
	}
	return s.readErr
}

// serve is the pump: it reads whole messages into the Conn's inbox until
// the connection ends. It runs on the supervisor, so a live connection
// costs no goroutine beyond the reader it needs anyway. It reads with a
// context that never ends (see readContext; in the browser, one that the
// Conn ends to stop it): coder/websocket closes a connection whose read
// context ends. While readAhead messages wait for
// Read it stops reading (parks); once the session is ending it drains what
// had arrived, past that bound, so that nothing received is lost.
func (s *session) serve() {
	ctx := s.readContext()
	for {
		typ, data, err := s.readMessage(ctx)
		if err != nil {
			err = s.peerClose(err)
			s.mu.Lock()
			s.readErr = err
			s.mu.Unlock()
			s.end()
			return
		}
		switch n := s.c.inbox.push(message{typ, data}); {
		case n >= maxDrain:
			s.end()
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

// evidence counts a sign of life: a piece of a message, a pong. The first
// one after each of the heartbeat's checks is timed, and brings the next
// check to within a step (see heartbeat.nudge): the heartbeat knows when
// silence began, to within a step, without a clock read per message.
func (s *session) evidence() {
	s.in.Add(1)
	if s.stampWanted.Load() && s.stampWanted.CompareAndSwap(true, false) {
		s.stampAt.Store(int64(time.Since(s.born)))
		s.hb.nudge()
	}
}

// readMessage reads one whole message, counting each piece of it as it
// arrives so that a long message on a slow link is not mistaken for
// silence. A small message is read into the pump's buffer and copied out;
// a large one is read into a buffer of its own, handed over as is: sized
// after the last large message (a stream of them costs one allocation
// each, no copy), and doubled when it is too small.
func (s *session) readMessage(ctx context.Context) (websocket.MessageType, []byte, error) {
	typ, r, err := s.ws.Reader(ctx)
	if err != nil {
		return 0, nil, err
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

// probe returns a small buffer to read into: the pump's own buffer, when
// a message is read into one of its own.
func (s *session) probe() []byte { return s.scratch[:cap(s.scratch)] }

// write writes one whole message.
func (s *session) write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	// coder/websocket may take its lock before it notices that ctx has
	// ended, then arm context.AfterFunc on it, which closes the connection:
	// a Write that is over before it starts must not cost the connection.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wsreconnect: write: %w", err)
	}
	// A Write is one of the session's tasks: its error may be what ended
	// the connection, so the session is not retired before it returns.
	s.mu.Lock()
	if s.retired {
		s.mu.Unlock()
		return fmt.Errorf("wsreconnect: write: %w", net.ErrClosed)
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
	if s.c.isClosing() {
		return ErrClosed
	}
	s.mu.Lock()
	if s.writeErr == nil {
		s.writeErr = err
	}
	s.mu.Unlock()
	if started || ctx.Err() == nil {
		// A broken connection (a write error does not close a
		// websocket.Conn), or a message cut between its fragments, which
		// nothing can finish: Writes stop using the session at once, and
		// the pump may still read what had arrived, a close frame among it,
		// for a moment.
		s.end()
		s.killAfter(drainGrace)
	}
	// Otherwise ctx ended while the write waited for the lock, which
	// leaves the connection healthy, or in the middle of its one frame,
	// when coder/websocket closes the connection itself: then the pump sees
	// it closed, and the recorded error explains why.
	return fmt.Errorf("wsreconnect: write: %w", err)
}

// reconnectWanted reports whether Reconnect was called on the session.
func (s *session) reconnectWanted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requested != nil
}

// markReconnect records that the application asked for a reconnect; it
// reports false if the session had already ended on its own.
func (s *session) markReconnect() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() || s.requested != nil {
		return false
	}
	s.requested = ErrReconnectRequested
	return true
}

// reconnect ends the session with a close frame, for Reconnect.
func (s *session) reconnect() {
	s.end()
	s.closeHandshake(websocket.StatusNormalClosure, "reconnecting", reconnectGrace)
}

// closeHandshake closes the connection with a close frame, on a task of
// the session; the pump goes on reading meanwhile, for the answer. With a
// grace, the connection is closed anyway when the answer takes longer.
func (s *session) closeHandshake(code websocket.StatusCode, reason string, grace time.Duration) {
	s.mu.Lock()
	if s.handshake || s.killed || s.retired {
		s.mu.Unlock()
		return
	}
	s.handshake = true
	s.tasks.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.tasks.Done()
		err := closeConn(s.ws, code, reason)
		s.mu.Lock()
		if s.closeErr == nil {
			s.closeErr = err
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
	handshake := s.handshake
	if handshake && s.readErr == nil && s.closeErr == nil {
		s.closeErr = errHandshakeCut
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
// has returned, and waits for it: the heartbeat, its pings, the Writes
// (which return once the connection is closed), the close handshake, a
// pending kill, and coder/websocket's own goroutines.
func (s *session) retire() {
	s.end()
	s.hb.stop()
	s.mu.Lock()
	s.retired = true
	if s.killTimer != nil && s.killTimer.Stop() {
		s.tasks.Done() // it will never run
	}
	s.mu.Unlock()
	s.kill()
	s.tasks.Wait()
	s.hb.wait()
	closeNow(s.ws)
}
