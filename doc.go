// Package wsreconnect keeps a WebSocket connection up. It wraps the dial call
// an application already makes with github.com/coder/websocket, classifies
// every way a connection ends (close code, handshake status, network error,
// dead peer), and from that decides whether to redial and how long to wait
// first. Read and Write keep working across reconnects.
//
// Start with [Dial], which returns a [*Conn] once the first connection is
// up. [WithOnConnect] authenticates and resubscribes on every connection,
// [WithOnDisconnect] reports every loss and the decision taken, and
// [WithPolicy] changes the decisions.
//
// # Quick start
//
// Wrap the existing websocket.Dial call in a [DialFunc]: the same URL and
// options, called once per attempt with a context bounded by the dial
// timeout.
//
//	c, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
//		return websocket.Dial(ctx, "wss://example.com/feed", nil)
//	})
//	if err != nil {
//		return err // ctx ended, or a failure no retry can cure (a 401, a 1008)
//	}
//	defer c.CloseNow()
//	for {
//		_, msg, err := c.Read(ctx)
//		if err != nil {
//			return err // the policy stopped (a *StopError), or ErrClosed
//		}
//		handle(msg)
//	}
//
// The DialFunc must return websocket.Dial's *http.Response on a failed
// handshake: the status and its Retry-After header drive the decision.
// Dial's ctx bounds only the first connection, as with websocket.Dial:
// Dial retries transient failures until ctx ends; later reconnects go on
// until Close or the policy stops.
//
// # Close codes and decisions
//
// Each lost connection and each failed attempt becomes one [Disconnect], and
// the [Policy] turns it into a [Decision]: [Stop], [Retry] on the standard
// schedule, or [RetryOverload] on the overload schedule. [DefaultPolicy]
// follows RFC 6455 §7.4 and the IANA registry:
//
//	established connection ended without a close frame (1006)    Retry
//	failed dial: network error, timeout (Code 0)                  Retry
//	heartbeat timeout (1006, ErrHeartbeatTimeout)                 Retry
//	1001 going away, 1011, 1012 service restart, 1014             Retry
//	1013 try again later                                          RetryOverload
//	handshake 429, 503                                            RetryOverload
//	handshake 408, 500, 502, 504, other 5xx                       Retry
//	1000 normal, 1005 no status (the server ended on purpose)     Stop
//	1002, 1003, 1007, 1008, 1009, 1010, 1015                      Stop
//	handshake 4xx other than 408 and 429, 1xx-3xx other than 101  Stop
//	TLS certificate errors, malformed URL                         Stop
//	3000-4999 (application codes)                                 Retry
//	other codes                                                   Retry
//	the caller's Close or CloseNow (ErrClosed)                    Stop
//
// coder/websocket never reports 1006 itself: an established connection that
// ends with EOF, a reset or a broken pipe is reported here as Code 1006, and
// a failed dial as Code 0 with HTTPStatus set when the server answered.
//
// Application codes are retried by default because the library cannot know
// what they mean. Give them meaning with a policy that handles its own codes
// and falls back to DefaultPolicy:
//
//	wsreconnect.WithPolicy(func(d wsreconnect.Disconnect) wsreconnect.Decision {
//		switch d.Code {
//		case 4001: // our server: token expired
//			return wsreconnect.Stop
//		case 4029: // our server: rate limited
//			return wsreconnect.RetryOverload
//		}
//		return wsreconnect.DefaultPolicy(d)
//	})
//
// When the policy stops, Read and Write return a [*StopError] that holds the
// Disconnect; it unwraps to Disconnect.Err, so websocket.CloseStatus(err)
// reports the close code. An error from OnConnect that wraps a
// websocket.CloseError is classified by that code.
//
// # Schedules
//
// The standard schedule ([NewBackOff]) draws each delay uniformly from a
// window that doubles: [0, d) for the first retry, where d is the initial
// delay ([WithInitialDelay], default 1 s), then [d, 2d), [2d, 4d), … until
// the window reaches the max delay ([WithMaxDelay], default 30 s), where it
// stays [max/2, max). The first window spreads clients dropped together
// uniformly (RFC 6455 §7.2.3); the later windows never overlap, so delays
// only grow until they reach the max. The max delay bounds the delay
// actually slept, jitter included, and attempts are unlimited: a Conn never
// gives up on its own. (Each window is half "equal jitter", not full jitter
// over [0, d): against a server that refuses at capacity, full jitter took
// 7 to 10 attempts where these windows take 4 to 7; see BENCHMARKS.md.)
//
// The schedules and Disconnect.Attempt reset only when a connection has
// stayed up for the stable uptime ([WithStableUptime], default 10 s), never
// on a bare connect: against a server that accepts and drops at once, Attempt
// counts 1, 2, 3, … and the delays keep growing.
//
// The overload schedule ([NewOverloadBackOff]), for 1013 and handshake 429
// and 503, waits at least 1 s and doubles that floor on each consecutive
// overload: [m, 4m), then [2m, 8m), [4m, 16m), … with m = max(1 s, initial
// delay), up to [max/2, max) (but never under 1 s). The windows overlap so
// that a server refusing clients at its capacity is not left idle between
// waves of retries.
//
// A Retry-After header on a failed handshake (delta-seconds or an HTTP date)
// is a floor on the delay, for every handshake status the policy retries:
// the client waits at least that long, plus up to a tenth more so that
// clients refused together do not return together, even beyond the max
// delay. The hint is clamped to [WithMaxRetryAfter] (default 5 min; 0
// ignores Retry-After); a malformed, negative or past value is ignored.
//
// Each dial attempt, and separately each run of OnConnect, is bounded by
// [WithDialTimeout] (default 10 s). [WithBackOff] replaces the standard
// schedule with any backoff/v4 BackOff.
//
// # Heartbeat
//
// Without traffic, a dead peer (a vanished NAT mapping, a crashed host) can
// go unnoticed for many minutes. When nothing has arrived for the heartbeat
// interval, the Conn sends a ping; if neither the pong nor any other frame
// arrives within the timeout, it closes the connection at once and reports
// Code 1006 with Err wrapping [ErrHeartbeatTimeout], which DefaultPolicy
// retries. The defaults, 20 s and 10 s, stay below the 30 to 60 s idle
// limits common in NATs and load balancers. Set them with [WithHeartbeat];
// WithHeartbeat(0, 0) disables the heartbeat.
//
// Any data arriving, and the pong to the Conn's own ping, counts as life, so
// a busy connection is never pinged. (Pings and pongs the peer sends on its
// own are answered by coder/websocket but invisible to the Conn: they reach
// only websocket.DialOptions' OnPingReceived and OnPongReceived.)
// A slow application is not a dead peer: the Conn reads ahead a few
// messages, and while they wait for Read the connection is not read, so a
// pong could not be seen; the heartbeat then waits instead of declaring the
// peer dead. Call Read for as long as the server may send data.
//
// The peer answers pings from its read loop: a server that never reads (for
// example a coder/websocket handler that only writes and never calls Read or
// CloseRead) and sends nothing for a whole interval looks dead.
//
// # Writes while reconnecting
//
// [Conn.Write] while the Conn is reconnecting waits for the next connection,
// bounded by its ctx. It returns nil only when the whole message was written
// to a live connection; otherwise an error, and the message may or may not
// have reached the peer. Nothing is dropped silently, but nothing is
// replayed either: a message written just before a connection dropped may be
// lost with it. Delivery beyond one connection needs acknowledgements from
// the application's protocol; OnConnect is the place to resend what was not
// acknowledged.
//
// ctx is passed to websocket.Conn.Write: if it ends in the middle of a
// message, coder/websocket closes that connection (half a frame cannot be
// taken back) and the Conn reconnects. Give Write a deadline for the whole
// wait, not a tight per-frame one.
//
// With [WithSendQueue](n), Write returns at once while reconnecting: up to
// n messages are copied into a queue and written in order on the next
// connection, after OnConnect and before any other Write. A full queue makes
// Write return [ErrSendQueueFull]; Close returns an [UnsentError] counting
// the queued messages that were never sent.
//
// [Conn.Read] returns whole messages, in order, never duplicated by the
// Conn, across reconnects. Its ctx bounds that call only and never costs the
// connection.
//
// # Closing
//
// [Conn.Close] closes the current connection with a close handshake carrying
// its code and reason (coder/websocket waits up to 5 s for the write and 5 s
// for the peer's answer); [Conn.CloseNow] closes it at once. Both stop
// reconnecting, return promptly during a backoff wait or a hanging
// handshake, are idempotent, and return only once every goroutine of the
// Conn has ended. Calls blocked in Read or Write return [ErrClosed]; Read
// returns ErrClosed after Close even when messages were still buffered.
//
// OnConnect and OnDisconnect run on the Conn's one supervisor goroutine, so
// they never run concurrently with each other. None is called after Close
// or CloseNow has returned, and OnDisconnect is not called for the
// connection that Close ended. Either callback may call Close or CloseNow;
// from there, Close does not wait, and the Conn ends when the callback
// returns.
//
// A Conn runs one goroutine for its lifetime, the supervisor, which is also
// the reader of the live connection: an idle connection costs the same one
// goroutine a plain coder/websocket client needs for its reader. Each dial
// runs on a short-lived goroutine the supervisor waits for; the heartbeat is
// a timer, with a goroutine only while a ping waits for its pong. A Write
// from inside a callback waits for a connection the busy supervisor cannot
// make: use the *websocket.Conn that OnConnect receives instead.
// When the policy stops, the Conn has
// already ended them all; calling CloseNow afterwards is harmless, so
// defer c.CloseNow() is always right.
//
// # Observability
//
// [WithLogger] logs each connect and disconnect through log/slog, with the
// attributes code, reason, http_status, attempt, decision, delay and err;
// the default logger is silent. [Conn.Stats] returns a snapshot of the
// counters (connects, disconnects by decision, the current attempt, the
// last Disconnect, the current connection's uptime, the queued messages),
// safe for concurrent use; it marshals to JSON as is, so publishing it is
// one line with expvar:
//
//	expvar.Publish("feed", expvar.Func(func() any { return c.Stats() }))
//
// Errors and log lines the Conn produces never contain the credentials or
// the query of the dial URL (net/http puts the URL in its errors). The Conn
// does not touch TLS settings or the read limit: they stay as the DialFunc
// set them.
//
// # Testing your own client
//
// Tests of code built on wsreconnect can run a server with httptest and
// websocket.Accept, record decisions with WithOnDisconnect, and keep
// schedules short with WithInitialDelay and WithMaxDelay. To check that
// nothing leaks, use go.uber.org/goleak, and close everything first:
//
//   - Close or CloseNow every Conn.
//   - net/http (Go 1.23 and later) may keep a dial running in the background
//     after its context ends, and keeps idle connections after refused
//     handshakes. Pass your own http.Client in websocket.DialOptions and call
//     its Transport's CloseIdleConnections after closing the Conn (the client
//     from httptest.Server.Client is closed by the server's Close).
//   - httptest.Server.Close does not wait for handlers of hijacked (WebSocket)
//     connections; wait for your handlers yourself.
//
// The package's own examples follow these rules and run under goleak.
package wsreconnect
