package wsreconnect

import "time"

// counts are the counters behind Stats, under Conn.mu.
type counts struct {
	connects    uint64
	disconnects [3]uint64 // by Decision
	attempt     int
	last        Disconnect
}

// Stats is a snapshot of a Conn's counters.
type Stats struct {
	State State
	// Connects counts the connections established (OnConnect included).
	Connects uint64
	// Disconnects counts the Disconnects reported, by decision.
	Disconnects map[Decision]uint64
	// Attempt is the Attempt of the last Disconnect: consecutive failures
	// since the last stable connection; 0 before the first Disconnect.
	Attempt int
	// LastDisconnect is the most recent Disconnect; zero before the first.
	LastDisconnect Disconnect
	// Uptime is how long the current connection has been up; 0 when none.
	Uptime time.Duration
	// Queued counts the messages waiting in the send queue.
	Queued int
}

// Stats returns a snapshot of the Conn's counters. It is safe for
// concurrent use and cheap enough to poll.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Stats{
		State:          c.state,
		Connects:       c.counts.connects,
		Disconnects:    make(map[Decision]uint64, len(c.counts.disconnects)),
		Attempt:        c.counts.attempt,
		LastDisconnect: c.counts.last,
		Queued:         len(c.queue),
	}
	for d, n := range c.counts.disconnects {
		st.Disconnects[Decision(d)] = n
	}
	if c.phase == phaseLive && c.sess != nil {
		st.Uptime = c.sess.uptime()
	}
	return st
}
