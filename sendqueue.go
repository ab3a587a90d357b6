package wsreconnect

import (
	"bytes"

	"github.com/coder/websocket"
)

// enqueueLocked queues a copy of p for the next connection (WithSendQueue);
// the setup writes the queue, in order, before it publishes the connection
// (see Conn.setup). c.mu must be held.
func (c *Conn) enqueueLocked(typ websocket.MessageType, p []byte) error {
	if len(c.queue) >= c.cfg.sendQueue {
		c.emit(traceEvent{kind: evQueue, depth: len(c.queue), full: true})
		return ErrSendQueueFull
	}
	c.queue = append(c.queue, message{typ, bytes.Clone(p)})
	c.emit(traceEvent{kind: evQueue, depth: len(c.queue)})
	return nil
}
