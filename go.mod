module github.com/wsreconnect/wsreconnect

go 1.25

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	github.com/coder/websocket v1.8.15
)
