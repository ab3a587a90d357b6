package resume

import (
	"context"
	"time"

	"github.com/coder/websocket"
)

// Message is one reliable message, as the application wrote it.
type Message struct {
	// Seq is its number in its session and direction (1, 2, 3, …).
	Seq uint64
	// Type is websocket.MessageText or websocket.MessageBinary.
	Type websocket.MessageType
	// Data is the payload, as written.
	Data []byte
}

// A Store keeps a server's sessions between connections: everything another
// server sharing it needs to resume a session goes through it, as it
// happens, never only when a connection ends (a server that dies never gets
// to save anything). Its methods are safe for concurrent use.
//
// Each session has a generation, incremented by Take: the server that took
// it last is its holder, and every change carries the holder's generation,
// so a server that lost the session to a newer connection (on another
// server) finds out with ErrSessionMoved instead of overwriting it.
//
// A Store keeps a session until its expiry passes; then it is gone
// (ErrSessionNotFound), whether or not it was deleted. The server renews
// the expiry with every Update while a connection is attached.
//
// The server writes to a session's Store record before the peer can depend
// on it: a message is appended before it is sent, and the position received
// from the client is recorded before it is acknowledged. A Store must
// therefore apply each call completely or not at all, and make it visible
// to every server before it returns. In Redis, for instance: one hash per
// session (generation, received, acked) and one list of its unacknowledged
// messages, both with the session's expiry as their TTL, each method one
// Lua script that checks the generation first.
//
// Package storetest checks a Store against this contract: a Store written
// elsewhere runs storetest.Run in its tests.
type Store interface {
	// Create stores a new session (Gen 1, nothing sent or received).
	Create(ctx context.Context, r Record) error

	// Take attaches a new connection to a session: it increments the
	// generation, sets the expiry, and returns the updated record, in one
	// atomic step. ErrSessionNotFound if the Store does not hold it.
	Take(ctx context.Context, id string, expires time.Time) (Record, error)

	// Update applies u to the session if its generation is still gen, in
	// one atomic step: ErrSessionMoved if it is not, ErrSessionNotFound if
	// the session is gone.
	Update(ctx context.Context, id string, gen uint64, u Update) error

	// Delete removes the session if its generation is gen (no error if it
	// is gone or moved on).
	Delete(ctx context.Context, id string, gen uint64) error
}

// Record is a session as a Store holds it.
type Record struct {
	ID      string
	Gen     uint64    // incremented by each Take
	Expires time.Time // the Store forgets the session after this

	// Received is the number of the last message from the client that the
	// server's application has read; the client resends what follows.
	Received uint64
	// Acked is the number of the last message to the client that the
	// client acknowledged.
	Acked uint64
	// Unacked are the messages to the client numbered Acked+1, Acked+2, …
	// in order: the server resends them when the client comes back.
	Unacked []Message
}

// Update is a change to a session's Record. Zero fields change nothing.
type Update struct {
	// Append adds messages to the client to Unacked: the first is numbered
	// one more than the last one held.
	Append []Message
	// Acked drops the messages to the client up to it from Unacked, if it
	// is above Record.Acked.
	Acked uint64
	// Received raises Record.Received, if it is above it.
	Received uint64
	// Expires replaces Record.Expires.
	Expires time.Time
}
