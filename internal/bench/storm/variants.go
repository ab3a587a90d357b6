// Package storm measures reconnect storms: N clients dropped at the same
// instant, (a) by a TCP drop (no close frame: 1006) or (b) by close code
// 1013 sent to everyone, come back to one server, which either accepts
// everyone or accepts at most C connections per second and refuses the
// rest with HTTP 503: without Retry-After (Plain), or, for the server-side
// recipe, with a Retry-After that gives each refused client a place in a
// queue (Paced, see Pacer) or the naive ceil(backlog ÷ C) (Backlog).
//
// Two harnesses share the metrics: Simulate runs the schedules on a
// simulated clock (the library's real schedule and policy code: NewBackOff,
// NewOverloadBackOff, DefaultPolicy), and RunReal runs real wsreconnect
// Conns against a real server on 127.0.0.1.
package storm

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// Cause is how the clients are dropped.
type Cause string

const (
	// Drop closes every TCP connection without a close frame: the client
	// sees EOF, reported as 1006 and retried on the standard schedule.
	Drop Cause = "drop"
	// TryAgainLater sends close code 1013 to everyone: retried on the
	// overload schedule.
	TryAgainLater Cause = "1013"
)

// The Disconnects a client sees, as the library builds them: an
// established connection that ended without a close frame, a close frame
// with 1013, and a handshake refused with 503 (no Retry-After).
var (
	disconnectDrop    = wsreconnect.Disconnect{Code: websocket.StatusAbnormalClosure, Err: io.EOF, Uptime: time.Hour}
	disconnect1013    = wsreconnect.Disconnect{Code: websocket.StatusTryAgainLater, Err: websocket.CloseError{Code: websocket.StatusTryAgainLater}, Uptime: time.Hour}
	disconnectRefused = wsreconnect.Disconnect{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("failed to WebSocket dial: expected handshake response status code 101 but got 503")}
)

func causeDisconnect(c Cause) wsreconnect.Disconnect {
	if c == TryAgainLater {
		return disconnect1013
	}
	return disconnectDrop
}

// A Schedule gives one client's delays: Next is called after each lost
// connection or failed attempt, with the Disconnect, and returns the wait
// before the next attempt.
type Schedule interface {
	Next(d wsreconnect.Disconnect) time.Duration
}

// Variant is a way of scheduling reconnects.
type Variant struct {
	Name string
	Desc string
	// New returns the schedule of one client. now is the clock it runs
	// on (simulated or real), for the schedules that read one.
	New func(now func() time.Time) Schedule
	// Options configure a real wsreconnect Conn to follow the same
	// schedule; nil for a variant that exists only in the simulation.
	Options func() []wsreconnect.Option
}

// Variants are the schedules compared: a client without jitter, a client
// using backoff/v4's default ExponentialBackOff, the library's default, and
// the proposed overload schedule (simulation only).
func Variants() []Variant {
	return []Variant{NoJitter(), BackoffV4(), Library(), Proposed()}
}

// VariantByName returns the variant called name.
func VariantByName(name string) (Variant, bool) {
	for _, v := range Variants() {
		if v.Name == name {
			return v, true
		}
	}
	return Variant{}, false
}

// single runs one backoff/v4 schedule for every kind of failure, as a
// client does that knows nothing about overload.
type single struct{ b backoff.BackOff }

func (s single) Next(wsreconnect.Disconnect) time.Duration { return s.b.NextBackOff() }

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

func exponential(now func() time.Time, randomization float64) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.RandomizationFactor = randomization
	b.Clock = clockFunc(now)
	b.Reset()
	return b
}

// retryEverything makes a real Conn run its standard schedule (the
// WithBackOff one) for every failure the default policy retries.
func retryEverything(d wsreconnect.Disconnect) wsreconnect.Decision {
	if wsreconnect.DefaultPolicy(d) == wsreconnect.Stop {
		return wsreconnect.Stop
	}
	return wsreconnect.Retry
}

// naiveOptions configure a real Conn as a naive client: one schedule for
// everything, and a max delay above backoff/v4's largest (60 s × 1.5) so
// that the library's cap never binds.
func naiveOptions(randomization float64) func() []wsreconnect.Option {
	return func() []wsreconnect.Option {
		return []wsreconnect.Option{
			wsreconnect.WithPolicy(retryEverything),
			wsreconnect.WithMaxDelay(91 * time.Second),
			wsreconnect.WithBackOff(func() backoff.BackOff { return exponential(time.Now, randomization) }),
		}
	}
}

// NoJitter is backoff/v4's default ExponentialBackOff without its jitter
// (500 ms, ×1.5, 60 s cap), used for every failure.
func NoJitter() Variant {
	return Variant{
		Name:    "no jitter",
		Desc:    "backoff/v4 ExponentialBackOff defaults with RandomizationFactor 0: 500 ms, ×1.5, cap 60 s, for every failure",
		New:     func(now func() time.Time) Schedule { return single{exponential(now, 0)} },
		Options: naiveOptions(0),
	}
}

// BackoffV4 is backoff.NewExponentialBackOff() (500 ms ±50 %, ×1.5,
// 60 s cap before jitter), used for every failure. Its MaxElapsedTime of
// 15 minutes never ends a storm run; a client that got backoff.Stop would
// count as given up.
func BackoffV4() Variant {
	return Variant{
		Name: "backoff/v4 ±50%",
		Desc: "backoff.NewExponentialBackOff(): 500 ms ±50 %, ×1.5, cap 60 s before jitter, for every failure",
		New: func(now func() time.Time) Schedule {
			return single{exponential(now, backoff.DefaultRandomizationFactor)}
		},
		Options: naiveOptions(backoff.DefaultRandomizationFactor),
	}
}

// libSchedule is what a Conn's supervisor does with its default options:
// DefaultPolicy picks the schedule, NewBackOff(1 s, 30 s) is the standard
// one (capped at the max delay) and NewOverloadBackOff(1 s, 30 s) the
// overload one, and a Retry-After replaces their delay. Next mirrors
// schedules.next in schedule.go line for line (it is unexported there);
// spread is its "up to a tenth" jitter above a Retry-After.
type libSchedule struct {
	std, overload backoff.BackOff
	maxDelay      time.Duration
	maxRetryAfter time.Duration
	spread        func(retryAfter time.Duration) time.Duration
}

func (s *libSchedule) Next(d wsreconnect.Disconnect) time.Duration {
	dec := wsreconnect.DefaultPolicy(d)
	if dec != wsreconnect.Retry && dec != wsreconnect.RetryOverload {
		panic("storm: the default policy stopped on " + d.String())
	}
	delay := s.std.NextBackOff()
	if delay == backoff.Stop {
		return backoff.Stop
	}
	delay = min(max(delay, 0), s.maxDelay)
	if dec == wsreconnect.RetryOverload {
		delay = max(delay, s.overload.NextBackOff())
	}
	if ra := d.RetryAfter; ra > 0 {
		// Retry-After replaces the schedules' delay, the overload floor
		// of 1 s kept.
		delay = max(min(ra+s.spread(ra), s.maxRetryAfter), ra)
		if dec == wsreconnect.RetryOverload {
			delay = max(delay, time.Second)
		}
	}
	return delay
}

// librarySpread is the library's jitter above a Retry-After: up to a
// tenth of it (schedule.go, schedules.next).
func librarySpread(ra time.Duration) time.Duration { return rand.N(ra/10 + 1) }

// Library is the library's default: 1006 on the standard schedule
// (uniform in [0, 1 s), then [1, 2), [2, 4) … up to 30 s), 1013 and 503 on
// the overload schedule ([1, 2) s, then [2, 4), [4, 8) … up to 30 s).
func Library() Variant {
	return Variant{
		Name: "library",
		Desc: "wsreconnect defaults: DefaultPolicy, NewBackOff(1 s, 30 s) for 1006, NewOverloadBackOff(1 s, 30 s) for 1013 and 503",
		New: func(func() time.Time) Schedule {
			return &libSchedule{
				std:           wsreconnect.NewBackOff(wsreconnect.DefaultInitialDelay, wsreconnect.DefaultMaxDelay),
				overload:      wsreconnect.NewOverloadBackOff(max(time.Second, wsreconnect.DefaultInitialDelay), max(time.Second, wsreconnect.DefaultMaxDelay)),
				maxDelay:      wsreconnect.DefaultMaxDelay,
				maxRetryAfter: wsreconnect.DefaultMaxRetryAfter,
				spread:        librarySpread,
			}
		},
		Options: func() []wsreconnect.Option { return nil },
	}
}

// overlapBackOff is the proposed overload schedule: the n-th delay is
// uniform in [f, 4f) with f = 2.5^(n-1) s: [1, 4), [2.5, 10), [6.25, 25),
// then [15, 30) once capped at 30 s. The floor still grows by more than
// double on each consecutive overload and never drops below 1 s, but the
// windows overlap, so a server at capacity sees no idle gap between the
// waves of refused clients.
type overlapBackOff struct {
	n int
}

func (b *overlapBackOff) Reset() { b.n = 0 }

func (b *overlapBackOff) NextBackOff() time.Duration {
	b.n++
	const maxDelay = 30 * time.Second
	f := time.Duration(float64(time.Second) * math.Pow(2.5, float64(min(b.n, 20)-1)))
	hi := min(4*f, maxDelay)
	lo := max(min(f, hi/2), time.Second)
	return lo + rand.N(hi-lo+1)
}

// Proposed is the change this benchmark proposes, prototyped here only: the
// library's standard schedule and the overlapping overload schedule of
// overlapBackOff.
func Proposed() Variant {
	return Variant{
		Name: "proposed",
		Desc: "library defaults, but overload delay n uniform in [2.5^(n-1), 4·2.5^(n-1)) s, capped at 30 s: [1, 4), [2.5, 10), [6.25, 25), [15, 30)",
		New: func(func() time.Time) Schedule {
			return &libSchedule{
				std:           wsreconnect.NewBackOff(wsreconnect.DefaultInitialDelay, wsreconnect.DefaultMaxDelay),
				overload:      &overlapBackOff{},
				maxDelay:      wsreconnect.DefaultMaxDelay,
				maxRetryAfter: wsreconnect.DefaultMaxRetryAfter,
				spread:        librarySpread,
			}
		},
	}
}
