package wsreconnect

import (
	"context"
	"sync"

	"github.com/coder/websocket"
)

// readAhead is how many whole messages the pump may hold for Read while
// the connection is healthy. It lets the pump read the next message while
// the application works on this one, and bounds the memory a slow reader
// pins: with that many waiting, the pump stops reading (it is parked).
const readAhead = 8

// maxDrain bounds the messages waiting in the inbox when a connection that
// is ending is drained (read to its end, past readAhead, so that nothing
// that arrived is lost); past it, the rest is dropped with the connection.
const maxDrain = 1024

type message struct {
	typ  websocket.MessageType
	data []byte
}

// inbox holds the messages the pump has read and Read has not taken yet,
// in order. It belongs to the Conn, not to a connection: what a connection
// delivered stays readable after it is gone, while the Conn reconnects.
//
// While OnConnect runs, the messages of the connection it sets up are held
// apart, for OnConnect to read (ReadOnConnect); those it leaves go to Read
// once it has returned nil (unhold), after what the connections before
// delivered.
type inbox struct {
	mu        sync.Mutex
	msgs      []message // msgs[head:] wait for Read
	head      int
	held      []message // the connection OnConnect sets up: for ReadOnConnect
	holding   bool
	readers   int  // Reads waiting for a message
	pumpWaits bool // the pump waits for room
	dropped   bool // Close was called: nothing more is kept

	avail     chan struct{} // a message arrived while Reads waited (cap 1)
	heldAvail chan struct{} // likewise, for ReadOnConnect (cap 1; made by the first hold)
	room      chan struct{} // a Read made room while the pump waited (cap 1)
}

func newInbox() inbox {
	return inbox{avail: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// push appends m and returns how many messages wait, m included: those held
// for OnConnect while it runs, else those for Read.
func (in *inbox) push(m message) int {
	in.mu.Lock()
	if in.dropped {
		in.mu.Unlock()
		return 0
	}
	if in.holding {
		in.held = append(in.held, m)
		n, avail := len(in.held), in.heldAvail
		in.mu.Unlock()
		signal(avail)
		return n
	}
	if in.head > 0 && len(in.msgs) == cap(in.msgs) {
		// Reuse the space Read has freed before growing.
		n := copy(in.msgs, in.msgs[in.head:])
		clear(in.msgs[n:])
		in.msgs, in.head = in.msgs[:n], 0
	}
	in.msgs = append(in.msgs, m)
	n := len(in.msgs) - in.head
	wake := in.readers > 0
	in.mu.Unlock()
	if wake {
		signal(in.avail)
	}
	return n
}

// waiting is how many messages the pump's next push would count. in.mu
// must be held.
func (in *inbox) waiting() int {
	if in.holding {
		return len(in.held)
	}
	return len(in.msgs) - in.head
}

// roomLocked wakes the pump if it waits for room and there is some. in.mu
// must be held.
func (in *inbox) roomLocked() {
	if in.pumpWaits && in.waiting() <= readAhead {
		in.pumpWaits = false
		signal(in.room)
	}
}

func (in *inbox) popLocked() (message, bool) {
	if in.head == len(in.msgs) {
		return message{}, false
	}
	m := in.msgs[in.head]
	in.msgs[in.head] = message{}
	in.head++
	n := len(in.msgs) - in.head
	if n == 0 {
		in.msgs, in.head = in.msgs[:0], 0
		if cap(in.msgs) > 4*readAhead {
			in.msgs = nil // do not keep a drained burst's array
		}
	}
	in.roomLocked()
	if n > 0 && in.readers > 0 {
		signal(in.avail) // for the next waiting Read
	}
	return m, true
}

// take returns the oldest message, waiting for one until ctx ends or stop
// is closed (then ok is false and err is ctx's error, or nil).
func (in *inbox) take(ctx context.Context, stop <-chan struct{}) (m message, ok bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for {
		if m, ok := in.popLocked(); ok {
			return m, true, nil
		}
		select {
		case <-stop:
			return message{}, false, nil
		default:
		}
		in.readers++
		in.mu.Unlock()
		select {
		case <-in.avail:
		case <-stop:
		case <-ctx.Done():
			err = ctx.Err()
		}
		in.mu.Lock()
		in.readers--
		if err != nil {
			return message{}, false, err
		}
	}
}

// hold starts holding the messages of a new connection for OnConnect.
func (in *inbox) hold() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.holding, in.held = true, nil
	if in.heldAvail == nil {
		in.heldAvail = make(chan struct{}, 1)
	}
}

// unhold ends holding: deliver hands the messages OnConnect did not read
// to Read, in order, else they are dropped with the connection it
// rejected.
func (in *inbox) unhold(deliver bool) {
	in.mu.Lock()
	held := in.held
	in.holding, in.held = false, nil
	if deliver && !in.dropped && len(held) > 0 {
		in.msgs = append(in.msgs[in.head:], held...)
		in.head = 0
		if in.readers > 0 {
			signal(in.avail)
		}
	}
	in.roomLocked()
	in.mu.Unlock()
}

// takeHeld returns the oldest message held for OnConnect, waiting for one
// until ctx ends or ended is closed (then ok is false and err is ctx's
// error, or nil).
func (in *inbox) takeHeld(ctx context.Context, ended <-chan struct{}) (m message, ok bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for {
		if in.holding && len(in.held) > 0 {
			m = in.held[0]
			in.held[0] = message{}
			in.held = in.held[1:]
			in.roomLocked()
			return m, true, nil
		}
		select {
		case <-ended:
			return message{}, false, nil
		default:
		}
		avail := in.heldAvail
		in.mu.Unlock()
		select {
		case <-avail:
		case <-ended:
		case <-ctx.Done():
			err = ctx.Err()
		}
		in.mu.Lock()
		if err != nil {
			return message{}, false, err
		}
	}
}

// waitRoom returns once at most readAhead messages wait, or at once when
// ending is closed (a connection that ends is drained without the bound).
// While it waits, nothing reads the connection: the pump is parked. The
// pump calls it when push reports more than readAhead waiting.
func (in *inbox) waitRoom(ending <-chan struct{}, parked func(bool)) {
	for {
		in.mu.Lock()
		if in.waiting() <= readAhead || in.dropped {
			in.mu.Unlock()
			return
		}
		in.pumpWaits = true
		in.mu.Unlock()
		parked(true)
		select {
		case <-in.room:
		case <-ending:
		}
		parked(false)
		select {
		case <-ending:
			return
		default:
		}
	}
}

// drop discards what waits and everything pushed from now on (Close).
func (in *inbox) drop() {
	in.mu.Lock()
	in.dropped = true
	clear(in.msgs)
	in.msgs, in.head, in.held = nil, 0, nil
	held := in.heldAvail
	in.mu.Unlock()
	signal(in.room)
	if held != nil {
		signal(held)
	}
}
