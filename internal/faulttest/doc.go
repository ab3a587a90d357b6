// Package faulttest proves wsreconnect under real faults: toxiproxy between
// the client and a coder/websocket server, a third-party Python websockets
// server, hostile peers that write raw frames, and a soak against a server
// that keeps dropping. Everything is in the tests; see README.md.
//
// It is its own module so that its dependencies (toxiproxy, goleak) stay out
// of the library's go.mod.
package faulttest
