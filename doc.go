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
// decision. coder/websocket reads at most 32 KiB per message by default: a
// bigger one ends the connection with 1009, which stops the Conn; raise it
// with ws.SetReadLimit in the DialFunc or in [WithOnConnect].
//
// # When a connection ends
//
// Each lost connection and failed attempt becomes one [Disconnect], and a
// [Policy] ([DefaultPolicy], with its table) decides: [Stop], [Retry] on the
// standard schedule ([NewBackOff]), or [RetryOverload] on the overload
// schedule ([NewOverloadBackOff]). Drops and restarts are retried, 1013,
// 429 and 503 wait longer (and never less than Retry-After says), 1000,
// 1008, a 401 or a bad certificate stop; [WithPolicy] gives your own codes
// their meaning. The schedules reset only after [WithStableUptime].
// [WithOnConnect] resubscribes on every connection, [WithOnDisconnect] is
// told of every end, and [Conn.Reconnect] drops the connection and dials
// again at once. [WithDialLimiter] bounds the dial rate of many Conns.
//
// A heartbeat ([WithHeartbeat], [WithPingFunc] for application-level
// pings) finds dead peers; a slow application, a busy upload or a large
// message arriving slowly is not one.
//
// # Behind a proxy
//
// net/http's proxy support tunnels wss:// only: it sends a ws:// handshake
// to the proxy as a plain request, which loses its Upgrade header. Give
// websocket.Dial an http.Client on a [ProxyTransport]: it tunnels both
// through HTTP, HTTPS and SOCKS5 proxies, reads the environment's proxy
// settings at every attempt, and reports the proxy's refusals as a
// [*ProxyError] that names the proxy (never its credentials): a 407 or a
// 403 stops, a proxy that is down is retried.
//
// # Reading, writing, closing
//
// [Conn.Read] returns whole messages, in order, including those a dropped
// connection received, while the Conn reconnects. [Conn.Write] waits for
// the next connection, bounded by its ctx ([WithSendQueue] queues instead).
// Nothing is replayed: delivery across connections needs acknowledgements
// in your protocol. Package wsjson reads and writes JSON messages.
//
// [Conn.Close] and [Conn.CloseNow] end everything; [Conn.Done] and
// [Conn.Err] tell when and why a Conn ended. Callbacks may call Close, and
// Close never waits for your own code. [WithLogger] and [Conn.Stats] tell
// what happened; errors and logs never contain the dial URL's credentials.
//
// In the browser (GOOS=js GOARCH=wasm) it runs over the browser's
// WebSocket: there are no protocol pings (use WithPingFunc) and no HTTP
// status on a failed handshake.
//
// # Testing your own client
//
// Run a server with httptest and websocket.Accept, keep schedules short
// with WithInitialDelay and WithMaxDelay, and check for leaks with
// go.uber.org/goleak after closing every Conn (or waiting for Done), your
// http.Client's idle connections, and your server's WebSocket handlers
// (httptest.Server.Close does not wait for hijacked connections).
package wsreconnect
