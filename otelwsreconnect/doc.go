// Package otelwsreconnect records OpenTelemetry metrics of wsreconnect
// Conns: how long connections last and why they end, dial attempts, outages,
// how many clients are connected, heartbeat round trips and the send queue.
// It is a module of its own, so that the wsreconnect module keeps its two
// dependencies.
//
// # Start here
//
// Give each Conn a Trace from [NewTrace]:
//
//	tr, err := otelwsreconnect.NewTrace(
//		otelwsreconnect.WithAttributes(semconv.ServerAddress("feed.example.com")))
//	if err != nil {
//		return err
//	}
//	c, err := wsreconnect.Dial(ctx, dial, wsreconnect.WithTrace(tr))
//
// The metrics go to the global MeterProvider unless [WithMeterProvider]
// names another. A Trace observes one Conn (it counts that Conn's state and
// queue): call NewTrace for every Conn. A Trace given to several Conns is
// found at the first event it sees after one of them has closed: it
// reports that to otel.Handle and records nothing more.
//
// # Metrics
//
// OpenTelemetry has no conventions for WebSocket clients yet
// (open-telemetry/semantic-conventions#2841); these follow the style of
// its HTTP client metrics. Names in Prometheus form (the exporter's
// default) in brackets. Every measurement also carries the attributes of
// [WithAttributes].
//
//	name                                   instrument     unit          attributes
//	websocket.client.connection.duration   Histogram      s             websocket.close.code_class, websocket.client.decision
//	  [websocket_client_connection_duration_seconds]
//	  How long each connection was up, from its handshake to its end,
//	  recorded when it ends with a Disconnect. A connection that Close or
//	  CloseNow ends is not recorded (the Conn reports no Disconnect for it).
//	websocket.client.dial.attempts         Counter        {attempt}     websocket.client.dial.outcome, http.response.status_code (refused only)
//	  [websocket_client_dial_attempts_total]
//	  Dial attempts that returned.
//	websocket.client.dial.duration         Histogram      s             websocket.client.dial.outcome
//	  [websocket_client_dial_duration_seconds]
//	  How long each dial attempt took, handshake included.
//	websocket.client.outage.duration       Histogram      s             -
//	  [websocket_client_outage_duration_seconds]
//	  From the loss of a connection to the next one up, recorded when it is
//	  up; not the wait for the first connection.
//	websocket.client.connection.count      UpDownCounter  {connection}  websocket.client.connection.state
//	  [websocket_client_connection_count]
//	  Conns by state, from their first dial until they close.
//	websocket.client.ping.duration         Histogram      s             -
//	  [websocket_client_ping_duration_seconds]
//	  The heartbeat's round trips: a protocol ping to its pong (not the
//	  pings of WithPingFunc, whose answers the Conn does not see).
//	websocket.client.send_queue.length     UpDownCounter  {message}     -
//	  [websocket_client_send_queue_length]
//	  Messages waiting in the send queues (WithSendQueue).
//	websocket.client.send_queue.dropped    Counter        {message}     websocket.client.send_queue.drop_reason
//	  [websocket_client_send_queue_dropped_total]
//	  Messages the send queue did not send.
//
// The UpDownCounters add up over Conns: the sum is the fleet's, and the
// Prometheus exporter shows them as gauges.
//
// # Attributes
//
//	websocket.close.code_class         see CloseCodeClass: normal, going_away, no_status, abnormal,
//	                                   protocol, policy, error, overload, application, other
//	websocket.client.decision          the policy's decision: stop, retry, retry_overload
//	websocket.client.dial.outcome      success (the handshake completed), refused (the server
//	                                   answered with an HTTP status: http.response.status_code
//	                                   says which), timeout (the dial timeout, or a deadline or
//	                                   network timeout), error (anything else: refused TCP
//	                                   connection, DNS, TLS, a misconfiguration)
//	http.response.status_code          the status of a refused handshake (401, 429, 503): the
//	                                   raw status, since it decides what the client does and a
//	                                   server answers with few of them
//	websocket.client.connection.state  connecting (no connection serves Read and Write), connected
//	websocket.client.send_queue.drop_reason
//	                                   full (a Write refused with ErrSendQueueFull), closed (queued
//	                                   when Close was called: the UnsentError's count)
//
// A connection that OnConnect or the send queue failed on went no further
// than its dial: its dial is a success and its end is not a connection's.
// A heartbeat timeout and a dropped TCP connection are both abnormal
// (1006, the code the Conn reports for both); a Reconnect is normal (1000)
// with the decision retry.
//
// # Buckets
//
// Each histogram advises bucket boundaries (a View overrides them):
// connection durations from 0.1 s to a week (10 s, wsreconnect's default
// stable uptime, is one); dial durations from 5 ms to 30 s (a dial that
// hits the default 10 s timeout lands above 10); outages from 10 ms to a
// day; round trips from 1 ms to 10 s (the default heartbeat timeout).
//
// # Delivery
//
// The Conn delivers its events asynchronously (see wsreconnect.Trace): a
// measurement may land shortly after the event, and after Close has
// returned. The events before the Conn ended are all delivered, the
// StateChanged to closed among them (it is followed only by the send
// queue's drop, if messages waited): once the Conn's closed state is
// recorded, its metrics are final.
package otelwsreconnect
