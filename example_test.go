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
