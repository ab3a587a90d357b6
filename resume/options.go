package resume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// Defaults of the options. Each option's doc comment repeats its default
// and states its valid range.
const (
	DefaultOutboxMessages   = 1024
	DefaultOutboxBytes      = 1 << 20 // 1 MiB
	DefaultAckEvery         = 64
	DefaultAckDelay         = 100 * time.Millisecond
	DefaultMaxMessage       = 32 << 10 // 32 KiB, coder/websocket's default read limit
	DefaultVolatileBacklog  = 256
	DefaultResumeWindow     = 2 * time.Minute
	DefaultMaxSessions      = 10000
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPeerWindowCount  = 4096
	DefaultPeerWindowBytes  = 4 << 20 // 4 MiB
)

// An Option configures a Client (Dial) or a Server (NewServer). Most apply
// to both ends; those that apply to one end only are an error at the other.
// Options are applied in order, then validated together: invalid values
// are one error, wrapping ErrInvalidOption, from Dial or NewServer.
type Option interface {
	apply(*config)
}

type option struct {
	name string
	side side
	fn   func(*config)
}

type side int

const (
	bothSides side = iota
	clientSide
	serverSide
)

func (o option) apply(c *config) {
	switch {
	case o.side == clientSide && c.side == serverSide:
		c.fail("%s is a client option (Dial), not a server option", o.name)
	case o.side == serverSide && c.side == clientSide:
		c.fail("%s is a server option (NewServer), not a client option", o.name)
	default:
		o.fn(c)
	}
}

// ErrInvalidOption is wrapped by every error Dial and NewServer return for
// an invalid option.
var ErrInvalidOption = errors.New("resume: invalid option")

type config struct {
	side side

	// Both ends.
	outbox       limits // count and bytes: the window announced; message: the largest payload accepted
	failWhenFull bool
	ackEvery     int
	ackDelay     time.Duration
	volatile     int

	// Client.
	connOpts      []wsreconnect.Option
	onConnect     func(context.Context, *websocket.Conn) error
	handshakeHook func() // tests only: runs inside each handshake, where Close waits for it
	traces        []Trace

	// Server.
	store            Store
	window           time.Duration
	maxSessions      int
	accept           *websocket.AcceptOptions
	handshakeTimeout time.Duration
	peerMax          limits // count and bytes: the largest client window accepted

	errs []error
}

func defaultConfig(s side) config {
	return config{
		side:             s,
		outbox:           limits{count: DefaultOutboxMessages, bytes: DefaultOutboxBytes, message: DefaultMaxMessage},
		ackEvery:         DefaultAckEvery,
		ackDelay:         DefaultAckDelay,
		volatile:         DefaultVolatileBacklog,
		window:           DefaultResumeWindow,
		maxSessions:      DefaultMaxSessions,
		handshakeTimeout: DefaultHandshakeTimeout,
		peerMax:          limits{count: DefaultPeerWindowCount, bytes: DefaultPeerWindowBytes},
	}
}

func newConfig(s side, opts []Option) (config, error) {
	cfg := defaultConfig(s)
	for _, o := range opts {
		if o == nil {
			cfg.fail("nil Option")
			continue
		}
		o.apply(&cfg)
	}
	return cfg, cfg.validate()
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

func (c *config) validate() error {
	intIn := func(name string, v, lo, hi int) {
		if v < lo || v > hi {
			c.fail("%s %d out of range [%d, %d]", name, v, lo, hi)
		}
	}
	durIn := func(name string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			c.fail("%s %v out of range [%v, %v]", name, d, lo, hi)
		}
	}
	intIn("outbox messages", c.outbox.count, 1, maxWindowCount)
	intIn("outbox bytes", c.outbox.bytes, 1, maxWindowBytes)
	intIn("max message", c.outbox.message, 1, maxMessageLimit)
	intIn("ack every", c.ackEvery, 1, maxWindowCount)
	durIn("ack delay", c.ackDelay, time.Millisecond, 10*time.Second)
	intIn("volatile backlog", c.volatile, 1, maxWindowCount)
	if c.side == serverSide {
		durIn("resume window", c.window, time.Millisecond, 24*time.Hour)
		intIn("max sessions", c.maxSessions, 1, 1<<24)
		durIn("handshake timeout", c.handshakeTimeout, time.Millisecond, time.Hour)
		intIn("peer window messages", c.peerMax.count, 1, maxWindowCount)
		intIn("peer window bytes", c.peerMax.bytes, 1, maxWindowBytes)
	}
	return errors.Join(c.errs...)
}

// WithOutbox bounds the reliable messages written and not yet acknowledged
// by the peer: at most messages of them, holding at most bytes of payload.
// This is the window announced to the peer, which acknowledges before half
// of it is used. A Write that would exceed it waits (see
// WithOutboxFullError); a message larger than bytes is refused with
// ErrTooLarge. Default 1024 messages and 1 MiB; valid ranges 1 to 1,048,576
// messages and 1 byte to 1 GiB.
//
// A server's outbox also holds what it writes to a session while the
// client is away, for the resume window. A server accepts a client's
// window up to WithPeerWindowLimit.
func WithOutbox(messages, bytes int) Option {
	return option{name: "WithOutbox", fn: func(c *config) { c.outbox.count, c.outbox.bytes = messages, bytes }}
}

// WithOutboxFullError makes a Write (reliable or volatile) that finds the
// outbox full return ErrOutboxFull at once instead of waiting for the
// peer's acknowledgement. Default: Write waits, bounded by its ctx.
func WithOutboxFullError() Option {
	return option{name: "WithOutboxFullError", fn: func(c *config) { c.failWhenFull = true }}
}

// WithAck sets when this end acknowledges the reliable messages its
// application has read: after every messages, or delay after the first
// unacknowledged one, whichever comes first; and always once half the
// peer's announced window is read. Acknowledgements are cumulative: one
// small frame covers them all. Default 64 messages and 100 ms; valid ranges
// 1 to 1,048,576 and 1 ms to 10 s.
func WithAck(every int, delay time.Duration) Option {
	return option{name: "WithAck", fn: func(c *config) { c.ackEvery, c.ackDelay = every, delay }}
}

// WithMaxMessage sets the largest payload this end accepts, announced to
// the peer, whose Writes of larger messages fail with ErrTooLarge. It sets
// the connection's read limit (coder/websocket's SetReadLimit) to n plus
// the protocol's header. Default 32 KiB, coder/websocket's own default;
// valid range 1 byte to 1 GiB.
func WithMaxMessage(n int) Option {
	return option{name: "WithMaxMessage", fn: func(c *config) { c.outbox.message = n }}
}

// WithVolatileBacklog bounds the volatile messages waiting: received and
// not yet read (beyond it, newly arrived ones are dropped and counted in
// Stats), and written and not yet sent (beyond it, WriteVolatile waits, or
// fails with WithOutboxFullError). Default 256; valid range 1 to 1,048,576.
func WithVolatileBacklog(n int) Option {
	return option{name: "WithVolatileBacklog", fn: func(c *config) { c.volatile = n }}
}

// WithConnOptions passes options to wsreconnect.Dial: the schedules, the
// heartbeat, the policy, OnDisconnect, the logger. Not
// wsreconnect.WithOnConnect, which would replace the resume handshake
// (Dial reports it as an error): use this package's WithOnConnect. Nor
// wsreconnect.WithPingFunc with a message of the application's: the
// server would read a frame that is not the protocol's, and close the
// connection (1002); protocol pings, the default, are fine.
// wsreconnect.WithSendQueue has no effect: the Client writes its own
// frames, and keeps its reliable messages in its outbox. Client only.
// Default: none.
func WithConnOptions(opts ...wsreconnect.Option) Option {
	return option{name: "WithConnOptions", side: clientSide, fn: func(c *config) { c.connOpts = append(c.connOpts, opts...) }}
}

// WithOnConnect sets a function that runs on each new connection before the
// resume handshake, as wsreconnect.WithOnConnect's does: authenticate, say
// (wsreconnect.ReadOnConnect reads the server's answer; as under
// wsreconnect.WithOnConnect, it must never read or close ws itself, and
// an error wrapping a websocket.CloseError closes the connection with that
// code; the Client's Close does not wait for it to return: its ctx has
// ended). The server sees
// its messages before the hello; ServeConn expects the hello as the first
// message, so a server that wants them reads them itself before calling
// ServeConn. Client only. Default: none.
func WithOnConnect(fn func(ctx context.Context, ws *websocket.Conn) error) Option {
	return option{name: "WithOnConnect", side: clientSide, fn: func(c *config) {
		if fn == nil {
			c.fail("WithOnConnect: nil function")
		}
		c.onConnect = fn
	}}
}

// WithStore sets where sessions are kept between connections. Servers that
// share a Store let a client resume on any of them. Server only. Default:
// a MemoryStore of its own (NewMemoryStore with its defaults): a client
// resumes only on this server, and only while it runs.
func WithStore(s Store) Option {
	return option{name: "WithStore", side: serverSide, fn: func(c *config) {
		if s == nil {
			c.fail("WithStore: nil Store")
		}
		c.store = s
	}}
}

// WithResumeWindow sets how long a session outlives its connection: a
// client that comes back within it resumes, and the messages written to it
// meanwhile wait in its outbox; after it, the session is forgotten and the
// client is told that it was not recovered. While a connection is attached
// the server renews the session's expiry in the Store, so a session whose
// server died expires one window after its last renewal. Server only.
// Default 2 min; valid range 1 ms to 24 h.
func WithResumeWindow(d time.Duration) Option {
	return option{name: "WithResumeWindow", side: serverSide, fn: func(c *config) { c.window = d }}
}

// WithMaxSessions bounds the sessions this server holds, attached or
// waiting for their client: beyond it, a client asking for a new session
// is refused with close code 1013 (try again later). Server only. Default
// 10,000; valid range 1 to 16,777,216.
func WithMaxSessions(n int) Option {
	return option{name: "WithMaxSessions", side: serverSide, fn: func(c *config) { c.maxSessions = n }}
}

// WithAcceptOptions sets the options ServeHTTP passes to websocket.Accept.
// Server only. Default: nil (coder/websocket's defaults).
func WithAcceptOptions(opts *websocket.AcceptOptions) Option {
	return option{name: "WithAcceptOptions", side: serverSide, fn: func(c *config) { c.accept = opts }}
}

// WithHandshakeTimeout bounds the wait for a connection's hello. Server
// only. Default 10 s; valid range 1 ms to 1 h.
func WithHandshakeTimeout(d time.Duration) Option {
	return option{name: "WithHandshakeTimeout", side: serverSide, fn: func(c *config) { c.handshakeTimeout = d }}
}

// WithPeerWindowLimit bounds the window a client may announce: what this
// server may hold of a session's messages that its application has not
// read yet. A client announcing more is refused with close code 1008.
// Server only. Default 4096 messages and 4 MiB; valid ranges 1 to
// 1,048,576 messages and 1 byte to 1 GiB.
func WithPeerWindowLimit(messages, bytes int) Option {
	return option{name: "WithPeerWindowLimit", side: serverSide, fn: func(c *config) { c.peerMax.count, c.peerMax.bytes = messages, bytes }}
}
