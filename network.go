package wsreconnect

import (
	"context"
	"log/slog"
)

// A netEvent is what the platform says about the network (in the
// browser: the online, offline and visibilitychange events; see
// platform_js.go). Elsewhere the platform says nothing, and the Conn
// learns of a network change from Probe and from the clocks (see
// heartbeat.clockGap).
type netEvent uint8

const (
	netOnline  netEvent = iota // the network is back: redial at once
	netOffline                 // the network is gone: probe; dial nothing until it is back
	netVisible                 // a hidden page is visible again: its timers may have slept
)

// networkChanged acts on ev: a connection that is up is probed at once
// (a page's timers are throttled while it is hidden, and the browser may
// keep a socket the network lost); a Conn waiting to redial looks at its
// wait again, and once the network is back dials at once.
func (c *Conn) networkChanged(ev netEvent) {
	c.mu.Lock()
	switch s := c.sess; c.life {
	case settingUp, live:
		c.mu.Unlock()
		s.hb.probeNow()
		return
	case ending, waiting:
		if ev == netOnline {
			c.wakeNow = true
		}
	}
	signal(c.wake) // the wait, or awaitNetwork
	c.mu.Unlock()
}

// awaitNetwork waits, before an attempt, until the platform says the
// network is there (in the browser, navigator.onLine), so that an offline
// page burns no attempts; false once the Conn is closed. Reconnect and
// Probe have it dial anyway (the browser may say offline and still reach
// a server on localhost).
func (c *Conn) awaitNetwork() bool {
	if c.online() {
		return c.end.Err() == nil
	}
	c.logger().LogAttrs(context.Background(), slog.LevelInfo, "wsreconnect: offline: waiting for the network")
	c.mu.Lock()
	c.offline = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.offline, c.dialAnyway = false, false
		c.mu.Unlock()
	}()
	for !c.online() {
		select {
		case <-c.wake:
		case <-c.end.Done():
			return false
		}
		c.mu.Lock()
		anyway := c.dialAnyway
		c.mu.Unlock()
		if anyway {
			break
		}
	}
	return c.end.Err() == nil
}

// online reports whether the platform says the network is there.
func (c *Conn) online() bool {
	if f := c.cfg.fake; f != nil && f.online != nil {
		return f.online()
	}
	return online()
}

// askedToDial has a Conn that waits for the network dial anyway
// (Reconnect, Probe); c.mu must be held.
func (c *Conn) askedToDial() {
	if c.offline {
		c.dialAnyway = true
		signal(c.wake)
	}
}
