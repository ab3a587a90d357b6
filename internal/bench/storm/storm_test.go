package storm

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The simulation's copy of schedules.next lets a Retry-After replace the
// schedules' delay, as the library does: the client comes back then, up
// to a tenth later, whether the schedule's own delay was shorter or
// longer; after an overload, never within 1 s.
func TestLibraryRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		retryAfter, lo, hi time.Duration
	}{
		{7 * time.Second, 7 * time.Second, 7700 * time.Millisecond}, // the first overload window, [1, 4) s, is shorter
		{2 * time.Second, 2 * time.Second, 2200 * time.Millisecond}, // and longer, at times
		{300 * time.Millisecond, time.Second, time.Second},          // the overload floor
	} {
		d := disconnectRefused
		d.RetryAfter = tc.retryAfter
		for range 200 {
			if got := Library().New(nil).Next(d); got < tc.lo || got > tc.hi {
				t.Fatalf("delay %v with Retry-After %v, want [%v, %v]", got, tc.retryAfter, tc.lo, tc.hi)
			}
		}
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(100) // burst 10
	n := 0
	for range 50 {
		if l.Allow(0) {
			n++
		}
	}
	if n != 10 {
		t.Errorf("admitted %d at t=0, want the burst of 10", n)
	}
	n = 0
	for i := range 1000 {
		if l.Allow(time.Duration(i) * time.Millisecond) {
			n++
		}
	}
	if n < 95 || n > 111 {
		t.Errorf("admitted %d over 1 s at 100/s", n)
	}
	if !(*Limiter)(nil).Allow(0) || !NewLimiter(0).Allow(0) {
		t.Error("no limit must admit everyone")
	}
}

// The library's schedules on a simulated clock: the standard schedule
// spreads a drop uniformly over [0, 1 s), the overload one over [1, 4) s.
func TestSimulateLibrary(t *testing.T) {
	for _, tc := range []struct {
		cause  Cause
		lo, hi float64
	}{{Drop, 0, 1}, {TryAgainLater, 1, 4}} {
		m := Simulate(SimConfig{N: 5000, Cause: tc.cause}, Library()).Compute()
		if math.Abs(m.WindowStart-tc.lo) > 0.05 || math.Abs(m.WindowEnd-tc.hi) > 0.05 {
			t.Errorf("%s: first window [%.3f, %.3f], want [%v, %v)", tc.cause, m.WindowStart, m.WindowEnd, tc.lo, tc.hi)
		}
		if m.Back != 5000 || m.AttemptsMax != 1 {
			t.Errorf("%s: back %d, attempts max %d", tc.cause, m.Back, m.AttemptsMax)
		}
		if !m.PeakOK() {
			t.Errorf("%s: peak %d = %.2f× uniform", tc.cause, m.Peak, m.PeakRatio)
		}
	}
}

func TestSimulateCapacity(t *testing.T) {
	for _, v := range Variants() {
		m := Simulate(SimConfig{N: 2000, Cause: Drop, Capacity: 400, Horizon: 10 * time.Minute}, v).Compute()
		if m.Limit != 0.99*2000/400.0 {
			t.Errorf("%s: limit %v", v.Name, m.Limit)
		}
		if v.Name == "no jitter" {
			continue // in lockstep: most never get in
		}
		if m.Back != 2000 || m.T99 < m.Limit {
			t.Errorf("%s: back %d, t99 %.2f s below the limit %.2f s", v.Name, m.Back, m.T99, m.Limit)
		}
	}
}

// A small real storm: every client comes back, once, at the right time.
func TestRealQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("real sockets")
	}
	for _, c := range []Cause{Drop, TryAgainLater} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		o, err := RunReal(ctx, RealConfig{N: 40, Cause: c, Variant: Library(), Timeout: 20 * time.Second})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		m := o.Compute()
		if m.Back != 40 {
			t.Fatalf("%s: %d of 40 back", c, m.Back)
		}
		lo, hi := 0.0, 1.5
		if c == TryAgainLater {
			lo, hi = 1, 4.5
		}
		// The earliest first attempt itself, not the window's estimate
		// (which reaches 1 % of the window below the 1st percentile, so
		// below 1 s whenever one of 40 clients drew a delay near 1 s).
		earliest := slices.Min(filterNonNeg(o.First)).Seconds()
		if earliest < lo || m.WindowEnd > hi {
			t.Errorf("%s: first attempts from %.3f s, window [%.3f, %.3f] s", c, earliest, m.WindowStart, m.WindowEnd)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := RunReal(ctx, RealConfig{N: 30, Cause: Drop, Capacity: 30, Variant: Library(), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if m := o.Compute(); m.Back != 30 || m.AttemptsMean <= 1 {
		t.Errorf("at capacity: back %d, attempts mean %.2f", m.Back, m.AttemptsMean)
	}
	if _, err := RunReal(ctx, RealConfig{N: 1, Variant: Proposed()}); err == nil {
		t.Error("the proposed variant must be refused for real runs")
	}
}
