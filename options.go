package wsreconnect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"
)

// Defaults of the options. Each option's doc comment repeats its default and
// states its valid range.
const (
	DefaultInitialDelay      = 1 * time.Second
	DefaultMaxDelay          = 30 * time.Second
	DefaultStableUptime      = 10 * time.Second
	DefaultDialTimeout       = 10 * time.Second
	DefaultMaxRetryAfter     = 5 * time.Minute
	DefaultHeartbeatInterval = 20 * time.Second
	DefaultHeartbeatTimeout  = 10 * time.Second

	// minOverloadDelay is the floor of the overload schedule (1013, 429,
	// 503): a server that says it is overloaded gets at least a second.
	minOverloadDelay = 1 * time.Second
	// minHeartbeat is the smallest accepted heartbeat interval and timeout.
	minHeartbeat = 10 * time.Millisecond
	// maxSendQueue bounds WithSendQueue.
	maxSendQueue = 1 << 20
	// maxDuration bounds every duration option; anything longer is a
	// mistake (a unit error), not a schedule.
	maxDuration = 24 * time.Hour
)

// An Option configures a Conn. Options are applied in order by Dial, then
// validated together: an invalid value is an error from Dial.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	onConnect    func(context.Context, *websocket.Conn) error
	onDisconnect func(Disconnect)
	policy       Policy
	newBackOff   func() backoff.BackOff
	logger       *slog.Logger

	initialDelay  time.Duration
	maxDelay      time.Duration
	setInitial    bool // WithInitialDelay was given
	setMax        bool // WithMaxDelay was given
	stableUptime  time.Duration
	dialTimeout   time.Duration
	maxRetryAfter time.Duration

	hbInterval time.Duration
	hbTimeout  time.Duration
	pingFunc   func(context.Context, *websocket.Conn) error

	limiter Limiter

	sendQueue int

	traces []Trace

	fake *fakePlatform // for tests: a wall clock that jumps, a network that goes

	errs []error // problems found while applying options
}

// fakePlatform replaces what a Conn learns from its platform, for tests
// (one pointer, so that a Conn stays in its size class).
type fakePlatform struct {
	wall   func() time.Time // the wall clock (Conn.wallNow)
	online func() bool      // what the platform says of the network (Conn.online)
}

func defaultConfig() config {
	return config{
		policy:        DefaultPolicy,
		logger:        slog.New(slog.DiscardHandler),
		initialDelay:  DefaultInitialDelay,
		maxDelay:      DefaultMaxDelay,
		stableUptime:  DefaultStableUptime,
		dialTimeout:   DefaultDialTimeout,
		maxRetryAfter: DefaultMaxRetryAfter,
		hbInterval:    DefaultHeartbeatInterval,
		hbTimeout:     DefaultHeartbeatTimeout,
	}
}

// ErrInvalidOption is wrapped by every error Dial returns for an invalid
// option (or a nil DialFunc); errors.Is(err, ErrInvalidOption) tells a
// mistake in the code from a failure to connect.
var ErrInvalidOption = errors.New("wsreconnect: invalid option")

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// validate checks the options together, after all have been applied. It
// reports only the problems the caller made: an invalid value once, and
// the order of the delays only when both are valid.
func (c *config) validate() error {
	inRange := func(name string, d, lo time.Duration) bool {
		if d < lo || d > maxDuration {
			c.fail("%s %v out of range [%v, %v]", name, d, lo, maxDuration)
			return false
		}
		return true
	}
	okInitial := inRange("initial delay", c.initialDelay, time.Millisecond)
	okMax := inRange("max delay", c.maxDelay, time.Millisecond)
	switch {
	case !okInitial || !okMax || c.initialDelay <= c.maxDelay:
	case !c.setInitial:
		// A max delay below the default initial delay lowers it too.
		c.initialDelay = c.maxDelay
	case !c.setMax:
		c.fail("initial delay %v exceeds the default max delay %v (see WithMaxDelay)", c.initialDelay, c.maxDelay)
	default:
		c.fail("initial delay %v exceeds max delay %v", c.initialDelay, c.maxDelay)
	}
	inRange("stable uptime", c.stableUptime, time.Millisecond)
	inRange("dial timeout", c.dialTimeout, time.Millisecond)
	inRange("max Retry-After", c.maxRetryAfter, 0)
	if c.sendQueue < 0 || c.sendQueue > maxSendQueue {
		c.fail("send queue of %d messages out of range [0, %d]", c.sendQueue, maxSendQueue)
	}
	switch {
	case c.hbInterval != 0:
		inRange("heartbeat interval", c.hbInterval, minHeartbeat)
		inRange("heartbeat timeout", c.hbTimeout, minHeartbeat)
	case c.hbTimeout > 0: // the heartbeat is off; Probe's timeout
		inRange("heartbeat timeout", c.hbTimeout, minHeartbeat)
	}
	return errors.Join(c.errs...)
}

// WithOnConnect sets a function that runs on each new connection, before
// Read and Write resume on it: authenticate, resubscribe. It writes to ws
// directly, and reads the server's answers with ReadOnConnect(ctx): the
// Conn reads ws from the moment it exists (so that the server's pings are
// answered and its close frame is seen), so OnConnect must never read ws
// itself. ctx ends after the dial timeout (see WithDialTimeout), when the
// connection ends, or when the Conn is closed.
//
// An error counts as a failed attempt: the connection is dropped (with a
// close frame, 1000 "OnConnect failed", or the code and reason of a
// websocket.CloseError the error wraps) and the policy decides, with
// Disconnect.Err wrapping the error. An error that wraps a
// websocket.CloseError is classified by that code (a
// websocket.CloseError{Code: websocket.StatusPolicyViolation} stops under
// DefaultPolicy). A connection that ends while OnConnect runs is a failed
// attempt too, unless OnConnect returns nil. It may call Reconnect (that
// connection is then dropped and another dialled at once) or Close.
// Messages of a connection OnConnect fails are dropped with it. Default:
// none.
//
// The Conn owns ws: it reads it, and closes it. Keeping ws is safe for
// calls that neither read nor close it: Subprotocol (or use
// Conn.Subprotocol), SetReadLimit, Ping, and Write (which then bypasses the
// send queue). Never call Read, Reader, CloseRead, Close or CloseNow on it,
// in OnConnect or after: use ReadOnConnect, and the Conn's Read, Reconnect
// and Close.
func WithOnConnect(fn func(ctx context.Context, ws *websocket.Conn) error) Option {
	return optionFunc(func(c *config) {
		if fn == nil {
			c.fail("WithOnConnect: nil function")
		}
		c.onConnect = fn
	})
}

// onConnectKey marks the ctx OnConnect runs with: its value is the session
// being set up, which ReadOnConnect reads.
type onConnectKey struct{}

// ReadOnConnect reads the next message of the connection being set up. It
// may be called only from the OnConnect function (see WithOnConnect), with
// the ctx OnConnect was given or one derived from it: to read the server's
// answer to what OnConnect wrote (an authentication reply, a subscription
// acknowledgement). Messages OnConnect does not read are delivered to
// Conn.Read once OnConnect has returned nil, in order.
//
// It returns an error when ctx ends or the connection ends, and when ctx
// is not one OnConnect was given.
func ReadOnConnect(ctx context.Context) (websocket.MessageType, []byte, error) {
	s, _ := ctx.Value(onConnectKey{}).(*session)
	if s == nil {
		return 0, nil, errors.New("wsreconnect: ReadOnConnect called outside OnConnect")
	}
	m, ok, err := s.c.inbox.takeHeld(ctx, s.setup.ctx.Done())
	switch {
	case err != nil:
		return 0, nil, fmt.Errorf("wsreconnect: ReadOnConnect: %w", err)
	case !ok:
		return 0, nil, s.endedErr()
	}
	return m.typ, m.data, nil
}

// WithOnDisconnect sets a function told of each lost connection and each
// failed attempt, with the decision taken (Disconnect.Reconnect and
// Disconnect.Delay). It runs on the Conn's supervisor goroutine: while it
// runs, no reconnect happens, so keep it short. It may call Close,
// CloseNow or Reconnect. It is not called once Close or CloseNow has been
// called, so not for the connection they ended. Default: none.
func WithOnDisconnect(fn func(Disconnect)) Option {
	return optionFunc(func(c *config) {
		if fn == nil {
			c.fail("WithOnDisconnect: nil function")
		}
		c.onDisconnect = fn
	})
}

// WithPolicy replaces the decision taken for each Disconnect. A policy
// usually handles the cases it cares about and falls back to DefaultPolicy:
//
//	wsreconnect.WithPolicy(func(d wsreconnect.Disconnect) wsreconnect.Decision {
//		if d.Code == 4001 { // our server: "token expired"
//			return wsreconnect.Stop
//		}
//		return wsreconnect.DefaultPolicy(d)
//	})
//
// Default: DefaultPolicy.
func WithPolicy(p Policy) Option {
	return optionFunc(func(c *config) {
		if p == nil {
			c.fail("WithPolicy: nil policy")
		}
		c.policy = p
	})
}

// WithInitialDelay sets the base of the standard schedule: the first retry
// waits a random time in [0, d), the next in [d, 2d), then [2d, 4d), and so
// on up to the max delay. Default 1 s (DefaultInitialDelay); valid range
// 1 ms to the max delay.
func WithInitialDelay(d time.Duration) Option {
	return optionFunc(func(c *config) { c.initialDelay, c.setInitial = d, true })
}

// WithMaxDelay caps the delay actually slept before a retry, jitter
// included, on both schedules: the overload schedule's windows stop at
// [max/2, max), but never go below its 1 s floor (with a max delay under
// 1 s, every overload retry waits 1 s). Only a Retry-After hint may exceed
// it, up to WithMaxRetryAfter. Default 30 s (DefaultMaxDelay); valid range
// 1 ms to 24 h, and at least the initial delay (below the default initial
// delay, it lowers that too).
func WithMaxDelay(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxDelay, c.setMax = d, true })
}

// WithStableUptime sets how long a connection must stay up before its end
// resets the schedules and the attempt count. A connection that ends sooner
// counts as one more failed attempt, so a server that accepts and drops at
// once is not hammered. Default 10 s (DefaultStableUptime); valid range
// 1 ms to 24 h.
func WithStableUptime(d time.Duration) Option {
	return optionFunc(func(c *config) { c.stableUptime = d })
}

// WithDialTimeout bounds each dial attempt, and separately each run of the
// OnConnect function: a handshake that never completes is a failed attempt.
// Default 10 s (DefaultDialTimeout); valid range 1 ms to 24 h.
func WithDialTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.dialTimeout = d })
}

// WithMaxRetryAfter bounds how long a server's Retry-After header can make
// the client wait. On 429 and 503 (and any handshake status the policy
// retries) Retry-After says when to come back: it replaces the schedules'
// delay, plus up to a tenth of spread, never sooner (and, on an overload
// status, never under 1 s); larger values never make the client wait longer
// than this, negative or malformed ones are ignored. 0 ignores Retry-After.
// Default 5 min (DefaultMaxRetryAfter); valid range 0 to 24 h.
func WithMaxRetryAfter(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxRetryAfter = d })
}

// WithBackOff replaces the standard schedule with one from backoff/v4. The
// function is called once per Conn (a backoff.BackOff is not safe for
// concurrent use). Every retry asks it for the next delay, whatever the
// decision (an overload retry then waits at least the overload schedule's
// delay), so its backoff.Stop counts every consecutive failure:
//
//	wsreconnect.WithBackOff(func() backoff.BackOff {
//		return backoff.WithMaxRetries(wsreconnect.NewBackOff(time.Second, 30*time.Second), 10)
//	})
//
// gives up after ten consecutive failures of any kind. The delays it
// returns are capped by the max delay. The schedule is Reset after a
// stable connection. Beware backoff.NewExponentialBackOff's MaxElapsedTime
// of 15 minutes: after it, the client stops for good. Default: NewBackOff
// with the initial and max delays.
func WithBackOff(newBackOff func() backoff.BackOff) Option {
	return optionFunc(func(c *config) {
		if newBackOff == nil {
			c.fail("WithBackOff: nil function")
		}
		c.newBackOff = newBackOff
	})
}

// WithHeartbeat sets the dead-peer detection: when nothing has arrived for
// interval, the Conn sends a ping; if nothing at all arrives within
// timeout (the pong, a message, any frame), the connection is closed at
// once and reported as code 1006 with Err wrapping ErrHeartbeatTimeout. A
// dead peer is found within interval + timeout of its last sign of life.
//
// Neither a slow application nor a busy link is a dead peer. While
// messages wait for Read, the connection is not read and the heartbeat
// waits. While the Conn writes, a peer that is still reading what it was
// sent is alive even if a ping cannot reach it in time: with the heartbeat
// on, messages over 64 KiB go out in 64 KiB fragments, with a ping among
// the data written every (interval + timeout) × 32 KiB/s (960 KiB for the
// defaults; at least 64 KiB, at most 4 MiB), and each pong proves the peer
// has read that far, during the Write and after it, while the kernel's
// buffers drain. So a peer that reads what it is sent at 32 KiB/s or more
// is alive, however long the upload.
//
// An interval of 0 disables the heartbeat (and the fragments); a timeout
// above 0 is then Probe's (between 10 ms and 24 h; 10 s otherwise).
// Otherwise interval and timeout must be between 10 ms and 24 h. Default 20 s and
// 10 s: below the common 30 to 60 s idle limits of NATs and load balancers.
//
// In the browser (GOOS=js), a page cannot send protocol pings
// (coder/websocket's Ping does nothing there), so the heartbeat is off
// unless WithPingFunc gives it an application-level ping.
func WithHeartbeat(interval, timeout time.Duration) Option {
	return optionFunc(func(c *config) {
		c.hbInterval = interval
		c.hbTimeout = timeout
	})
}

// WithPingFunc makes the heartbeat call fn instead of sending a protocol
// ping: for servers that expect an application-level ping message (Phoenix,
// Discord-style gateways, many exchanges, Cloudflare Durable Objects'
// auto-response), and in the browser, where a page cannot send protocol
// pings. fn usually writes one message:
//
//	wsreconnect.WithPingFunc(func(ctx context.Context, ws *websocket.Conn) error {
//		return ws.Write(ctx, websocket.MessageText, []byte(`{"op":"ping"}`))
//	})
//
// The heartbeat's timeout runs from the moment fn is called, and fn's ctx
// ends with it. Once fn has returned nil, anything that arrives before the
// timeout is the answer; silence, or an error from fn, is a dead peer as
// with a protocol ping (Code 1006, ErrHeartbeatTimeout). The library does
// not know the protocol: the server's answers (a {"op":"pong"}, say) are
// delivered to Read like any other message. Everything else the heartbeat
// does holds (see WithHeartbeat); while the Conn writes a long message, it
// still places protocol pings among its fragments, since no message can
// pass between them, except in the browser. fn runs on a goroutine of the
// heartbeat, at most once per interval. A nil fn is an invalid option.
// Default: none (protocol pings).
func WithPingFunc(fn func(ctx context.Context, ws *websocket.Conn) error) Option {
	return optionFunc(func(c *config) {
		if fn == nil {
			c.fail("WithPingFunc: nil function")
		}
		c.pingFunc = fn
	})
}

// WithLogger sets the logger for connects and disconnects, through
// log/slog:
//
//   - "wsreconnect: connected", at Info, with attempt (the number of the
//     dial that made the connection, counted since Dial or since the last
//     stable connection ended: 1 for the first; Stats.Attempt says the same
//     while the connection is up), downtime (how long the Conn was without
//     a connection) and subprotocol;
//   - "wsreconnect: disconnected", with code, reason, http_status,
//     retry_after, uptime (of the connection that ended; 0 for a failed
//     attempt), attempt (Disconnect.Attempt), decision (stop, retry,
//     retry_overload), delay and
//     err: at Warn for a retry the schedules expect, at Info for a reconnect
//     the application asked for, at Error when the Conn stops;
//   - "wsreconnect: offline: waiting for the network", at Info, in the
//     browser, when the Conn holds its next dial until the page's online
//     event (see Conn.Probe).
//
// The logs never contain the credentials or the query of the dial URL.
// Default: silent.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			c.fail("WithLogger: nil logger")
		}
		c.logger = l
	})
}

// WithSendQueue lets Write return at once while the Conn is reconnecting:
// up to n messages (copied) wait in a queue and are written in order on the
// next connection, after OnConnect and before any other Write. With a
// queue, a nil error from Write means "written to a live connection, or
// queued"; when the queue is full, Write returns ErrSendQueueFull and
// nothing is dropped silently. Close and CloseNow return an *UnsentError
// saying how many queued messages were never sent. A message whose write
// fails while the queue is flushed stays at its head and is written again
// on the connection after (it may reach the server twice). Default 0 (no
// queue: Write waits for a connection); valid range 0 to 1,048,576.
func WithSendQueue(n int) Option {
	return optionFunc(func(c *config) { c.sendQueue = n })
}

// A Limiter bounds how often something may happen; Wait blocks until it
// may, or returns an error (for example when ctx ends first).
// golang.org/x/time/rate's *Limiter satisfies it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// WithDialLimiter makes every dial attempt wait on l first. One limiter
// shared by all the Conns of a process bounds the process's total dial
// rate, so that thousands of Conns dropped together by a network blip
// redial at a pace the servers can take (each Conn still spreads its own
// retries on its schedules):
//
//	limit := rate.NewLimiter(100, 10) // golang.org/x/time/rate: 100 dials/s, bursts of 10
//	c, err := wsreconnect.Dial(ctx, dial, wsreconnect.WithDialLimiter(limit))
//
// The wait is part of the attempt: Close ends it (its ctx ends then, and
// never sooner: the dial timeout starts after it), a Reconnect during it
// does not start another attempt, and an error from Wait is reported as a
// failed dial (Code 0, Err wrapping it) and retried on the standard
// schedule. Default: none. A nil Limiter is an invalid option.
func WithDialLimiter(l Limiter) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			c.fail("WithDialLimiter: nil Limiter")
		}
		c.limiter = l
	})
}
