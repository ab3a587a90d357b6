// Package wsreconnect keeps a WebSocket connection up.
package wsreconnect
