package resume

import (
	"fmt"

	"github.com/coder/websocket"
)

// The accounting of one direction of a session, the same at both ends:
// the sender's outbox and the receiver's position. Neither locks: each is
// guarded by its owner's mutex.

// outEntry is one reliable message in an outbox: its encoded M frame
// (payload is frame's tail, shared, never written again) and its number.
type outEntry struct {
	seq   uint64
	typ   websocket.MessageType
	frame []byte
	size  int // payload bytes
}

func (e outEntry) message() Message {
	return Message{Seq: e.seq, Type: e.typ, Data: e.frame[len(e.frame)-e.size:]}
}

// outbox holds the reliable messages sent (or to be sent) until the peer
// acknowledges them, oldest first: entries[head:] are acked+1, acked+2, …
type outbox struct {
	entries []outEntry
	head    int
	acked   uint64 // the highest number the peer acknowledged
	bytes   int    // payload bytes held
}

func (o *outbox) len() int { return len(o.entries) - o.head }

// last is the number of the newest message, acked if the outbox is empty.
func (o *outbox) last() uint64 { return o.acked + uint64(o.len()) }

// fits reports whether a message of size bytes fits within l.
func (o *outbox) fits(size int, l limits) bool {
	return o.len() < l.count && o.bytes+size <= l.bytes
}

// add appends the next message (numbered last()+1).
func (o *outbox) add(e outEntry) {
	if o.head > 0 && len(o.entries) == cap(o.entries) {
		n := copy(o.entries, o.entries[o.head:])
		clear(o.entries[n:])
		o.entries, o.head = o.entries[:n], 0
	}
	o.entries = append(o.entries, e)
	o.bytes += e.size
}

// errAckUnsent is an acknowledgement of a message never sent.
var errAckUnsent = &frameError{code: websocket.StatusProtocolError, reason: "ack for a message never sent"}

// ack drops the messages up to n. An ack at or below the current one
// changes nothing (acks are cumulative; a late one is harmless); one above
// the newest message is a protocol error. It returns how many it dropped.
func (o *outbox) ack(n uint64) (int, error) {
	if n > o.last() {
		return 0, errAckUnsent
	}
	if n <= o.acked {
		return 0, nil
	}
	k := int(n - o.acked)
	for i := o.head; i < o.head+k; i++ {
		o.bytes -= o.entries[i].size
		o.entries[i] = outEntry{}
	}
	o.head += k
	o.acked = n
	if o.head == len(o.entries) {
		o.entries, o.head = o.entries[:0], 0
		if cap(o.entries) > 4096 {
			o.entries = nil // do not keep a burst's array
		}
	}
	return k, nil
}

// messages returns the unacknowledged messages as Messages.
func (o *outbox) messages() []Message {
	var ms []Message
	for _, e := range o.entries[o.head:] {
		ms = append(ms, e.message())
	}
	return ms
}

// receiver is the receiving end of one direction: what arrived, what the
// application took, and what was acknowledged, in reliable message numbers.
//
//	ackSent ≤ consumed ≤ recv
//
// The receiver acknowledges only what the application took, so the sender's
// window bounds what waits for the application. sizes holds the payload
// sizes of ackSent+1 … recv, for the byte window.
type receiver struct {
	recv     uint64 // the highest number received
	consumed uint64 // the highest number the application took
	ackSent  uint64 // the highest number acknowledged to the peer
	sizes    []int  // sizes[head:]: payload sizes of ackSent+1 … recv
	head     int
	recvB    int    // payload bytes of ackSent+1 … recv
	consB    int    // payload bytes of ackSent+1 … consumed
	peer     limits // the sender's announced window
}

// accept checks message seq of size bytes. It reports whether the message
// is new (the next in order); a duplicate is not new and not an error. A
// gap, or a message beyond the sender's window, is a protocol error.
func (r *receiver) accept(seq uint64, size int) (bool, error) {
	switch {
	case seq <= r.recv:
		return false, nil
	case seq != r.recv+1:
		return false, &frameError{code: websocket.StatusProtocolError,
			reason: fmt.Sprintf("message %d after %d: a gap", seq, r.recv)}
	case seq-r.ackSent > uint64(r.peer.count) || r.recvB+size > r.peer.bytes:
		return false, &frameError{code: websocket.StatusPolicyViolation, reason: "window exceeded"}
	}
	r.recv = seq
	if r.head > 0 && len(r.sizes) == cap(r.sizes) {
		n := copy(r.sizes, r.sizes[r.head:])
		r.sizes, r.head = r.sizes[:n], 0
	}
	r.sizes = append(r.sizes, size)
	r.recvB += size
	return true, nil
}

// consume records that the application took message seq (the next one).
func (r *receiver) consume(seq uint64) {
	if seq != r.consumed+1 || seq > r.recv || seq <= r.ackSent {
		return // cannot happen: the queue hands messages over in order
	}
	r.consB += r.sizes[r.head+int(seq-r.ackSent)-1]
	r.consumed = seq
}

// ackDue reports whether the taken messages must be acknowledged now:
// every messages, or half the sender's window in messages or bytes (so a
// sender that keeps writing never waits for a full window).
func (r *receiver) ackDue(every int) bool {
	n := r.consumed - r.ackSent
	return n > 0 && (n >= uint64(every) || 2*n >= uint64(r.peer.count) || 2*r.consB >= r.peer.bytes)
}

// acked records an acknowledgement of everything up to n (≤ consumed)
// sent to the peer. The caller records it before the frame is written: a
// receiver that checks the window against an ack the sender has not seen
// yet is lenient, never wrong.
func (r *receiver) acked(n uint64) {
	if n <= r.ackSent {
		return
	}
	k := int(n - r.ackSent)
	for _, s := range r.sizes[r.head : r.head+k] {
		r.recvB -= s
		r.consB -= s
	}
	r.head += k
	if r.head == len(r.sizes) {
		r.sizes, r.head = r.sizes[:0], 0
	}
	r.ackSent = n
}
