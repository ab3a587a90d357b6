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

// End reasons of a session, by priority: a close frame the reader saw wins
// over everything; a heartbeat timeout over the errors its forced close
// causes; an error from the peer (EOF, reset) over a write error; and any of
// them over the "use of closed connection" errors that our own CloseNow
// causes. Among equals the first wins.
const (
	endLocal = iota
	endWrite
	endRead
	endHeartbeat
	endCloseFrame
)

// session is one live connection: its reading (the pump, which the
// supervisor runs itself), its heartbeat, and the reason it ended.
type session struct {
	c    *Conn
	ws   *websocket.Conn
	born time.Time
	hb   heartbeat

	// lastActivity is when a frame last arrived, or when the pump last
	// resumed reading, in nanoseconds since born.
	lastActivity atomic.Int64
	// parked is set while the pump waits for Read to take a message: the
	// connection is not being read, so a pong could not be seen. parks
	// counts the times it happened.
	parked atomic.Bool
	parks  atomic.Uint64
	// dead is set, and deadCh closed, once the session is known to have
	// ended (an end reason recorded by the pump, a writer or the
	// heartbeat): Write stops using it, and a parked pump stops waiting.
	dead   atomic.Bool
	deadCh chan struct{}
	diedAt atomic.Int64 // when dead was set, in nanoseconds since born

	mu         sync.Mutex
	endKind    int
	err        error
	timeoutErr error // a Write whose ctx ended; the reason if nothing else is
	ended      bool  // the supervisor is retiring the session
	kill       *time.Timer
	killing    sync.WaitGroup

	scratch []byte // the pump's read buffer
}

// drainGrace bounds how long a session whose write failed is still read,
// for the messages and the close frame that had already arrived.
const drainGrace = time.Second

// maxCarry bounds the messages a dead session may carry over to Read.
const maxCarry = 1024

func newSession(c *Conn, ws *websocket.Conn) *session {
	s := &session{c: c, ws: ws, born: time.Now(), deadCh: make(chan struct{})}
	s.hb.init(s, c.cfg.hbInterval, c.cfg.hbTimeout)
	return s
}

func (s *session) now() int64 { return int64(time.Since(s.born)) }

func (s *session) touch() { s.lastActivity.Store(s.now()) }

// uptime is how long the session was up: until it died, or until now.
func (s *session) uptime() time.Duration {
	if s.dead.Load() {
		return time.Duration(s.diedAt.Load())
	}
	return time.Since(s.born)
}

// setEnd records why the session ended (see the end* priorities) and marks
// it dead.
func (s *session) setEnd(kind int, err error) {
	s.recordEnd(kind, err)
	s.markDead()
}

func (s *session) markDead() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead.Load() {
		return
	}
	s.diedAt.Store(s.now())
	s.dead.Store(true)
	s.c.cur.CompareAndSwap(s, nil)
	close(s.deadCh)
}

// closeLater closes the connection after drainGrace, unless the session is
// retired first: the pump may still read what had already arrived.
func (s *session) closeLater() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.kill != nil {
		return
	}
	s.kill = time.AfterFunc(drainGrace, func() {
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			return
		}
		s.killing.Add(1)
		s.mu.Unlock()
		defer s.killing.Done()
		_ = s.ws.CloseNow()
	})
}

// retire stops what still runs for the session besides the pump: the
// heartbeat and a pending closeLater. The caller closes the connection.
func (s *session) retire() {
	s.hb.stop()
	s.mu.Lock()
	s.ended = true
	if s.kill != nil {
		s.kill.Stop()
	}
	s.mu.Unlock()
}

// waitRetired waits for a heartbeat or closeLater in progress; call it once
// the connection is closed, so that they return at once.
func (s *session) waitRetired() {
	s.hb.wait()
	s.killing.Wait()
}

// recordEnd keeps err as the reason if it outranks the one recorded.
func (s *session) recordEnd(kind int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil || kind > s.endKind {
		s.endKind, s.err = kind, err
	}
}

// endReported reports whether a reason other than our own close of the
// connection has been recorded.
func (s *session) endReported() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil && s.endKind > endLocal
}

// endErr is why the session ended. A timed-out Write counts only if
// nothing but our own close was recorded: coder/websocket closes a
// connection whose write ctx ends mid-frame, but a Write that timed out
// waiting for the write lock left it healthy.
func (s *session) endErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timeoutErr != nil && (s.err == nil || s.endKind == endLocal) {
		return s.timeoutErr
	}
	return s.err
}

// pump reads whole messages and hands them to Read, in order, until the
// connection ends or Close is called. It runs on the supervisor goroutine,
// so a live connection costs no goroutine beyond the reader it needs anyway.
// It always reads with a context that never ends: coder/websocket closes a
// connection whose read context ends.
//
// Messages that a dead session had read but Read had not taken yet are
// carried over (c.carry, owned by the supervisor) and delivered first.
func (s *session) pump() {
	c := s.c
	for len(c.carry) > 0 {
		switch s.deliver(c.carry[0]) {
		case delivered:
			c.carry[0] = message{}
			c.carry = c.carry[1:]
		case closing:
			return
		case died:
			s.drain()
			return
		}
	}
	c.carry = nil
	for {
		typ, data, err := s.readMessage()
		if err != nil {
			s.readEnded(err)
			return
		}
		switch s.deliver(message{typ, data}) {
		case closing:
			return
		case died:
			c.carry = append(c.carry, message{typ, data})
			s.drain()
			return
		}
	}
}

// readEnded records the error that ended reading and closes the connection
// (EOF, reset and broken pipe leave a websocket.Conn open).
func (s *session) readEnded(err error) {
	kind := endRead
	switch {
	case websocket.CloseStatus(err) != -1:
		kind = endCloseFrame
	case errors.Is(err, net.ErrClosed):
		kind = endLocal
	}
	s.setEnd(kind, err)
	_ = s.ws.CloseNow()
}

// drain reads what had already arrived on a session that died while the
// pump was parked, so that neither those messages nor a close frame among
// them is lost, and carries the messages over. closeLater or the heartbeat's
// CloseNow bounds it.
func (s *session) drain() {
	for len(s.c.carry) < maxCarry {
		typ, data, err := s.readMessage()
		if err != nil {
			s.readEnded(err)
			return
		}
		s.c.carry = append(s.c.carry, message{typ, data})
	}
	_ = s.ws.CloseNow()
}

// readMessage reads one whole message, marking activity as each piece of it
// arrives so that a long message on a slow link is not mistaken for silence.
func (s *session) readMessage() (websocket.MessageType, []byte, error) {
	typ, r, err := s.ws.Reader(context.Background())
	if err != nil {
		return 0, nil, err
	}
	s.touch()
	buf := s.scratch[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, 512)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			s.touch()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, nil, err
		}
	}
	if cap(buf) > maxScratch {
		// A large message: hand over the buffer itself rather than copy
		// it, and do not keep that much memory per idle connection.
		s.scratch = nil
		return typ, buf, nil
	}
	s.scratch = buf[:0]
	return typ, bytes.Clone(buf), nil
}

// maxScratch bounds the read buffer a session keeps between messages.
const maxScratch = 16 << 10

// Outcomes of deliver.
const (
	delivered = iota
	closing   // Close was called
	died      // the session died while the pump waited
)

// deliver hands m to Read. While it waits, the connection is not read.
func (s *session) deliver(m message) int {
	select {
	case s.c.msgs <- m:
		return delivered
	default:
	}
	s.parks.Add(1)
	s.parked.Store(true)
	defer func() {
		// The idle clock restarts now (while parked nothing could be
		// read), and before parked clears: the heartbeat must never see
		// an unparked pump with a stale clock, or it would ping a peer
		// that is busy writing to us.
		s.touch()
		s.parked.Store(false)
	}()
	select {
	case s.c.msgs <- m:
		return delivered
	case <-s.c.closing:
		return closing
	case <-s.deadCh:
		return died
	}
}

func (s *session) write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	err := s.ws.Write(ctx, typ, p)
	if err == nil {
		return nil
	}
	if s.c.isClosing() {
		return ErrClosed
	}
	if ctx.Err() == nil {
		// A broken pipe or reset: the connection is gone, but a write
		// error does not close a websocket.Conn. Writes stop using it at
		// once; the pump may still read what had arrived (a close frame
		// among it must win), for a moment.
		s.setEnd(endWrite, err)
		s.closeLater()
	} else {
		// If ctx ended, coder/websocket closed the connection itself when
		// the frame was half written, or left it healthy when the write
		// never started: keep the error in case it was the former.
		s.mu.Lock()
		if s.timeoutErr == nil {
			s.timeoutErr = err
		}
		s.mu.Unlock()
	}
	return fmt.Errorf("wsreconnect: write: %w", err)
}
