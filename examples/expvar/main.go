//go:build !js

// Command expvar publishes a wsreconnect.Conn's Stats with the standard
// library's expvar package, next to the process's own variables on
// /debug/vars.
//
// It starts a server on 127.0.0.1 that drops every connection after a
// second, a client that rides through the drops, and the expvar endpoint on
// another 127.0.0.1 port; then it fetches /debug/vars three times, prints
// the "wsreconnect" variable, and exits.
//
//	go run ./examples/expvar
package main

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

func main() {
	if err := run(); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	wsURL, stopServer, err := startFlappingServer()
	if err != nil {
		return err
	}
	defer stopServer()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	c, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: client})
	}, wsreconnect.WithInitialDelay(100*time.Millisecond), wsreconnect.WithStableUptime(5*time.Second))
	if err != nil {
		return err
	}
	defer c.CloseNow()

	// The whole integration: one expvar.Func that returns the snapshot.
	expvar.Publish("wsreconnect", expvar.Func(func() any { return c.Stats() }))

	varsURL, stopVars, err := serveVars()
	if err != nil {
		return err
	}
	defer stopVars()

	for i := range 3 {
		time.Sleep(1500 * time.Millisecond)
		stats, err := fetchStats(ctx, varsURL)
		if err != nil {
			return err
		}
		fmt.Printf("/debug/vars %d: %s\n", i+1, stats)
	}
	return nil
}

// fetchStats reads /debug/vars and returns the "wsreconnect" variable.
func fetchStats(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var vars map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		return "", err
	}
	v, ok := vars["wsreconnect"]
	if !ok {
		return "", errors.New("no wsreconnect variable on /debug/vars")
	}
	return string(v), nil
}

// serveVars serves expvar's handler on 127.0.0.1.
func serveVars() (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: expvar.Handler()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	return "http://" + l.Addr().String() + "/debug/vars", func() {
		srv.Close()
		<-done
		http.DefaultClient.CloseIdleConnections()
	}, nil
}

// startFlappingServer accepts WebSocket connections and drops each after a
// second without a close frame.
func startFlappingServer() (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var wg sync.WaitGroup
	quit := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.CloseNow()
		ctx := ws.CloseRead(context.Background())
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		case <-quit:
		}
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Print(err)
		}
	}()
	return "ws://" + l.Addr().String() + "/", func() {
		close(quit)
		srv.Close()
		<-done
		wg.Wait()
	}, nil
}
