//go:build !js

package wsreconnect_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// testServer starts a WebSocket server on 127.0.0.1 that runs serve for the
// n-th connection attempt (1, 2, …). serve may answer w itself (a refused
// handshake) or accept and return ws; stop closes the server, waits for
// every handler, and closes the idle connections of its client.
func testServer(serve func(n int, w http.ResponseWriter, r *http.Request)) (url string, client *http.Client, stop func()) {
	var (
		attempts atomic.Int64
		wg       sync.WaitGroup
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		serve(int(attempts.Add(1)), w, r)
	}))
	// srv.Client's transport is closed by srv.Close: no idle connection,
	// and no goroutine, outlives the example.
	return "ws" + strings.TrimPrefix(srv.URL, "http"), srv.Client(), func() {
		srv.Close()
		wg.Wait()
	}
}

// A Conn wraps the websocket.Dial call an application already makes: the
// same URL and options, in a function the Conn calls for each attempt.
func ExampleDial() {
	// An echo server.
	url, httpClient, stop := testServer(func(_ int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			typ, p, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			if ws.Write(r.Context(), typ, p) != nil {
				return
			}
		}
	})
	defer stop()

	ctx := context.Background()
	// Before: ws, _, err := websocket.Dial(ctx, url, opts)
	opts := &websocket.DialOptions{HTTPClient: httpClient}
	c, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, opts)
	})
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		fmt.Println("write:", err)
		return
	}
	_, p, err := c.Read(ctx)
	if err != nil {
		fmt.Println("read:", err)
		return
	}
	fmt.Printf("%s, %v\n", p, c.State())

	fmt.Println("close:", c.Close(websocket.StatusNormalClosure, "bye"))
	fmt.Println(c.State())
	// Output:
	// hello, connected
	// close: <nil>
	// closed
}

// An application classifies its own close codes (4000-4999) and leaves the
// rest to DefaultPolicy. Here the server sends 4500 "rebalancing" (worth a
// retry), then 4001 "token revoked" (not worth one).
func ExampleWithPolicy() {
	url, httpClient, stop := testServer(func(n int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		if n == 1 {
			ws.Close(4500, "rebalancing")
		} else {
			ws.Close(4001, "token revoked")
		}
	})
	defer stop()

	policy := func(d wsreconnect.Disconnect) wsreconnect.Decision {
		switch {
		case d.Code == 4001: // our server: the token is no longer valid
			return wsreconnect.Stop
		case d.Code >= 4000 && d.Code <= 4999:
			return wsreconnect.Retry
		}
		return wsreconnect.DefaultPolicy(d)
	}
	ctx := context.Background()
	c, err := wsreconnect.Dial(ctx,
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		},
		wsreconnect.WithPolicy(policy),
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			fmt.Printf("code %d %q: %v\n", d.Code, d.Reason, d.Decision)
		}),
		wsreconnect.WithInitialDelay(10*time.Millisecond),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	_, _, err = c.Read(ctx)
	var stopErr *wsreconnect.StopError
	fmt.Printf("stopped: %v, close status %d\n", errors.As(err, &stopErr), websocket.CloseStatus(err))
	// Output:
	// code 4500 "rebalancing": retry
	// code 4001 "token revoked": stop
	// stopped: true, close status 4001
}

// OnConnect runs on every new connection before Read and Write resume on
// it: the place to authenticate and subscribe again. The server here drops
// the first connection after two updates; the client resubscribes on the
// second and reads on as if nothing happened.
func ExampleWithOnConnect() {
	url, httpClient, stop := testServer(func(n int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		_, p, err := ws.Read(ctx) // "subscribe prices"
		if err != nil {
			return
		}
		topic := strings.TrimPrefix(string(p), "subscribe ")
		for i := 1; i <= 2; i++ {
			msg := fmt.Sprintf("%s update %d (connection %d)", topic, i, n)
			if ws.Write(ctx, websocket.MessageText, []byte(msg)) != nil {
				return
			}
		}
		if n == 1 {
			return // drop the connection without a close frame
		}
		// Serve until the client closes: CloseRead answers its close frame.
		<-ws.CloseRead(ctx).Done()
	})
	defer stop()

	var subscriptions atomic.Int64
	ctx := context.Background()
	c, err := wsreconnect.Dial(ctx,
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		},
		wsreconnect.WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
			subscriptions.Add(1)
			// An error here counts as a failed attempt: the connection is
			// dropped and the policy decides.
			return ws.Write(ctx, websocket.MessageText, []byte("subscribe prices"))
		}),
		wsreconnect.WithInitialDelay(10*time.Millisecond),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	for range 4 {
		_, p, err := c.Read(ctx)
		if err != nil {
			fmt.Println("read:", err)
			return
		}
		fmt.Println(string(p))
	}
	fmt.Println("subscribed", subscriptions.Load(), "times")
	// Output:
	// prices update 1 (connection 1)
	// prices update 2 (connection 1)
	// prices update 1 (connection 2)
	// prices update 2 (connection 2)
	// subscribed 2 times
}

// OnConnect can wait for the server's answer with ReadOnConnect: here the
// server expects a token first, answers "welcome" (or closes with 1008),
// then streams. OnConnect never reads ws itself: the Conn reads it, and
// hands OnConnect what arrives while it runs; what it does not read goes
// on to Read.
func ExampleReadOnConnect() {
	url, httpClient, stop := testServer(func(_ int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		if _, p, err := ws.Read(ctx); err != nil || string(p) != "token s3cret" {
			ws.Close(websocket.StatusPolicyViolation, "bad token")
			return
		}
		ws.Write(ctx, websocket.MessageText, []byte("welcome"))
		ws.Write(ctx, websocket.MessageText, []byte("price 42"))
		<-ws.CloseRead(ctx).Done()
	})
	defer stop()

	ctx := context.Background()
	c, err := wsreconnect.Dial(ctx,
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		},
		wsreconnect.WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
			if err := ws.Write(ctx, websocket.MessageText, []byte("token s3cret")); err != nil {
				return err
			}
			_, p, err := wsreconnect.ReadOnConnect(ctx)
			if err != nil {
				return err // a close frame (1008 "bad token") is classified by its code
			}
			if string(p) != "welcome" {
				return fmt.Errorf("unexpected answer %q", p)
			}
			fmt.Println("authenticated")
			return nil
		}),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()
	_, p, err := c.Read(ctx)
	if err != nil {
		fmt.Println("read:", err)
		return
	}
	fmt.Println(string(p))
	// Output:
	// authenticated
	// price 42
}

// OnDisconnect reports every lost connection and failed attempt, with the
// decision taken and, when a retry follows, the delay before it (left out
// here: it is random). This server drops the TCP connection, then answers
// the handshake with 503 and Retry-After: 1, then closes with 1012 "service
// restart", and at last with 1008 "policy violation", which stops the Conn.
func ExampleWithOnDisconnect() {
	url, httpClient, stop := testServer(func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 2 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		switch n {
		case 1:
			return // drop the connection without a close frame
		case 3:
			ws.Close(websocket.StatusServiceRestart, "service restart")
		default:
			ws.Close(websocket.StatusPolicyViolation, "policy violation")
		}
	})
	defer stop()

	ctx := context.Background()
	c, err := wsreconnect.Dial(ctx,
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		},
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			fmt.Printf("attempt %d: code %d, HTTP %d, Retry-After %v: %v\n",
				d.Attempt, d.Code, d.HTTPStatus, d.RetryAfter, d.Decision)
		}),
		wsreconnect.WithInitialDelay(10*time.Millisecond),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	_, _, err = c.Read(ctx)
	fmt.Printf("Read: close status %d\n", websocket.CloseStatus(err))
	// Output:
	// attempt 1: code 1006, HTTP 0, Retry-After 0s: retry
	// attempt 2: code 0, HTTP 503, Retry-After 1s: retry (overload)
	// attempt 3: code 1012, HTTP 0, Retry-After 0s: retry
	// attempt 4: code 1008, HTTP 0, Retry-After 0s: stop
	// Read: close status 1008
}

// Reconnect drops the connection and dials again at once: here when the
// server asks for it with a message, as Discord's gateway does with op 7.
// The dropped connection's end is reported with ErrReconnectRequested and
// no delay.
func ExampleConn_Reconnect() {
	url, httpClient, stop := testServer(func(n int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := ws.CloseRead(r.Context()) // answers the client's close frame
		if n == 1 {
			ws.Write(ctx, websocket.MessageText, []byte(`{"op":"reconnect"}`))
		} else {
			ws.Write(ctx, websocket.MessageText, []byte(`{"op":"hello"}`))
		}
		<-ctx.Done()
	})
	defer stop()

	ctx := context.Background()
	c, err := wsreconnect.Dial(ctx,
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		},
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			fmt.Printf("disconnect: code %d, requested %v, reconnect in %v\n",
				d.Code, errors.Is(d.Err, wsreconnect.ErrReconnectRequested), d.Delay)
		}),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	for range 2 {
		_, p, err := c.Read(ctx)
		if err != nil {
			fmt.Println("read:", err)
			return
		}
		fmt.Println("server:", string(p))
		if string(p) == `{"op":"reconnect"}` {
			c.Reconnect() // returns at once
		}
	}
	// Output:
	// server: {"op":"reconnect"}
	// disconnect: code 1000, requested true, reconnect in 0s
	// server: {"op":"hello"}
}

// Probe checks the connection now, when the application learns that the
// network changed (a reachability callback, a VPN that came up): a healthy
// connection is kept, a dead one replaced at once. Here the first
// connection has gone dead without a sign (its server stopped reading),
// and the heartbeat, every hour, would not look for a long while.
func ExampleConn_Probe() {
	quit := make(chan struct{})
	url, httpClient, stop := testServer(func(n int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		if n == 1 {
			ws.Write(r.Context(), websocket.MessageText, []byte("hello 1"))
			<-quit // reads nothing more: answers no ping
			return
		}
		ctx := ws.CloseRead(r.Context())
		ws.Write(ctx, websocket.MessageText, []byte("hello 2"))
		<-ctx.Done()
	})
	defer stop()
	defer close(quit)

	ctx := context.Background()
	c, err := wsreconnect.Dial(ctx,
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		},
		wsreconnect.WithHeartbeat(time.Hour, time.Second),
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			fmt.Printf("disconnect: code %d, dead %v, reconnect in %v\n",
				d.Code, errors.Is(d.Err, wsreconnect.ErrHeartbeatTimeout), d.Delay)
		}),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	for i := range 2 {
		_, p, err := c.Read(ctx)
		if err != nil {
			fmt.Println("read:", err)
			return
		}
		fmt.Println("server:", string(p))
		if i == 0 {
			c.Probe() // say, the phone moved from Wi-Fi to mobile
		}
	}
	// Output:
	// server: hello 1
	// disconnect: code 1006, dead true, reconnect in 0s
	// server: hello 2
}

// Subprotocol is what the live connection negotiated ("" while the Conn
// reconnects): the subprotocols are offered as usual, in the DialFunc.
func ExampleConn_Subprotocol() {
	url, httpClient, stop := testServer(func(_ int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"feed.v2"}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		<-ws.CloseRead(r.Context()).Done()
	})
	defer stop()

	c, err := wsreconnect.Dial(context.Background(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{
			HTTPClient:   httpClient,
			Subprotocols: []string{"feed.v2", "feed.v1"},
		})
	})
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()
	fmt.Printf("subprotocol %q\n", c.Subprotocol())
	// Output:
	// subprotocol "feed.v2"
}

// Done is closed once the Conn has ended, for any reason; Err says why,
// as Read would. A goroutine that only writes can wait on it.
func ExampleConn_Done() {
	url, httpClient, stop := testServer(func(_ int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.Close(websocket.StatusPolicyViolation, "subscription limit")
	})
	defer stop()

	c, err := wsreconnect.Dial(context.Background(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
	})
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	<-c.Done()
	var stopErr *wsreconnect.StopError
	if errors.As(c.Err(), &stopErr) {
		d := stopErr.Disconnect
		fmt.Printf("ended: code %d %q, %v\n", d.Code, d.Reason, d.Decision)
	}
	// Output:
	// ended: code 1008 "subscription limit", stop
}

// A DialFunc is a closure, called for every attempt: it can fetch a fresh
// token each time, here for an Authorization header. The server drops the
// first connection; the second attempt carries a new token.
func ExampleDialFunc() {
	var tokens []string
	var mu sync.Mutex
	url, httpClient, stop := testServer(func(n int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokens = append(tokens, r.Header.Get("Authorization"))
		mu.Unlock()
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		if n == 1 {
			return // drop the connection
		}
		ws.Write(r.Context(), websocket.MessageText, []byte("welcome back"))
		<-ws.CloseRead(r.Context()).Done()
	})
	defer stop()

	var issued atomic.Int64
	freshToken := func(context.Context) (string, error) { // your token service
		return fmt.Sprintf("token-%d", issued.Add(1)), nil
	}
	c, err := wsreconnect.Dial(context.Background(),
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			token, err := freshToken(ctx)
			if err != nil {
				return nil, nil, err // a failed attempt, retried
			}
			return websocket.Dial(ctx, url, &websocket.DialOptions{
				HTTPClient: httpClient,
				HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
			})
		},
		wsreconnect.WithInitialDelay(10*time.Millisecond),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	_, p, err := c.Read(context.Background())
	fmt.Println(string(p), err)
	mu.Lock()
	fmt.Println(tokens)
	mu.Unlock()
	// Output:
	// welcome back <nil>
	// [Bearer token-1 Bearer token-2]
}

// coder/websocket reads messages of at most 32 KiB by default: a bigger
// one ends the connection with 1009, which stops the Conn. Raise the limit
// on every connection, in the DialFunc (or in OnConnect).
func ExampleDialFunc_readLimit() {
	url, httpClient, stop := testServer(func(_ int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.Write(r.Context(), websocket.MessageBinary, make([]byte, 100<<10)) // a 100 KiB snapshot
		<-ws.CloseRead(r.Context()).Done()
	})
	defer stop()

	c, err := wsreconnect.Dial(context.Background(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		if err == nil {
			ws.SetReadLimit(1 << 20) // 1 MiB
		}
		return ws, resp, err
	})
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	_, p, err := c.Read(context.Background())
	fmt.Println(len(p), err)
	// Output:
	// 102400 <nil>
}

// With a send queue, Write returns at once while the Conn reconnects; the
// queued messages go out in order on the next connection, after OnConnect.
func ExampleWithSendQueue() {
	got := make(chan string, 10)
	url, httpClient, stop := testServer(func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 2 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		if n == 1 {
			ws.Close(websocket.StatusServiceRestart, "restarting")
			return
		}
		for {
			_, p, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			got <- string(p)
		}
	})
	defer stop()

	disconnected := make(chan struct{}, 2)
	c, err := wsreconnect.Dial(context.Background(),
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		},
		wsreconnect.WithSendQueue(100),
		wsreconnect.WithOnDisconnect(func(wsreconnect.Disconnect) { disconnected <- struct{}{} }),
		wsreconnect.WithInitialDelay(10*time.Millisecond),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	<-disconnected // the 1012: the Conn is reconnecting
	for i := 1; i <= 3; i++ {
		err := c.Write(context.Background(), websocket.MessageText, []byte(fmt.Sprint("order ", i)))
		fmt.Println("queued:", err)
	}
	for range 3 {
		fmt.Println("server got:", <-got)
	}
	// Output:
	// queued: <nil>
	// queued: <nil>
	// queued: <nil>
	// server got: order 1
	// server got: order 2
	// server got: order 3
}

// A failure no retry can cure is returned by Dial at once as a
// *StopError, which holds the Disconnect: here a 401.
func ExampleStopError() {
	url, httpClient, stop := testServer(func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "token expired", http.StatusUnauthorized)
	})
	defer stop()

	_, err := wsreconnect.Dial(context.Background(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
	})
	var stopErr *wsreconnect.StopError
	if errors.As(err, &stopErr) {
		d := stopErr.Disconnect
		fmt.Printf("gave up: HTTP %d, %v after %d attempt(s)\n", d.HTTPStatus, d.Decision, d.Attempt)
	}
	// Output:
	// gave up: HTTP 401, stop after 1 attempt(s)
}

// The heartbeat finds a peer that has stopped answering (a vanished NAT
// mapping, a hung server): after interval without anything arriving it
// pings, and after timeout more without an answer it drops the connection
// (1006, ErrHeartbeatTimeout) and reconnects. The server here stops
// answering on its first connection.
func ExampleWithHeartbeat() {
	hung := make(chan struct{})
	url, httpClient, stop := testServer(func(n int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		if n == 1 {
			<-hung // never reads: pings go unanswered
			return
		}
		ws.Write(r.Context(), websocket.MessageText, []byte("alive"))
		<-ws.CloseRead(r.Context()).Done()
	})
	defer stop()
	defer close(hung)

	c, err := wsreconnect.Dial(context.Background(),
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		},
		wsreconnect.WithHeartbeat(50*time.Millisecond, 50*time.Millisecond),
		wsreconnect.WithInitialDelay(10*time.Millisecond),
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			fmt.Printf("code %d, heartbeat timeout: %v, %v\n", d.Code, errors.Is(d.Err, wsreconnect.ErrHeartbeatTimeout), d.Decision)
		}),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	_, p, err := c.Read(context.Background())
	fmt.Println(string(p), err)
	// Output:
	// code 1006, heartbeat timeout: true, retry
	// alive <nil>
}

// Stats is a snapshot of the counters, safe to poll and ready for JSON
// (expvar.Publish("feed", expvar.Func(func() any { return c.Stats() }))).
func ExampleConn_Stats() {
	url, httpClient, stop := testServer(func(n int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		if n == 1 {
			return // drop
		}
		ws.Write(r.Context(), websocket.MessageText, []byte("hi"))
		<-ws.CloseRead(r.Context()).Done()
	})
	defer stop()

	c, err := wsreconnect.Dial(context.Background(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
	}, wsreconnect.WithInitialDelay(10*time.Millisecond))
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()
	c.Read(context.Background()) // "hi", on the second connection

	st := c.Stats()
	fmt.Println(st.State, st.Connects, st.Disconnects[wsreconnect.Retry], int(st.LastDisconnect.Code))
	// Output:
	// connected 2 1 1006
}

// everySecond is a dial limiter for the example: one dial per tick. In a
// real program, use golang.org/x/time/rate: rate.NewLimiter(100, 10) is a
// wsreconnect.Limiter too.
type everyTick struct{ ticks <-chan time.Time }

func (l everyTick) Wait(ctx context.Context) error {
	select {
	case <-l.ticks:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// One limiter shared by every Conn of a process bounds the process's dial
// rate, however many Conns redial at once.
func ExampleWithDialLimiter() {
	url, httpClient, stop := testServer(func(_ int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		<-ws.CloseRead(r.Context()).Done()
	})
	defer stop()

	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	limiter := everyTick{ticker.C} // shared

	start := time.Now()
	var conns []*wsreconnect.Conn
	for range 5 {
		c, err := wsreconnect.Dial(context.Background(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		}, wsreconnect.WithDialLimiter(limiter))
		if err != nil {
			fmt.Println("dial:", err)
			return
		}
		defer c.CloseNow()
		conns = append(conns, c)
	}
	fmt.Printf("%d connections, at least 100 ms for the 5 dials: %v\n", len(conns), time.Since(start) >= 100*time.Millisecond)
	// Output:
	// 5 connections, at least 100 ms for the 5 dials: true
}

// A server that expects an application-level ping: the heartbeat calls the
// ping function instead of sending a protocol ping, and the server's pong
// (a message like any other) arrives through Read.
func ExampleWithPingFunc() {
	url, httpClient, stop := testServer(func(_ int, w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			_, p, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			if string(p) == `{"op":"ping"}` {
				ws.Write(r.Context(), websocket.MessageText, []byte(`{"op":"pong"}`))
			}
		}
	})
	defer stop()

	c, err := wsreconnect.Dial(context.Background(),
		func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
		},
		wsreconnect.WithHeartbeat(20*time.Millisecond, time.Second),
		wsreconnect.WithPingFunc(func(ctx context.Context, ws *websocket.Conn) error {
			return ws.Write(ctx, websocket.MessageText, []byte(`{"op":"ping"}`))
		}),
	)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	_, p, err := c.Read(context.Background()) // after 20 ms of silence: ping, pong
	fmt.Println(string(p), err)
	// Output:
	// {"op":"pong"} <nil>
}
