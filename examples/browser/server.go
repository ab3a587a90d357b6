//go:build !js

package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The server's script, one step per connection attempt, repeated. A
// connection streams a tick every tickEvery and echoes what the client
// writes; it answers the client's {"op":"ping"} with {"op":"pong"}.
var script = []struct {
	what  string
	ticks int                         // ticks before end
	end   func(*websocket.Conn) error // how the connection ends; nil: refuse the handshake
}{
	{"4 ticks, then drop the TCP connection (no close frame: 1006)", 4, func(ws *websocket.Conn) error { return ws.CloseNow() }},
	{`2 ticks, then close with 1013 "try again later"`, 2, func(ws *websocket.Conn) error {
		return ws.Close(websocket.StatusTryAgainLater, "try again later")
	}},
	{"refuse the handshake: 503, Retry-After: 1", 0, nil},
	{`20 ticks (10 s), then close with 1012 "service restart"`, 20, func(ws *websocket.Conn) error {
		return ws.Close(websocket.StatusServiceRestart, "service restart")
	}},
	{"4 ticks, then stop answering (the client's heartbeat finds it)", 4, nil},
}

const tickEvery = 500 * time.Millisecond

const (
	ping = `{"op":"ping"}`
	pong = `{"op":"pong"}`
)

// server is the misbehaving WebSocket server.
type server struct {
	attempts atomic.Int64
	ticks    atomic.Int64

	ctx    context.Context // ends at shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup // the connections' handlers
}

func newServer() *server {
	s := &server{}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.wg.Add(1)
	defer s.wg.Done()
	n := int(s.attempts.Add(1))
	step := script[(n-1)%len(script)]
	log.Printf("attempt %d: %s", n, step.what)
	if step.ticks == 0 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "overloaded, come back later", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, nil) // the page is served from this origin
	if err != nil {
		return
	}
	defer ws.CloseNow()

	// The reader echoes and answers pings, until the connection ends or
	// the server goes silent.
	silent := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			typ, p, err := ws.Read(s.ctx)
			if err != nil {
				return
			}
			select {
			case <-silent:
				return // read nothing more, answer nothing
			default:
			}
			reply := append([]byte("echo: "), p...)
			if string(p) == ping {
				reply = []byte(pong)
			}
			if ws.Write(s.ctx, typ, reply) != nil {
				return
			}
		}
	}()

	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for i := 0; i < step.ticks; i++ {
		select {
		case <-t.C:
		case <-readerDone:
			return
		case <-s.ctx.Done():
			return
		}
		msg := fmt.Sprintf("tick %d (connection %d)", s.ticks.Add(1), n)
		if ws.Write(s.ctx, websocket.MessageText, []byte(msg)) != nil {
			return
		}
	}
	if step.end != nil {
		err := step.end(ws)
		log.Printf("attempt %d: ended (%v)", n, err)
		<-readerDone
		return
	}
	close(silent)
	log.Printf("attempt %d: silent", n)
	// Silent: read nothing, answer nothing (the reader stops after one
	// more message), until the server stops or 15 s have passed. The
	// client's heartbeat gives up on us well before; its close frame goes
	// unanswered.
	select {
	case <-s.ctx.Done():
	case <-time.After(15 * time.Second):
	}
	ws.CloseNow()
	<-readerDone
}

// shutdown ends every connection and waits for their handlers.
func (s *server) shutdown() {
	s.cancel()
	s.wg.Wait()
}
