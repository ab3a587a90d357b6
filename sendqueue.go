package wsreconnect

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"
)

// enqueue queues a copy of p for the next connection (WithSendQueue),
// unless the Conn went live or ended meanwhile.
func (c *Conn) enqueue(ctx context.Context, typ websocket.MessageType, p []byte) error {
	c.mu.Lock()
	s, state := c.sess, c.state
	switch {
	case state == StateClosed, c.isClosing():
		c.mu.Unlock()
		return c.endErr()
	case state == StateConnected && !s.ended.Load() && len(c.queue) == 0:
		c.mu.Unlock()
		return s.write(ctx, typ, p)
	case len(c.queue) >= c.cfg.sendQueue:
		c.mu.Unlock()
		return ErrSendQueueFull
	}
	c.queue = append(c.queue, message{typ, bytes.Clone(p)})
	c.mu.Unlock()
	return nil
}

// publish writes the send queue to s, in order, then makes s the live
// session. The queue is checked empty under the same lock that publishes s,
// so no queued message is left behind; the same lock tells Close about s,
// or publish about Close. A failed write leaves its message at the head of
// the queue and s unpublished.
func (c *Conn) publish(s *session) error {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			break
		}
		m := c.queue[0]
		c.mu.Unlock()
		ctx, cancel := c.attemptContext()
		err := s.write(ctx, m.typ, m.data)
		cancel()
		if err != nil {
			return fmt.Errorf("wsreconnect: writing the send queue: %w", err)
		}
		c.mu.Lock()
		c.queue[0] = message{}
		c.queue = c.queue[1:]
		c.mu.Unlock()
	}
	defer c.mu.Unlock()
	if c.isClosing() {
		return ErrClosed
	}
	c.phase = phaseLive
	c.state = StateConnected
	s.outage = c.counts.connectedLocked(time.Now())
	c.cur.Store(s)
	c.broadcastLocked()
	if !c.firstSent {
		c.firstSent = true
		c.first <- nil
	}
	return nil
}
