// Package browsertest runs wsreconnect in a real browser: headless
// Chromium, driven with github.com/chromedp/chromedp, runs the library
// compiled to WebAssembly (GOOS=js GOARCH=wasm) against misbehaving
// WebSocket endpoints served from the test process. It is a module of its
// own so that the library's go.mod needs no test-only dependencies.
//
//	cd internal/browsertest && go test -race -count=1 ./...
//
// The tests are host programs (//go:build !js); ./wasm is the program they
// build for the browser (//go:build js, left out of ./... on the host) and
// ./report the JSON both sides share.
//
//   - TestBrowser builds ./wasm once, serves it with Go's wasm_exec.js and
//     the endpoints from an httptest server on 127.0.0.1, and runs its
//     scenarios in tabs of one browser: a drop (1006), 1013 twice, 1008,
//     Close, CloseNow, Close against a silent server, Reconnect, the
//     application-level heartbeat (healthy and dead), a refused handshake
//     and a dial timeout. The page records what the browser's WebSocket
//     objects reported (close codes, wasClean, close() calls that threw);
//     each subtest logs it next to the library's Disconnects and what the
//     server saw, and checks them. The network scenarios run in a browser
//     of their own, and have the host take their page's network away and
//     give it back (DevTools' network emulation: navigator.onLine, the
//     offline and online events, a socket whose traffic is held) and
//     minimize and restore its window (the page hidden, then visible):
//     offline with and without a ping func, Close while offline, Dial
//     while offline, online during a 30 s backoff wait, and a page made
//     visible again. network_test.go says what Chromium does; go test -v
//     logs the figures (FIGURE).
//   - TestExamplePage builds and starts examples/browser, opens its page,
//     waits for three disconnects and a new connection, checks the page,
//     takes its network away until the client waits for it, gives it back
//     until the client is connected again and, with UPDATE_SCREENSHOT=1,
//     writes its screenshot to docs/browser.png.
//
// They need Chromium: /usr/bin/chromium (Debian's chromium package) or
// $CHROMIUM. Without it they skip, except under CI=true, where they fail.
// Chromium's own output is logged when a test fails, or with CHROME_LOG=1.
package browsertest
