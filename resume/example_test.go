//go:build !js

package resume_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/resume"
)

// serve starts h on 127.0.0.1 and returns a dial function for it, and a
// function that stops the listener and the client's idle connections.
func serve(h http.Handler) (dial wsreconnect.DialFunc, stop func()) {
	hs := httptest.NewServer(h)
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	return func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hs.Client()})
	}, hs.Close
}

// fast keeps the examples quick: wsreconnect's default first retry waits
// up to a second.
var fast = resume.WithConnOptions(wsreconnect.WithInitialDelay(10*time.Millisecond), wsreconnect.WithMaxDelay(100*time.Millisecond))

// A client and a server: the server's serve function runs once per
// session and answers each message; the client's reliable messages and
// the answers survive the reconnect in the middle.
func ExampleDial() {
	srv, err := resume.NewServer(func(ctx context.Context, s *resume.Session) {
		for {
			_, msg, err := s.Read(ctx)
			if err != nil {
				return // the session ended
			}
			s.Write(ctx, websocket.MessageText, append([]byte("re: "), msg...))
		}
	})
	if err != nil {
		panic(err)
	}
	dial, stop := serve(srv)
	defer stop()
	defer srv.Close()

	ctx := context.Background()
	c, err := resume.Dial(ctx, dial, fast)
	if err != nil {
		panic(err)
	}
	c.Write(ctx, websocket.MessageText, []byte("one"))
	c.Conn().Reconnect() // as a network change would: the session goes on
	c.Write(ctx, websocket.MessageText, []byte("two"))
	for range 2 {
		_, msg, _ := c.Read(ctx)
		fmt.Println(string(msg))
	}
	fmt.Println("sessions:", c.Stats().Sessions)
	if err := c.Flush(ctx); err != nil { // wait for the server's acknowledgements
		fmt.Println(err)
	}
	if err := c.Close(); err != nil { // else it would list what was not confirmed
		fmt.Println(err)
	}
	// Output:
	// re: one
	// re: two
	// sessions: 1
}

// When the server has forgotten the session (here: it restarted, with its
// sessions in memory), Read says so where the old session ends, with the
// messages the server never confirmed; the next Read goes on with the new
// session.
func ExampleNotRecoveredError() {
	var current atomic.Pointer[resume.Server] // the server that answers now
	newServer := func() *resume.Server {
		srv, err := resume.NewServer(func(ctx context.Context, s *resume.Session) {
			<-ctx.Done() // reads nothing: confirms nothing
		})
		if err != nil {
			panic(err)
		}
		current.Store(srv)
		return srv
	}
	dial, stop := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().ServeHTTP(w, r)
	}))
	defer stop()
	first := newServer()

	ctx := context.Background()
	c, err := resume.Dial(ctx, dial, fast)
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("order #1"))
	c.Write(ctx, websocket.MessageText, []byte("order #2"))

	second := newServer() // the restarted server: it knows no session
	defer second.Close()
	first.Close() // closes its connections with 1001: the client comes back

	_, _, err = c.Read(ctx)
	var nr *resume.NotRecoveredError
	if errors.As(err, &nr) {
		fmt.Println("not recovered; to resynchronize, then write again:")
		for _, m := range nr.Unconfirmed {
			fmt.Printf("  %s\n", m.Data)
		}
	}
	// Output:
	// not recovered; to resynchronize, then write again:
	//   order #1
	//   order #2
}

// Servers that share a Store serve the same sessions: a client whose
// server went away resumes on another, which resends what the first had
// written and the client had not acknowledged.
func ExampleWithStore() {
	store := resume.NewMemoryStore(0, 0) // shared; in production, one in Redis or a database
	var current atomic.Pointer[resume.Server]
	newServer := func(name string) *resume.Server {
		srv, err := resume.NewServer(func(ctx context.Context, s *resume.Session) {
			if !s.Resumed() {
				s.Write(ctx, websocket.MessageText, []byte("welcome, from "+name))
			}
			for {
				_, msg, err := s.Read(ctx)
				if err != nil {
					return
				}
				s.Write(ctx, websocket.MessageText, []byte(name+" got "+string(msg)))
			}
		}, resume.WithStore(store))
		if err != nil {
			panic(err)
		}
		current.Store(srv)
		return srv
	}
	dial, stop := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().ServeHTTP(w, r)
	}))
	defer stop()
	a := newServer("a")

	ctx := context.Background()
	c, err := resume.Dial(ctx, dial, fast)
	if err != nil {
		panic(err)
	}
	_, msg, _ := c.Read(ctx)
	fmt.Println(string(msg))

	b := newServer("b")
	defer b.Close()
	a.Close() // a goes away; the client reconnects, to b

	c.Write(ctx, websocket.MessageText, []byte("hello"))
	_, msg, _ = c.Read(ctx)
	fmt.Println(string(msg))
	fmt.Println("sessions:", c.Stats().Sessions, "resumed on b:", b.Stats().Resumed)
	c.Flush(ctx)
	if err := c.Close(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// welcome, from a
	// b got hello
	// sessions: 1 resumed on b: 1
}
