package storm

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/wsreconnect/wsreconnect"
)

// Limiter is the server's admission control: a token bucket that admits at
// most Rate connections per second, with a burst of a tenth of a second's
// worth (at least 1), full at the start of the storm. Rate 0 admits
// everyone.
type Limiter struct {
	rate, burst, tokens float64
	last                time.Duration
}

// NewLimiter returns a limiter admitting rate connections per second.
func NewLimiter(rate float64) *Limiter {
	burst := max(1, rate/10)
	return &Limiter{rate: rate, burst: burst, tokens: burst}
}

// Allow reports whether an attempt at t (since the start of the storm) is
// admitted. Calls must come in order of t.
func (l *Limiter) Allow(t time.Duration) bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	if t > l.last {
		l.tokens = min(l.burst, l.tokens+l.rate*(t-l.last).Seconds())
		l.last = t
	}
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	return false
}

// SimConfig is one simulated storm.
type SimConfig struct {
	N        int
	Cause    Cause
	Capacity float64       // admitted connections per second; 0: everyone
	Horizon  time.Duration // give up simulating after this; 30 min when 0
	// RefuseStatus is the HTTP status of a refused handshake: 503 (the
	// overload schedule) when 0. A 502 or 500, as a proxy in front of a
	// saturated server may send, is retried on the standard schedule.
	RefuseStatus int
	// Latency adds a uniform [0, Latency) to every attempt: the time a
	// dial and a refused handshake take (or a close frame takes to
	// arrive), which the schedules do not count. 0: none.
	Latency time.Duration
	// Server is how the server answers the handshakes it refuses
	// (Plain: 503 without Retry-After). Ignored when RefuseStatus is set.
	Server Server
}

type event struct {
	at     time.Duration
	client int
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	return q[i].at < q[j].at || q[i].at == q[j].at && q[i].client < q[j].client
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// Simulate runs a storm on a simulated clock: at t = 0 every client loses
// its connection for cfg.Cause and asks its schedule for a delay; each
// attempt reaches the server at once and is admitted or refused with 503
// (with a Retry-After when cfg.Server gives one) by the server's token
// bucket; a refused client asks its schedule again. Handshakes take
// no time. The schedules are the variant's real code; only the clock is
// simulated.
func Simulate(cfg SimConfig, v Variant) *Outcome {
	if cfg.Horizon == 0 {
		cfg.Horizon = 30 * time.Minute
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now time.Duration
	clock := func() time.Time { return base.Add(now) }

	o := newOutcome(cfg.N, cfg.Cause, cfg.Capacity, v.Name, false)
	scheds := make([]Schedule, cfg.N)
	q := make(eventQueue, 0, cfg.N)
	lost := causeDisconnect(cfg.Cause)
	latency := func() time.Duration {
		if cfg.Latency <= 0 {
			return 0
		}
		return rand.N(cfg.Latency)
	}
	for i := range scheds {
		scheds[i] = v.New(clock)
		d := scheds[i].Next(lost)
		if d == backoff.Stop {
			o.GaveUp++
			continue
		}
		q = append(q, event{d + latency(), i})
	}
	heap.Init(&q)
	o.Server = cfg.Server
	if cfg.RefuseStatus != 0 {
		o.Server = Plain
	}
	adm := newAdmission(o.Server, cfg.Capacity)
	refused := disconnectRefused
	if cfg.RefuseStatus != 0 {
		refused.HTTPStatus = cfg.RefuseStatus
		refused.Err = fmt.Errorf("failed to WebSocket dial: expected handshake response status code 101 but got %d", cfg.RefuseStatus)
	}
	for q.Len() > 0 {
		e := heap.Pop(&q).(event)
		if e.at > cfg.Horizon {
			break
		}
		now = e.at
		admitted, retryAfter := adm.admit(e.client, e.at)
		o.attempt(e.client, e.at, admitted, retryAfter)
		if admitted {
			continue
		}
		refused.RetryAfter = min(retryAfter, wsreconnect.DefaultMaxRetryAfter)
		d := scheds[e.client].Next(refused)
		if d == backoff.Stop {
			o.GaveUp++
			continue
		}
		heap.Push(&q, event{e.at + d + latency(), e.client})
	}
	o.finish()
	return o
}
