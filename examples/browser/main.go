//go:build !js

// Command browser runs wsreconnect in a web page: a Go client compiled to
// WebAssembly (./client) rides through a misbehaving WebSocket server, and
// the page shows the connection state, each disconnect with the decision
// the default policy took and the delay before the next attempt, and the
// messages that made it through.
//
//	go run ./examples/browser
//
// It builds the client with GOOS=js GOARCH=wasm go build (so it needs the
// go command), serves the page, the client, Go's wasm_exec.js and the
// WebSocket server on 127.0.0.1, prints the page's URL and serves until
// interrupted. Flags: -addr sets the address (127.0.0.1:0 picks a free
// port), -for stops it after a while.
//
// The server misbehaves on purpose, one way per connection attempt, in a
// cycle (see server.go): it drops the TCP connection (the page sees 1006),
// closes with 1013 "try again later", refuses the handshake with 503 (the
// page cannot see the status: a failed dial), serves normally for a while
// and closes with 1012 "service restart", and stops answering, which the
// client's application-level heartbeat finds. It never sends 1008 or 1000,
// which would stop the client: the page keeps going.
//
// The page also shows what the browser says about the network, and what
// the client logs about it: take the network away (DevTools, Network,
// Offline) and the client probes its connection, finds it dead and dials
// nothing while offline; give it back and it dials at once.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

//go:embed index.html
var indexHTML []byte

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on (127.0.0.1:0 picks a free port)")
	runFor := flag.Duration("for", 0, "stop after this long (0: serve until interrupted)")
	flag.Parse()
	if err := run(*addr, *runFor); err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.Exit(1)
	}
}

func run(addr string, runFor time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, runFor)
		defer cancel()
	}

	dir, err := os.MkdirTemp("", "wsreconnect-browser")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	wasm := filepath.Join(dir, "client.wasm")
	fmt.Println("building the client: GOOS=js GOARCH=wasm go build ./examples/browser/client")
	if err := buildClient(ctx, wasm); err != nil {
		return err
	}
	wasmExec, err := wasmExecJS(ctx)
	if err != nil {
		return err
	}

	ws := newServer()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	mux.HandleFunc("GET /client.wasm", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, wasm) // Content-Type: application/wasm
	})
	mux.HandleFunc("GET /wasm_exec.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, wasmExec)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.Handle("GET /ws", ws)

	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()
	fmt.Printf("serving http://%s/ (open it in a browser; Ctrl-C stops)\n", l.Addr())

	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	fmt.Println("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx) // closes the listener; waits for plain requests
	ws.shutdown()           // ends the WebSocket connections (hijacked: Shutdown does not wait for them)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	<-served
	return err
}

// buildClient compiles ./client for the browser into out.
func buildClient(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = clientDir()
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the client in %s: %v\n%s", cmd.Dir, err, b)
	}
	return nil
}

// clientDir is the client's source directory: next to this file when it
// is there (go run, go build), else ./examples/browser/client.
func clientDir() string {
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "client")
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
	}
	return filepath.Join("examples", "browser", "client")
}

// wasmExecJS returns the path of Go's wasm_exec.js, the JavaScript side of
// a js/wasm program: $GOROOT/lib/wasm since Go 1.24.
func wasmExecJS(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %w", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "lib", "wasm", "wasm_exec.js")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("wasm_exec.js: %w", err)
	}
	return p, nil
}
