//go:build !js

package wsreconnect

// The schedules: NewBackOff's doubling windows, NewOverloadBackOff's
// floors, schedules.next with custom backoffs and Retry-After, and
// WithBackOff end to end on a fake clock.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// stdWindow is the documented window [lo, hi) of the n-th delay (n from 1)
// of NewBackOff(initial, max): [0, initial), then [initial, 2·initial),
// [2·initial, 4·initial), …, and [max/2, max) once 2^k·initial reaches max.
func stdWindow(n int, initial, max time.Duration) (lo, hi time.Duration) {
	hi = min(initial, max)
	for i := 1; i < n && hi < max; i++ {
		if hi > max/2 {
			hi = max
		} else {
			hi *= 2
		}
	}
	if n == 1 {
		return 0, hi
	}
	return hi / 2, hi
}

// overloadWindow is the documented window [lo, hi) of the n-th delay of
// NewOverloadBackOff(floor, max): [floor·2^(n-1), floor·2^(n+1)), each end
// capped (the low end at max/2, the top at max), but never below floor.
func overloadWindow(n int, floor, maxDelay time.Duration) (lo, hi time.Duration) {
	_, top := stdWindow(n+2, floor, maxDelay)
	_, f := stdWindow(n, floor, maxDelay)
	lo = max(min(f, maxDelay/2), floor)
	return lo, max(top, lo)
}

// inWindow reports whether d lies in [lo, hi); an empty window (a cap of
// 1 ns) holds lo alone.
func inWindow(d, lo, hi time.Duration) bool {
	return d >= lo && (d < hi || d == lo)
}

// draws returns seqs sequences of n delays from fresh backoffs.
func draws(newBackOff func() backoff.BackOff, seqs, n int) [][]time.Duration {
	out := make([][]time.Duration, seqs)
	for s := range out {
		b := newBackOff()
		out[s] = make([]time.Duration, n)
		for i := range out[s] {
			out[s][i] = b.NextBackOff()
		}
	}
	return out
}

func TestNewBackOffWindows(t *testing.T) {
	for _, tc := range []struct{ initial, max time.Duration }{
		{time.Second, 30 * time.Second}, // the defaults
		{time.Second, 32 * time.Second},
		{100 * time.Millisecond, 1300 * time.Millisecond},
		{3, 1000}, // nanoseconds: the bounds are hit exactly
		{time.Millisecond, 24 * time.Hour},
		{time.Minute, time.Minute},
		{2 * time.Second, time.Second}, // initial above max: max still caps
	} {
		t.Run(fmt.Sprintf("%v,%v", tc.initial, tc.max), func(t *testing.T) {
			const seqs, n = 3000, 40
			all := draws(func() backoff.BackOff { return NewBackOff(tc.initial, tc.max) }, seqs, n)
			seen := make([]struct{ lo, hi time.Duration }, n)
			for i := range seen {
				seen[i].lo, seen[i].hi = math.MaxInt64, -1
			}
			for _, seq := range all {
				for i, d := range seq {
					lo, hi := stdWindow(i+1, tc.initial, tc.max)
					if !inWindow(d, lo, hi) {
						t.Fatalf("delay %d = %v, outside [%v, %v)", i+1, d, lo, hi)
					}
					if i > 0 {
						if plo, _ := stdWindow(i, tc.initial, tc.max); d < plo {
							t.Fatalf("delay %d = %v, below window %d, which starts at %v", i+1, d, i, plo)
						}
					}
					seen[i].lo, seen[i].hi = min(seen[i].lo, d), max(seen[i].hi, d)
				}
			}
			// The draws cover each window, not one corner of it: with 3000
			// draws, missing a tenth at either end has probability 0.9^3000.
			for i, s := range seen {
				lo, hi := stdWindow(i+1, tc.initial, tc.max)
				tenth := (hi - lo) / 10
				if s.lo > lo+tenth || s.hi < hi-1-tenth {
					t.Errorf("delay %d: draws in [%v, %v], window [%v, %v) not covered", i+1, s.lo, s.hi, lo, hi)
				}
			}
		})
	}
}

// The doc of NewBackOff: "the later windows never overlap, so the delays
// of a flapping server only grow". Each delay is at least the one before,
// until both are drawn from the final window [max/2, max].
func TestNewBackOffDelaysOnlyGrow(t *testing.T) {
	for _, tc := range []struct{ initial, max time.Duration }{
		{time.Second, 32 * time.Second}, // max = initial·2^5
		{time.Second, 30 * time.Second}, // the defaults
		{100 * time.Millisecond, 1300 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%v,%v", tc.initial, tc.max), func(t *testing.T) {
			const seqs, n = 20000, 12
			capHi := tc.max
			shrank := 0
			var example string
			for _, seq := range draws(func() backoff.BackOff { return NewBackOff(tc.initial, tc.max) }, seqs, n) {
				for i := 1; i < n; i++ {
					if _, hi := stdWindow(i+1, tc.initial, tc.max); hi == capHi {
						break // from the capped windows on, the spread matters more than the order
					}
					if seq[i] < seq[i-1] {
						if shrank == 0 {
							lo, hi := stdWindow(i+1, tc.initial, tc.max)
							plo, phi := stdWindow(i, tc.initial, tc.max)
							example = fmt.Sprintf("delay %d = %v (window [%v, %v)) after delay %d = %v (window [%v, %v))",
								i+1, seq[i], lo, hi, i, seq[i-1], plo, phi)
						}
						shrank++
					}
				}
			}
			if shrank > 0 {
				t.Errorf("the delay shrank in %d of %d sequences, e.g. %s", shrank, seqs, example)
			}
		})
	}
}

// chiSquareBound returns x such that a chi-square variable with k degrees
// of freedom exceeds x with probability below p, from the Chernoff bound
// P(X ≥ zk) ≤ (z·e^(1-z))^(k/2) for z > 1.
func chiSquareBound(k int, p float64) float64 {
	logTail := func(z float64) float64 { return float64(k) / 2 * (math.Log(z) + 1 - z) }
	lo, hi := 1.0, 100.0
	for range 200 {
		mid := (lo + hi) / 2
		if logTail(mid) > math.Log(p) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi * float64(k)
}

// chiSquare draws n values from draw, expected uniform on [0, width), into
// k equal buckets and returns Pearson's statistic.
func chiSquare(n, k int, width time.Duration, draw func() time.Duration) (float64, error) {
	counts := make([]int, k)
	for range n {
		d := draw()
		if d < 0 || d >= width {
			return 0, fmt.Errorf("draw %v outside [0, %v)", d, width)
		}
		counts[int(int64(d)*int64(k)/int64(width))]++
	}
	want := float64(n) / float64(k)
	x := 0.0
	for _, c := range counts {
		x += (float64(c) - want) * (float64(c) - want) / want
	}
	return x, nil
}

// The first window spreads clients dropped together uniformly over
// [0, initial) (RFC 6455 §7.2.3).
func TestNewBackOffFirstWindowIsUniform(t *testing.T) {
	const n, k = 100_000, 20
	bound := chiSquareBound(k-1, 1e-9) // about 90; a uniform draw fails with p < 1e-9
	first := func() time.Duration { return NewBackOff(time.Second, 30*time.Second).NextBackOff() }

	x, err := chiSquare(n, k, time.Second, first)
	if err != nil {
		t.Fatal(err)
	}
	if x > bound {
		t.Errorf("chi-square %.1f over %d buckets exceeds %.1f: the first delay is not uniform on [0, 1s)", x, k, bound)
	}

	// The check has teeth: a draw over nine tenths of the window, or one
	// that favours the low half, fails it by far.
	for name, skewed := range map[string]func() time.Duration{
		"nine tenths": func() time.Duration { return rand.N(900 * time.Millisecond) },
		"low half x2": func() time.Duration {
			if rand.N(3) == 0 {
				return 500*time.Millisecond + rand.N(500*time.Millisecond)
			}
			return rand.N(500 * time.Millisecond)
		},
	} {
		if x, _ := chiSquare(n, k, time.Second, skewed); x <= bound {
			t.Errorf("%s: chi-square %.1f does not exceed %.1f", name, x, bound)
		}
	}
}

func TestNewOverloadBackOffFloors(t *testing.T) {
	// The spec in numbers: 1 s, 2 s, 4 s, 8 s, then the cap's half.
	b := NewOverloadBackOff(time.Second, 30*time.Second)
	wantFloors := []time.Duration{1, 2, 4, 8, 15, 15, 15}
	for i, f := range wantFloors {
		lo, hi := overloadWindow(i+1, time.Second, 30*time.Second)
		if lo != f*time.Second || hi != min(4*(time.Second<<i), 30*time.Second) {
			t.Fatalf("window %d: [%v, %v], want floor %v", i+1, lo, hi, f*time.Second)
		}
		if d := b.NextBackOff(); !inWindow(d, lo, hi) {
			t.Fatalf("delay %d = %v outside [%v, %v)", i+1, d, lo, hi)
		}
	}

	for _, tc := range []struct{ floor, max time.Duration }{
		{time.Second, 30 * time.Second},
		{time.Second, 24 * time.Hour},
		{10 * time.Second, 100 * time.Second},
		{time.Second, time.Second},
	} {
		t.Run(fmt.Sprintf("%v,%v", tc.floor, tc.max), func(t *testing.T) {
			for _, seq := range draws(func() backoff.BackOff { return NewOverloadBackOff(tc.floor, tc.max) }, 2000, 30) {
				for i, d := range seq {
					lo, hi := overloadWindow(i+1, tc.floor, tc.max)
					if !inWindow(d, lo, hi) {
						t.Fatalf("delay %d = %v, outside [%v, %v)", i+1, d, lo, hi)
					}
				}
			}
		})
	}
}

// Many calls with an enormous cap: no overflow, no panic, every delay in
// [0, max], and at the cap in [max/2, max].
func TestBackOffNoOverflow(t *testing.T) {
	huge := time.Duration(math.MaxInt64)
	for _, tc := range []struct {
		name       string
		newBackOff func() backoff.BackOff
		max        time.Duration
	}{
		{"NewBackOff(1ns, MaxInt64)", func() backoff.BackOff { return NewBackOff(1, huge) }, huge},
		{"NewBackOff(1s, MaxInt64)", func() backoff.BackOff { return NewBackOff(time.Second, huge) }, huge},
		{"NewBackOff(1s, 24h)", func() backoff.BackOff { return NewBackOff(time.Second, 24*time.Hour) }, 24 * time.Hour},
		{"NewBackOff(MaxInt64, MaxInt64)", func() backoff.BackOff { return NewBackOff(huge, huge) }, huge},
		{"NewOverloadBackOff(1s, 24h)", func() backoff.BackOff { return NewOverloadBackOff(time.Second, 24*time.Hour) }, 24 * time.Hour},
		{"NewOverloadBackOff(1s, 2^61)", func() backoff.BackOff { return NewOverloadBackOff(time.Second, 1<<61) }, 1 << 61},
		{"NewOverloadBackOff(1s, 2^62)", func() backoff.BackOff { return NewOverloadBackOff(time.Second, 1<<62) }, 1 << 62},
		{"NewOverloadBackOff(1ns, MaxInt64)", func() backoff.BackOff { return NewOverloadBackOff(1, huge) }, huge},
		{"NewOverloadBackOff(1s, MaxInt64)", func() backoff.BackOff { return NewOverloadBackOff(time.Second, huge) }, huge},
	} {
		for _, calls := range []int{100, 10_000} {
			t.Run(fmt.Sprintf("%s x%d", tc.name, calls), func(t *testing.T) {
				b := tc.newBackOff()
				i := 0
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("call %d panicked: %v", i+1, r)
					}
				}()
				var last time.Duration
				for i = 0; i < calls; i++ {
					last = b.NextBackOff()
					if last < 0 || last > tc.max {
						t.Fatalf("call %d: %v outside [0, %v]", i+1, last, tc.max)
					}
				}
				if last < tc.max/2 {
					t.Fatalf("after %d calls: %v, below the final window [%v, %v]", calls, last, tc.max/2, tc.max)
				}
			})
		}
	}
}

// fixedBackOff always returns the same value: a custom schedule that
// misbehaves.
type fixedBackOff time.Duration

func (f fixedBackOff) NextBackOff() time.Duration { return time.Duration(f) }
func (fixedBackOff) Reset()                       {}

// testSchedules builds the schedules a Conn with these options would use.
func testSchedules(t *testing.T, opts ...Option) (*schedules, *config) {
	t.Helper()
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	return newSchedules(&cfg), &cfg
}

func TestSchedulesStopFromCustomBackOff(t *testing.T) {
	s, _ := testSchedules(t, WithBackOff(func() backoff.BackOff {
		return backoff.WithMaxRetries(NewBackOff(time.Second, 30*time.Second), 2)
	}))
	for i := range 2 {
		d, ok := s.next(Retry, 0)
		if lo, hi := stdWindow(i+1, time.Second, 30*time.Second); !ok || !inWindow(d, lo, hi) {
			t.Fatalf("retry %d: %v, %v; want a delay in [%v, %v)", i+1, d, ok, lo, hi)
		}
	}
	if d, ok := s.next(Retry, 0); ok || d != 0 {
		t.Fatalf("third retry: %v, %v; want backoff.Stop to stop", d, ok)
	}
	// backoff.Stop stops even with a Retry-After hint.
	if d, ok := s.next(Retry, 10*time.Second); ok || d != 0 {
		t.Fatalf("with Retry-After: %v, %v; want stop", d, ok)
	}
	// It stops overload retries too: the custom schedule counts every
	// consecutive failure, whatever the decisions were.
	if d, ok := s.next(RetryOverload, 0); ok || d != 0 {
		t.Fatalf("overload after the custom schedule stopped: %v, %v; want stop", d, ok)
	}
	// Stop, and anything a custom policy makes up, stops.
	for _, dec := range []Decision{Stop, Decision(-1), Decision(3), Decision(1 << 20)} {
		if d, ok := s.next(dec, time.Second); ok || d != 0 {
			t.Errorf("next(%v) = %v, %v; want stop", dec, d, ok)
		}
	}
}

func TestSchedulesCapCustomBackOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    fixedBackOff
		want time.Duration
	}{
		{"above the max delay", fixedBackOff(time.Hour), 30 * time.Second},
		{"the largest duration", fixedBackOff(math.MaxInt64), 30 * time.Second},
		{"negative, not Stop", fixedBackOff(-5 * time.Second), 0},
		{"the smallest duration", fixedBackOff(math.MinInt64), 0},
		{"within", fixedBackOff(7 * time.Second), 7 * time.Second},
	} {
		s, _ := testSchedules(t, WithMaxDelay(30*time.Second), WithBackOff(func() backoff.BackOff { return tc.f }))
		for range 3 {
			if d, ok := s.next(Retry, 0); !ok || d != tc.want {
				t.Errorf("%s: next = %v, %v; want %v", tc.name, d, ok, tc.want)
			}
		}
	}
	// A function that returns nil gets the standard schedule.
	s, _ := testSchedules(t, WithBackOff(func() backoff.BackOff { return nil }))
	if d, ok := s.next(Retry, 0); !ok || !inWindow(d, 0, time.Second) {
		t.Fatalf("nil backoff: %v, %v; want the first window [0, 1s)", d, ok)
	}
}

// Retry-After is a floor, spread by up to a tenth, and the max Retry-After
// bounds it.
func TestSchedulesRetryAfter(t *testing.T) {
	for _, dec := range []Decision{Retry, RetryOverload} {
		t.Run(dec.String(), func(t *testing.T) {
			s, _ := testSchedules(t, WithMaxDelay(30*time.Second), WithMaxRetryAfter(5*time.Minute))
			const ra = 100 * time.Second
			lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
			for range 5000 {
				d, ok := s.next(dec, ra)
				if !ok || d < ra || d > ra+ra/10 {
					t.Fatalf("next(%v, %v) = %v, %v; want [%v, %v]", dec, ra, d, ok, ra, ra+ra/10)
				}
				lo, hi = min(lo, d), max(hi, d)
			}
			// Spread over the tenth, not all at once.
			if lo > ra+ra/100 || hi < ra+ra/10-ra/100 {
				t.Fatalf("delays in [%v, %v]: not spread over [%v, %v]", lo, hi, ra, ra+ra/10)
			}

			// A hint below the schedule's own delay sets the delay too: a
			// server that paces its clients calls them back when it says,
			// however many times they were refused (never under the
			// overload floor).
			s, _ = testSchedules(t, WithMaxDelay(30*time.Second))
			for i := range 8 {
				s.next(dec, 0) // the schedules grow
				d, _ := s.next(dec, 2*time.Second)
				if d < 2*time.Second || d > 2*time.Second+200*time.Millisecond {
					t.Fatalf("delay %d with Retry-After 2s: %v, want [2s, 2.2s]", i+1, d)
				}
			}
			if d, _ := s.next(dec, 100*time.Millisecond); dec == RetryOverload && d != time.Second || dec == Retry && d > 110*time.Millisecond {
				t.Fatalf("Retry-After 100ms: %v", d)
			}

			// The jitter never goes past the max Retry-After.
			s, _ = testSchedules(t, WithMaxRetryAfter(102*time.Second))
			hi = 0
			for range 1000 {
				d, _ := s.next(dec, ra)
				if d < ra || d > 102*time.Second {
					t.Fatalf("next(%v, %v) with max Retry-After 102s = %v", dec, ra, d)
				}
				hi = max(hi, d)
			}
			if hi != 102*time.Second {
				t.Fatalf("largest delay %v: the jitter never reached the clamp", hi)
			}
		})
	}

	// End to end from the header: "3600" with a max of one minute waits
	// exactly one minute.
	s, cfg := testSchedules(t, WithMaxRetryAfter(time.Minute))
	resp := &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"3600"}}}
	d := dialEnd(errors.New("503"), resp, testNow, cfg.maxRetryAfter)
	if d.RetryAfter != time.Minute {
		t.Fatalf("RetryAfter %v, want the max of 1m", d.RetryAfter)
	}
	if delay, ok := s.next(DefaultPolicy(d), d.RetryAfter); !ok || delay != time.Minute {
		t.Fatalf("delay %v, %v; want exactly 1m", delay, ok)
	}
}

// WithMaxDelay: "The overload schedule never waits less than 1 s, even when
// the max delay is lower." Decision RetryOverload: "at least 1 s".
func TestOverloadFloorWithSmallMaxDelay(t *testing.T) {
	for _, maxDelay := range []time.Duration{time.Millisecond, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second} {
		t.Run(maxDelay.String(), func(t *testing.T) {
			s, _ := testSchedules(t, WithInitialDelay(time.Millisecond), WithMaxDelay(maxDelay))
			for i := range 10 {
				d, ok := s.next(RetryOverload, 0)
				if !ok || d < minOverloadDelay {
					t.Fatalf("overload delay %d with max delay %v: %v, want at least %v", i+1, maxDelay, d, minOverloadDelay)
				}
			}
		})
	}
}

// WithMaxDelay caps the delay slept on the overload schedule too (only a
// Retry-After floor may exceed it); the overload floor of 1 s stays, and
// the delays are still spread when the cap allows it.
func TestOverloadDelaysCappedByMaxDelay(t *testing.T) {
	for _, tc := range []struct {
		initial, max time.Duration
		lo, hi       time.Duration // every delay in [lo, hi]
	}{
		{2 * time.Second, 2 * time.Second, time.Second, 2 * time.Second},
		{10 * time.Second, 10 * time.Second, 5 * time.Second, 10 * time.Second},
		{time.Second, 3 * time.Second, time.Second, 3 * time.Second},
		{100 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second},
	} {
		t.Run(fmt.Sprintf("initial %v, max %v", tc.initial, tc.max), func(t *testing.T) {
			s, _ := testSchedules(t, WithInitialDelay(tc.initial), WithMaxDelay(tc.max))
			seen := map[time.Duration]bool{}
			for i := range 200 {
				d, ok := s.next(RetryOverload, 0)
				if !ok || d < tc.lo || d > tc.hi {
					t.Fatalf("overload delay %d: %v, %v; want in [%v, %v]", i+1, d, ok, tc.lo, tc.hi)
				}
				seen[d] = true
			}
			if tc.lo < tc.hi && len(seen) < 100 {
				t.Fatalf("%d distinct delays in 200: not spread", len(seen))
			}
			// A Retry-After floor is honoured beyond the cap.
			if d, _ := s.next(RetryOverload, 20*time.Second); d < 20*time.Second {
				t.Fatalf("with Retry-After 20s: %v", d)
			}
		})
	}
}

func TestSchedulesResetRestartsWindows(t *testing.T) {
	s, _ := testSchedules(t, WithInitialDelay(time.Second), WithMaxDelay(30*time.Second))
	for round := range 200 {
		for range 10 {
			if _, ok := s.next(Retry, 0); !ok {
				t.Fatal("stopped")
			}
			if _, ok := s.next(RetryOverload, 0); !ok {
				t.Fatal("stopped")
			}
		}
		// Without a reset, the next delays would be in [15s, 30s].
		s.reset()
		if d, _ := s.next(Retry, 0); !inWindow(d, 0, time.Second) {
			t.Fatalf("round %d: first retry after reset %v, want [0, 1s)", round, d)
		}
		if d, _ := s.next(RetryOverload, 0); !inWindow(d, time.Second, 4*time.Second) {
			t.Fatalf("round %d: first overload after reset %v, want [1s, 4s)", round, d)
		}
		s.reset()
	}
	// The standard schedule alone, as a backoff.BackOff.
	b := NewBackOff(time.Second, 30*time.Second)
	for range 10 {
		b.NextBackOff()
	}
	b.Reset()
	for i := range 6 {
		lo, hi := stdWindow(i+1, time.Second, 30*time.Second)
		if d := b.NextBackOff(); !inWindow(d, lo, hi) {
			t.Fatalf("after Reset, delay %d = %v outside [%v, %v)", i+1, d, lo, hi)
		}
	}
}

// WithBackOff end to end: at most two retries against a server that always
// answers 502, so Dial fails after exactly three attempts.
func TestWithBackOffMaxRetriesEndToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Reject(502, ""))
		defer srv.Close()
		rec := &recorder{}
		start := time.Now()
		// A schedule that never stops fails the test, not the run: the
		// eleventh attempt fails for good (zero delays would never let the
		// fake clock reach a deadline).
		pipe, calls := srv.PipeDial(), 0
		dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			if calls++; calls > 10 {
				return nil, nil, &url.Error{Op: "parse", URL: "ws://pipe.test/", Err: errors.New("too many attempts")}
			}
			return pipe(ctx)
		}
		c, err := Dial(t.Context(), dial, rec.option(), WithBackOff(func() backoff.BackOff {
			return backoff.WithMaxRetries(NewBackOff(time.Second, 30*time.Second), 2)
		}))
		if err == nil {
			c.CloseNow()
			t.Fatal("Dial succeeded against a server that always answers 502")
		}
		var se *StopError
		if !errors.As(err, &se) {
			t.Fatalf("Dial error %v (%T), want a *StopError", err, err)
		}
		if n := srv.Attempts.Load(); n != 3 {
			t.Fatalf("%d attempts, want 3", n)
		}
		d := se.Disconnect
		if d.HTTPStatus != 502 || d.Attempt != 3 || d.Reconnect || d.Decision != Stop || d.Delay != 0 {
			t.Fatalf("final disconnect %+v", d)
		}
		// It says that the schedule gave up, not that a 502 stops.
		if !errors.Is(err, ErrRetriesExhausted) || !strings.Contains(err.Error(), "(retries exhausted); the last failure: the server refused the handshake: 502") {
			t.Fatalf("Dial error %q, want it to say that the retries ran out, and the last failure", err)
		}
		ds := rec.all()
		if len(ds) != 3 {
			t.Fatalf("%d disconnects reported, want 3", len(ds))
		}
		var slept time.Duration
		for i, d := range ds[:2] {
			lo, hi := stdWindow(i+1, time.Second, 30*time.Second)
			if !d.Reconnect || d.Decision != Retry || d.Attempt != i+1 || !inWindow(d.Delay, lo, hi) {
				t.Errorf("disconnect %d: %+v", i+1, d)
			}
			slept += d.Delay
		}
		if el := time.Since(start); el != slept {
			t.Errorf("Dial took %v, want the two delays, %v", el, slept)
		}
		time.Sleep(time.Hour)
		if n := srv.Attempts.Load(); n != 3 {
			t.Fatalf("%d attempts after Dial failed", n)
		}
	})
}

// WithBackOff(backoff.WithMaxRetries(b, n)) gives up after n retries,
// whatever mix of decisions the consecutive failures were: overload
// decisions (503, 1013) count as well as plain ones.
func TestCustomScheduleStopsAfterFailuresOfAnyKind(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script []wstest.Step
	}{
		{"503", []wstest.Step{wstest.Reject(503, "")}},
		{"1013", []wstest.Step{wstest.CloseWith(websocket.StatusTryAgainLater, "busy")}},
		{"mixed", []wstest.Step{
			wstest.Reject(503, "1"), wstest.CloseWith(websocket.StatusTryAgainLater, ""),
			wstest.Drop(), wstest.Reject(429, ""), wstest.Reject(502, ""),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(tc.script...)
				defer srv.Close()
				rec := &recorder{}
				// A schedule that never stops fails the test, not the run.
				pipe, calls := srv.PipeDial(), 0
				dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
					if calls++; calls > 20 {
						return nil, nil, &url.Error{Op: "parse", URL: "ws://pipe.test/", Err: errors.New("too many attempts")}
					}
					return pipe(ctx)
				}
				const retries = 3
				c, err := Dial(t.Context(), dial, rec.option(), WithHeartbeat(0, 0), WithBackOff(func() backoff.BackOff {
					return backoff.WithMaxRetries(NewBackOff(time.Second, 30*time.Second), retries)
				}))
				if err == nil { // a connection came up, and failed later
					<-c.Done()
					err = c.Err()
				}
				var se *StopError
				if !errors.As(err, &se) {
					t.Fatalf("error %v (%T), want a *StopError", err, err)
				}
				if n := srv.Attempts.Load(); n != retries+1 {
					t.Fatalf("%d attempts, want %d: %v", n, retries+1, rec.all())
				}
				ds := rec.all()
				last := ds[len(ds)-1]
				if last.Reconnect || last.Decision != Stop || last.Attempt != retries+1 {
					t.Fatalf("last disconnect %+v", last)
				}
			})
		})
	}
}
