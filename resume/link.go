package resume

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// outItem is one frame queued for a connection: a reliable message (seq >
// 0, its frame shared with the outbox) or a volatile one.
type outItem struct {
	typ   websocket.MessageType
	frame []byte
	seq   uint64
}

// link is one connection's writer, the same at both ends: one goroutine
// (run) writes the frames queued for the connection, in order, and the
// acknowledgements its receiver owes, on time. It is the only writer of
// the connection after the handshake, so nothing reorders frames.
//
// Its owner (the Client's handshake, or the server's ServeConn) starts it
// and stops it, which waits for it. The owner's mutex guards the queue and
// the receiver.
//
// Who may close the connection differs between the ends. The server owns
// its connection: abort closes it, so that stop cuts short a write stuck
// on a peer that stopped reading. The client's connection belongs to the
// wsreconnect.Conn, which closes it when the connection ends (before it
// dials the next one, and before its Close returns): the client stops a
// link only after that, so abort is nil there, and a write that fails
// leaves the link dead, its connection's end being the Conn's to see (its
// reader gets the same broken socket, or its heartbeat finds it).
type link struct {
	ws        *websocket.Conn
	mu        *sync.Mutex // the owner's
	rx        *receiver   // the acknowledgements come from here
	peer      limits      // what the peer announced in its handshake
	ackEvery  int
	ackDelay  time.Duration
	tick      func() // run every tickEvery, without the lock; nil: none
	tickEvery time.Duration
	drained   func() // called with the lock held when queued volatile frames are taken
	abort     func() // run by stop to cut a write under way short; nil: none (see above)

	ctx    context.Context // ends at stop
	cancel context.CancelFunc
	wake   chan struct{} // (cap 1) something was queued, or an ack may be due
	done   chan struct{} // closed when run returns

	// Guarded by *mu.
	queue     []outItem // queue[head:] wait to be written
	head      int
	volatiles int  // volatile frames in the queue
	dead      bool // a write failed, or stop was called: nothing more is queued
	busy      bool // the writer is writing a batch
	idle      cond // broadcast when the writer has written all it was given
	endWanted bool // write an E frame after the queue, then close ended
	ended     chan struct{}
}

func newLink(ws *websocket.Conn, mu *sync.Mutex, rx *receiver, peer limits, cfg *config) *link {
	ctx, cancel := context.WithCancel(context.Background())
	return &link{
		ws: ws, mu: mu, rx: rx, peer: peer,
		ackEvery: cfg.ackEvery, ackDelay: cfg.ackDelay,
		ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		ended: make(chan struct{}),
	}
}

func (l *link) start() { go l.run() }

// stop ends the writer and waits for it. With abort, it closes the
// connection (a write under way is cut short): call it only once the
// connection is over, or to end it. Without, a write under way returns
// when its connection is closed by its owner.
func (l *link) stop() {
	l.mu.Lock()
	l.dead = true
	l.mu.Unlock()
	l.cancel()
	<-l.done
}

// push queues a frame. l.mu must be held, and l not dead.
func (l *link) push(it outItem) {
	if it.seq == 0 {
		l.volatiles++
	}
	l.queue = append(l.queue, it)
	l.kick()
}

// kick wakes the writer: something was queued, or an ack may be due.
func (l *link) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *link) run() {
	defer close(l.done)
	// Writes get a ctx that never ends: coder/websocket arms a timer per
	// call for one that can. Stopping the link aborts the connection
	// instead (at the server), which cuts a write under way short.
	if l.abort != nil {
		defer afterFunc(l.ctx, l.abort)()
	}
	ackTimer := time.NewTimer(time.Hour)
	ackTimer.Stop()
	defer ackTimer.Stop()
	armed, fired := false, false
	var tickC <-chan time.Time
	if l.tick != nil {
		t := time.NewTicker(l.tickEvery)
		defer t.Stop()
		tickC = t.C
	}
	var batch []outItem
	var ackBuf []byte
	for {
		l.mu.Lock()
		batch = append(batch[:0], l.queue[l.head:]...)
		clear(l.queue)
		if l.volatiles > 0 && l.drained != nil {
			l.drained()
		}
		l.queue, l.head, l.volatiles = l.queue[:0], 0, 0
		var ack uint64
		if r := l.rx; r.consumed > r.ackSent {
			if fired || r.ackDue(l.ackEvery) {
				ack = r.consumed
				r.acked(ack) // before it is written: see receiver.acked
				fired = false
				if armed {
					ackTimer.Stop()
					armed = false
				}
			} else if !armed {
				ackTimer.Reset(l.ackDelay)
				armed = true
			}
		} else {
			fired = false
		}
		end := l.endWanted
		l.endWanted = false
		l.busy = ack > 0 || len(batch) > 0 || end
		if !l.busy {
			l.idle.broadcast()
		}
		l.mu.Unlock()

		if ack > 0 {
			ackBuf = appendAck(ackBuf[:0], ack)
			if !l.write(websocket.MessageText, ackBuf) {
				return
			}
		}
		for i, it := range batch {
			if !l.write(it.typ, it.frame) {
				return
			}
			batch[i] = outItem{}
		}
		if end {
			if !l.write(websocket.MessageText, appendEnd(nil)) {
				return
			}
			close(l.ended)
		}
		if ack > 0 || len(batch) > 0 || end {
			continue // see whether more came meanwhile
		}
		select {
		case <-l.wake:
		case <-ackTimer.C:
			armed, fired = false, true
		case <-tickC:
			l.tick()
		case <-l.ctx.Done():
			return
		}
	}
}

// afterFunc is context.AfterFunc, but its stop also waits for f if it has
// started: the goroutine that runs f does not outlive the caller.
func afterFunc(ctx context.Context, f func()) (stop func()) {
	done := make(chan struct{})
	s := context.AfterFunc(ctx, func() {
		defer close(done)
		f()
	})
	return func() {
		if !s() {
			<-done
		}
	}
}

// drain waits until the writer has written everything queued, the link
// is dead, or d has passed.
func (l *link) drain(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		l.mu.Lock()
		done := l.dead || !l.busy && l.head == len(l.queue)
		ch := l.idle.wait()
		l.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-t.C:
			return
		case <-l.done:
			return
		}
	}
}

// write writes one frame; on failure it marks the link dead and reports
// false. The owner's reader sees the connection's end.
func (l *link) write(typ websocket.MessageType, p []byte) bool {
	if l.ws.Write(context.Background(), typ, p) == nil {
		return true
	}
	l.mu.Lock()
	l.dead = true
	l.idle.broadcast()
	l.mu.Unlock()
	return false
}
