// Package report is what the browser program (../wasm, built for js/wasm)
// hands to the host tests: one Result per scenario, as JSON in the page's
// globalThis.__wsResult. Both sides import it, so the two agree on the
// format. Times are milliseconds on the page's clock (performance.now()),
// from the start of the scenario.
package report

// Result is what one scenario saw.
type Result struct {
	Scenario string `json:"scenario"`
	// ID is the id the scenario put in its WebSocket URLs (?id=); the host
	// server files what it saw under it.
	ID string `json:"id"`
	// Failures are things the program could not do (a Dial that failed, a
	// call that did not return): the host fails the test on any.
	Failures []string `json:"failures,omitempty"`
	// Steps is the scenario's own timeline, for the log.
	Steps []Step `json:"steps,omitempty"`
	// Connects are the times OnConnect ran, one per connection.
	Connects []float64 `json:"connects,omitempty"`
	// Disconnects are what OnDisconnect was told, in order.
	Disconnects []Disconnect `json:"disconnects,omitempty"`
	// Browser is what the browser's WebSocket objects reported: the events
	// open, error and close, and the calls of close() the Go code made.
	Browser []BrowserEvent `json:"browser,omitempty"`
	// Network is what the page's window and document reported about the
	// network and the page's visibility: the online, offline and
	// visibilitychange events (see the host's index.html).
	Network []NetworkEvent `json:"network,omitempty"`
	// Log is what the Conn logged (WithLogger), in the scenarios that
	// give it a logger.
	Log []Step `json:"log,omitempty"`
	// Ms holds measured durations by name ("Close", "CloseNow", …).
	Ms map[string]float64 `json:"ms,omitempty"`
	// Values holds other facts by name ("readErr", "closeStatus", …).
	Values map[string]string `json:"values,omitempty"`
	// GoroutinesBefore counts the program's goroutines before Dial;
	// GoroutinesAfter, once the Conn had ended and the scenario's own
	// goroutines had returned. Both leave out the goroutine of a
	// JavaScript event waiting to return to the browser
	// (runtime.handleEvent), which runtime.NumGoroutine counts while the
	// program runs inside an event. GoroutineDump holds the stacks when
	// they differ.
	GoroutinesBefore int    `json:"goroutinesBefore"`
	GoroutinesAfter  int    `json:"goroutinesAfter"`
	GoroutineDump    string `json:"goroutineDump,omitempty"`
}

// Step is one line of a scenario's timeline.
type Step struct {
	T    float64 `json:"t"`
	What string  `json:"what"`
}

// Disconnect is a wsreconnect.Disconnect as the browser program saw it.
type Disconnect struct {
	T                  float64 `json:"t"`
	Code               int     `json:"code"`
	Reason             string  `json:"reason,omitempty"`
	HTTPStatus         int     `json:"httpStatus,omitempty"`
	Err                string  `json:"err,omitempty"`
	Attempt            int     `json:"attempt"`
	Decision           string  `json:"decision"`
	Reconnect          bool    `json:"reconnect"`
	DelayMs            float64 `json:"delayMs"`
	UptimeMs           float64 `json:"uptimeMs"`
	HeartbeatTimeout   bool    `json:"heartbeatTimeout,omitempty"`   // errors.Is(Err, ErrHeartbeatTimeout)
	ReconnectRequested bool    `json:"reconnectRequested,omitempty"` // errors.Is(Err, ErrReconnectRequested)
}

// BrowserEvent is one event of a browser WebSocket object, recorded by the
// page's wrapper of the WebSocket constructor (see the host's index.html).
// Socket numbers the WebSocket objects the page created, from 1.
type BrowserEvent struct {
	T        float64 `json:"t"`
	Socket   int     `json:"socket"`
	Type     string  `json:"type"` // "open", "error", "close", or "close()" for a call
	Code     int     `json:"code,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	WasClean bool    `json:"wasClean,omitempty"`
	Thrown   string  `json:"thrown,omitempty"` // what close() threw, if it did
}

// NetworkEvent is one online, offline or visibilitychange event of the
// page, with what navigator.onLine and document.visibilityState said then.
type NetworkEvent struct {
	T          float64 `json:"t"`
	Type       string  `json:"type"` // "online", "offline", "visibilitychange"
	OnLine     bool    `json:"onLine"`
	Visibility string  `json:"visibility"` // "visible", "hidden"
}

// The scenarios the browser program knows, by name.
const (
	Drop             = "drop"              // a dropped connection: 1006, reconnect, echo again
	Overload         = "overload"          // 1013 twice: overload retries ≥ 1 s apart, then connected
	Policy           = "policy"            // 1008: a *StopError, no further attempt
	Close            = "close"             // Close(1000, "bye") reaches the server
	CloseNow         = "closenow"          // CloseNow returns at once, a blocked Read with it
	CloseSilent      = "close-silent"      // Close against a server that never answers the close
	CloseNowInClose  = "closenow-in-close" // CloseNow cuts short a Close against a silent server
	CloseRefused     = "close-refused"     // Close with a code the browser refuses (1001): 1000 instead, and an error
	Reconnect        = "reconnect"         // Reconnect: 1000 "reconnecting", a new connection
	HeartbeatHealthy = "heartbeat-healthy" // the app-level heartbeat keeps a live connection
	HeartbeatDead    = "heartbeat-dead"    // the app-level heartbeat finds a silent server dead
	Handshake503     = "handshake-503"     // a 503 handshake refusal, as the page sees it
	DialTimeout      = "dial-timeout"      // a handshake that does not complete in the dial timeout

	// The network scenarios ask the host to take the page's network away
	// and give it back, and to hide and show the page (see HostCall).
	OfflineStall  = "offline-stall"  // offline without a ping func: the browser keeps the socket, and holds its traffic
	OfflineProbe  = "offline-probe"  // offline with a ping func: probed at once, found dead; no attempt while offline; Close
	OfflineClose  = "offline-close"  // Close on a connection whose network is gone: its close frame is held, so the 5 s grace
	OfflineDial   = "offline-dial"   // Dial while offline waits for the network, and dials once it is back
	OnlineBackoff = "online-backoff" // online cuts a 30 s backoff wait short
	Visible       = "visible"        // a page made visible again probes its connection at once
)

// HostCall is what the browser program asks the host to do to its page,
// through the function the host exposes as globalThis.__host: Action is
// one of the Host* actions, ID the scenario's.
type HostCall struct {
	Action string `json:"action"`
	ID     string `json:"id"`
}

// The host's actions: take the page's network away (DevTools'
// Network.emulateNetworkConditionsByRule, then Network.overrideNetworkState,
// which flips navigator.onLine and fires offline), give it back (online),
// minimize the page's window (the page becomes hidden) and restore it
// (visible again).
const (
	HostOffline = "offline"
	HostOnline  = "online"
	HostHide    = "hide"
	HostShow    = "show"
)

// Ping and Pong are the application-level heartbeat messages of the
// scenarios' server.
const (
	Ping = `{"op":"ping"}`
	Pong = `{"op":"pong"}`
)

// The heartbeat of the heartbeat scenarios (WithHeartbeat), in
// milliseconds: short, to keep the tests short, with room for a busy
// machine.
const (
	HeartbeatIntervalMs = 200
	HeartbeatTimeoutMs  = 500
)

// The network scenarios: a probe's timeout (WithHeartbeat's timeout, with
// an interval long enough that the heartbeat sends no ping of its own
// while they run), how long OfflineProbe stays offline once its
// connection has ended, and the backoff delay OnlineBackoff's schedule
// would wait.
const (
	ProbeTimeoutMs  = 1000
	ProbeIntervalMs = 60000
	OfflineHoldMs   = 3000
	BackoffDelayMs  = 30000
)
