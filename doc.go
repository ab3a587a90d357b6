// Package wsreconnect keeps a WebSocket client connection up. It wraps the
// websocket.Dial call an application already makes with
// github.com/coder/websocket, classifies every way a connection ends (close
// code, handshake status, network error, dead peer), and from that decides
// whether to redial and how long to wait first. Read and Write keep working
// across reconnects.
//
// # Start here
//
// Wrap the existing websocket.Dial call in a [DialFunc] and pass it to
// [Dial], which returns a [*Conn] once the first connection is up:
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
// The DialFunc is called once per attempt, with a ctx that ends after the
// dial timeout or on Close; on a failed handshake it must return
// websocket.Dial's *http.Response, whose status and Retry-After drive the
// decision. Dial's own ctx bounds only the first connection.
//
// Messages over 32 KiB: coder/websocket's default read limit is 32 KiB, and
// a bigger message ends the connection with 1009, which stops the Conn. Raise
// the limit in the DialFunc or in [WithOnConnect] with ws.SetReadLimit.
//
// # When a connection ends
//
// Each lost connection and failed attempt becomes one [Disconnect], and a
// [Policy] decides: [Stop], [Retry] on the standard schedule ([NewBackOff]),
// or [RetryOverload] on the overload schedule ([NewOverloadBackOff]).
// [DefaultPolicy] (its table is on it) follows RFC 6455 and the IANA
// registry: a dropped connection (1006), 1001, 1005, 1011, 1012 and 1014 are
// retried; 1013, 429 and 503 wait longer; 1000, 1008, a 401, a bad
// certificate stop. [WithPolicy] gives your own close codes their meaning.
// When the policy stops, Read and Write return a [*StopError];
// websocket.CloseStatus(err) reports its close code.
//
// The schedules reset only after a connection stayed up for
// [WithStableUptime], never on a bare connect, and a Retry-After header is
// a floor on the delay. [WithOnConnect] authenticates and resubscribes on
// every connection; [WithOnDisconnect] is told of every end and decision.
//
// # Dead peers
//
// A heartbeat ([WithHeartbeat], on by default: 20 s, 10 s) pings when
// nothing has arrived for a while and drops the connection when nothing
// answers; a slow application or a busy upload is not taken for a dead
// peer.
//
// # Reading, writing, closing
//
// [Conn.Read] returns whole messages, in order, never duplicated, including
// those a dropped connection had received, while the Conn reconnects.
// [Conn.Write] waits for the next connection while reconnecting, bounded by
// its ctx; [WithSendQueue] makes it queue instead. Nothing is replayed:
// delivery across connections needs acknowledgements in your protocol.
//
// [Conn.Close] and [Conn.CloseNow] stop everything and return once the
// Conn's goroutines have ended; [Conn.Done] and [Conn.Err] tell when and
// why a Conn ended. Callbacks may call Close; Close never waits for your
// own code.
//
// # Observing
//
// [WithLogger] logs connects and disconnects through log/slog;
// [Conn.Stats] is a snapshot that marshals to JSON for expvar. Errors and
// logs never contain the credentials or the query of the dial URL.
//
// # Testing your own client
//
// Run a server with httptest and websocket.Accept, keep schedules short
// with WithInitialDelay and WithMaxDelay, and check for leaks with
// go.uber.org/goleak after closing everything: every Conn (or wait for
// Done), your own http.Client's idle connections (net/http may keep a dial
// running after its ctx ends), and your server's WebSocket handlers
// (httptest.Server.Close does not wait for hijacked connections).
package wsreconnect
