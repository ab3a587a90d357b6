module github.com/wsreconnect/wsreconnect/internal/proxytest

go 1.25

replace github.com/wsreconnect/wsreconnect => ../..

require (
	github.com/coder/websocket v1.8.15
	github.com/wsreconnect/wsreconnect v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

require github.com/cenkalti/backoff/v4 v4.3.0 // indirect
