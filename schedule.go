package wsreconnect

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// NewBackOff returns the standard schedule as a backoff/v4 BackOff:
// exponential with jitter, each delay drawn uniformly from a window that
// doubles: [0, initial) for the first retry, then [initial, 2·initial),
// [2·initial, 4·initial), … The first window spreads clients dropped
// together uniformly (RFC 6455 §7.2.3); the later windows never overlap, so
// the delays of a flapping server only grow until they reach max. From the
// window that reaches max on, it is [max/2, max): max bounds the delay
// actually slept, jitter included, and attempts are unlimited (no
// MaxElapsedTime). It panics if initial or max is not positive; it is not
// safe for concurrent use.
func NewBackOff(initial, max time.Duration) backoff.BackOff {
	if initial <= 0 || max <= 0 {
		panic("wsreconnect: NewBackOff: delays must be positive")
	}
	return &windowBackOff{base: initial, max: max, fromZero: true}
}

// NewOverloadBackOff returns the overload schedule (1013, 429, 503) as a
// backoff/v4 BackOff: the n-th delay is drawn uniformly from
// [min·2^(n-1), min·2^(n+1)), so the floor doubles on each consecutive
// overload (1 s, 2 s, 4 s, … for min = 1 s) while each window overlaps the
// next. The overlap keeps a server that is refusing clients busy: with
// disjoint windows it would idle between waves of retries (see
// BENCHMARKS.md, reconnect storm). max caps every delay: once the windows
// reach it they are [max/2, max), but never below min (with max < min,
// every delay is min). It panics if min or max is not positive; it is not
// safe for concurrent use.
func NewOverloadBackOff(min, max time.Duration) backoff.BackOff {
	if min <= 0 || max <= 0 {
		panic("wsreconnect: NewOverloadBackOff: delays must be positive")
	}
	return &windowBackOff{base: min, max: max, floor: min}
}

// windowBackOff draws the n-th delay uniformly from a window that doubles.
// Standard (fromZero): [base·2^(n-2), base·2^(n-1)), the first [0, base).
// Overload: [base·2^(n-1), base·2^(n+1)). Windows are capped at
// [max/2, max) and never start below floor.
type windowBackOff struct {
	base, max, floor time.Duration
	fromZero         bool
	n                int
}

func (b *windowBackOff) Reset() { b.n = 0 }

// scaled returns base·2^k, or max if that is larger.
func (b *windowBackOff) scaled(k int) time.Duration {
	if k < 62 && b.base <= b.max>>k {
		return b.base << k
	}
	return b.max
}

func (b *windowBackOff) NextBackOff() time.Duration {
	b.n++
	var lo, hi time.Duration
	if b.fromZero {
		hi = b.scaled(b.n - 1)
		lo = hi / 2
		if b.n == 1 {
			lo = 0
		}
	} else {
		lo = min(b.scaled(b.n-1), b.max/2)
		hi = b.scaled(b.n + 1)
	}
	lo = max(lo, b.floor)
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

// schedules holds a Conn's two schedules. It is owned by the supervisor.
//
// Every retry takes the standard schedule's next delay (so that a custom
// schedule's backoff.Stop counts every consecutive failure, whatever the
// decisions were); an overload retry waits at least the overload
// schedule's delay. The max delay caps both. A Retry-After hint replaces
// them: the client comes back when the server said (up to
// WithMaxRetryAfter).
type schedules struct {
	std           backoff.BackOff
	overload      windowBackOff
	maxDelay      time.Duration
	maxRetryAfter time.Duration
}

func newSchedules(cfg *config) *schedules {
	s := &schedules{
		maxDelay:      cfg.maxDelay,
		maxRetryAfter: cfg.maxRetryAfter,
		// The floor grows from max(1 s, initial delay), capped by the max
		// delay, but never below the documented 1 s.
		overload: windowBackOff{
			base:  max(minOverloadDelay, cfg.initialDelay),
			max:   max(cfg.maxDelay, minOverloadDelay),
			floor: minOverloadDelay,
		},
	}
	if cfg.newBackOff != nil {
		s.std = cfg.newBackOff()
	}
	if s.std == nil {
		s.std = NewBackOff(cfg.initialDelay, cfg.maxDelay)
	}
	return s
}

func (s *schedules) reset() {
	s.std.Reset()
	s.overload.Reset()
}

// next returns the delay before the next attempt, or false to stop.
func (s *schedules) next(dec Decision, retryAfter time.Duration) (time.Duration, bool) {
	if dec != Retry && dec != RetryOverload {
		return 0, false
	}
	delay := s.std.NextBackOff()
	if delay == backoff.Stop {
		return 0, false
	}
	delay = min(max(delay, 0), s.maxDelay)
	if dec == RetryOverload {
		delay = max(delay, s.overload.NextBackOff())
	}
	if retryAfter > 0 {
		// The server says when to come back, and the client does: not
		// sooner, and not later than a tenth more, spread over that tenth so
		// that clients told the same do not return together. It replaces
		// the schedules' own delay, so that a server that paces its clients
		// (see BENCHMARKS.md) can call them back sooner than the schedule
		// would; the overload floor stays.
		delay = min(retryAfter+rand.N(retryAfter/10+1), s.maxRetryAfter)
		delay = max(delay, retryAfter)
		if dec == RetryOverload {
			delay = max(delay, minOverloadDelay)
		}
	}
	return delay, true
}
