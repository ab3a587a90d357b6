package wsreconnect

import (
	"encoding/json"
	"time"
)

// counts are the counters behind Stats, under Conn.mu.
type counts struct {
	connects       uint64
	disconnects    [3]uint64 // by Decision
	dials          int       // dial attempts since Dial or the last stable connection ended
	failures       int       // consecutive failures since the last stable connection (Disconnect.Attempt)
	attempt        int       // Stats.Attempt
	last           Disconnect
	downtime       time.Duration // without a connection, up to downSince
	downSince      time.Time     // when the current outage began; zero while connected or after the end
	connectedAt    time.Time     // when the last connection came up
	disconnectedAt time.Time     // when the last Disconnect was reported
	nextAttempt    time.Time     // while waiting before an attempt, when it starts
}

// Stats is a snapshot of a Conn's counters. Its JSON form (see MarshalJSON)
// is what expvar and metrics systems ingest.
type Stats struct {
	State State
	// Connects counts the connections established (OnConnect included).
	Connects uint64
	// Disconnects counts the Disconnects reported, by decision.
	Disconnects map[Decision]uint64
	// Attempt is, while a connection is up, the number of the dial that
	// made it, counted since Dial or since the last stable connection ended
	// (as the "connected" log line says: 1 when the first dial after it
	// succeeded); otherwise the Attempt of the last Disconnect. 0 before
	// either.
	Attempt int
	// LastDisconnect is the most recent Disconnect; zero before the first.
	LastDisconnect Disconnect
	// Uptime is how long the current connection has been up; 0 when none.
	Uptime time.Duration
	// Downtime is how long the Conn has been without a connection since
	// Dial, in all: before the first connection, between connections, and
	// now if it is reconnecting.
	Downtime time.Duration
	// ConnectedAt is when the last connection came up; zero before the
	// first.
	ConnectedAt time.Time
	// DisconnectedAt is when the last Disconnect was reported; zero before
	// the first.
	DisconnectedAt time.Time
	// NextAttempt is when the next attempt starts, while the Conn waits
	// before it; zero otherwise.
	NextAttempt time.Time
	// Queued counts the messages waiting in the send queue.
	Queued int
	// TraceDropped counts the events dropped because 1,024 waited for
	// slow Trace hooks (see Trace).
	TraceDropped uint64
}

// Stats returns a snapshot of the Conn's counters. It is safe for
// concurrent use and cheap enough to poll.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	st := Stats{
		State:          c.life.public(),
		Connects:       c.counts.connects,
		Disconnects:    make(map[Decision]uint64, len(c.counts.disconnects)),
		Attempt:        c.counts.attempt,
		LastDisconnect: c.counts.last,
		Downtime:       c.counts.downtime,
		ConnectedAt:    c.counts.connectedAt,
		DisconnectedAt: c.counts.disconnectedAt,
		NextAttempt:    c.counts.nextAttempt,
		Queued:         len(c.queue),
	}
	if c.trace != nil {
		st.TraceDropped = c.trace.droppedEvents()
	}
	for d, n := range c.counts.disconnects {
		st.Disconnects[Decision(d)] = n
	}
	if c.life == live {
		st.Uptime = c.sess.uptime()
	}
	if !c.counts.downSince.IsZero() {
		st.Downtime += now.Sub(c.counts.downSince)
	}
	return st
}

// connectedLocked records that a connection came up; it returns how long
// the Conn was without one. c.mu must be held.
func (c *counts) connectedLocked(now time.Time) time.Duration {
	down := now.Sub(c.downSince)
	c.downtime += down
	c.downSince = time.Time{}
	c.connectedAt = now
	c.connects++
	return down
}

// MarshalJSON renders Stats for expvar and metrics systems: field names in
// snake_case, durations as seconds (the unit in the name), times in RFC
// 3339 (null when unset), decisions by their snake_case names:
//
//	{"state":"connected","connects":2,"disconnects":{"retry":1,"retry_overload":0,"stop":0},
//	 "attempt":1,"last_disconnect":{…},"uptime_seconds":12.5,"downtime_seconds":0.8,
//	 "connected_at":"2026-11-30T12:00:00Z","disconnected_at":"…","next_attempt_at":null,"queued":0}
func (st Stats) MarshalJSON() ([]byte, error) {
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	return json.Marshal(struct {
		State           State               `json:"state"`
		Connects        uint64              `json:"connects"`
		Disconnects     map[Decision]uint64 `json:"disconnects"`
		Attempt         int                 `json:"attempt"`
		LastDisconnect  *Disconnect         `json:"last_disconnect"`
		UptimeSeconds   float64             `json:"uptime_seconds"`
		DowntimeSeconds float64             `json:"downtime_seconds"`
		ConnectedAt     *time.Time          `json:"connected_at"`
		DisconnectedAt  *time.Time          `json:"disconnected_at"`
		NextAttemptAt   *time.Time          `json:"next_attempt_at"`
		Queued          int                 `json:"queued"`
		TraceDropped    uint64              `json:"trace_dropped"`
	}{
		State: st.State, Connects: st.Connects, Disconnects: st.Disconnects, Attempt: st.Attempt,
		LastDisconnect: lastOrNil(st.LastDisconnect), UptimeSeconds: seconds(st.Uptime),
		DowntimeSeconds: seconds(st.Downtime), ConnectedAt: at(st.ConnectedAt),
		DisconnectedAt: at(st.DisconnectedAt), NextAttemptAt: at(st.NextAttempt), Queued: st.Queued,
		TraceDropped: st.TraceDropped,
	})
}

func lastOrNil(d Disconnect) *Disconnect {
	if d == (Disconnect{}) {
		return nil
	}
	return &d
}
