// Package wsjson reads and writes JSON messages on a wsreconnect.Conn, as
// github.com/coder/websocket/wsjson does on a *websocket.Conn: one JSON
// value per text message.
//
// Unlike coder/websocket's wsjson, a message that is not JSON (or not
// text) is an error of that Read only: the Conn keeps its connection, and
// the next Read returns the next message.
package wsjson

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// Read reads the next message from c and unmarshals it, as JSON, into v.
// A binary message, or a text message that does not hold JSON for v, is an
// error; it is consumed, and the connection is unaffected. Errors from
// c.Read (ctx, ErrClosed, a *wsreconnect.StopError) are wrapped.
func Read(ctx context.Context, c *wsreconnect.Conn, v any) error {
	typ, p, err := c.Read(ctx)
	if err != nil {
		return fmt.Errorf("wsjson: failed to read JSON message: %w", err)
	}
	if typ != websocket.MessageText {
		return fmt.Errorf("wsjson: failed to read JSON message: expected a text message, got %v", typ)
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("wsjson: failed to unmarshal JSON: %w", err)
	}
	return nil
}

// Write marshals v as JSON and writes it to c as one text message (with a
// trailing newline, as json.Encoder and coder/websocket's wsjson write it).
// It waits for a connection like c.Write; a value that cannot be
// marshalled is an error, and nothing is written.
func Write(ctx context.Context, c *wsreconnect.Conn, v any) error {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		return fmt.Errorf("wsjson: failed to marshal JSON: %w", err)
	}
	if err := c.Write(ctx, websocket.MessageText, b.Bytes()); err != nil {
		return fmt.Errorf("wsjson: failed to write JSON message: %w", err)
	}
	return nil
}
