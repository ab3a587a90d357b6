package storm

import (
	"testing"
	"time"

	"github.com/wsreconnect/wsreconnect"
)

// The study's copies of the library's schedules draw from the same
// windows as NewBackOff and NewOverloadBackOff.
func TestStudyWindowsMatchLibrary(t *testing.T) {
	for _, tc := range []struct {
		w   Windows
		lib func() interface{ NextBackOff() time.Duration }
	}{
		{StdEqual, func() interface{ NextBackOff() time.Duration } {
			return wsreconnect.NewBackOff(time.Second, 30*time.Second)
		}},
		{OvlLibrary, func() interface{ NextBackOff() time.Duration } {
			return wsreconnect.NewOverloadBackOff(time.Second, 30*time.Second)
		}},
	} {
		const runs = 2000
		for n := 1; n <= 8; n++ {
			lo, hi := tc.w.Lo(n), tc.w.Hi(n)
			seenLo, seenHi := hi, lo
			for range runs {
				b := tc.lib()
				var d time.Duration
				for range n {
					d = b.NextBackOff()
				}
				s := d.Seconds()
				if s < lo || s >= hi {
					t.Fatalf("%s: library delay %d = %v outside the study's [%v, %v)", tc.w.Name, n, d, lo, hi)
				}
				seenLo, seenHi = min(seenLo, s), max(seenHi, s)
			}
			if tol := 0.01 * (hi - lo); seenLo > lo+tol || seenHi < hi-tol {
				t.Errorf("%s: library delay %d spans [%.3f, %.3f], the study's window is [%v, %v)", tc.w.Name, n, seenLo, seenHi, lo, hi)
			}
		}
	}
}

// Every candidate keeps the rules.
func TestStudyRules(t *testing.T) {
	for _, w := range StdVariants() {
		for n := 1; n <= 70; n++ {
			if w.Lo(n) < 0 || w.Hi(n) > 30 || w.Hi(n) < w.Lo(n) {
				t.Errorf("%s: window %d is [%v, %v)", w.Name, n, w.Lo(n), w.Hi(n))
			}
		}
	}
	for _, w := range OvlVariants() {
		for n := 1; n <= 70; n++ {
			lo, hi := w.Lo(n), w.Hi(n)
			if lo < 1 || lo < min(p2(n), 15) || hi > 30 || hi <= lo {
				t.Errorf("%s: window %d is [%v, %v)", w.Name, n, lo, hi)
			}
			if n > 1 && lo < min(2*w.Lo(n-1), 15) {
				t.Errorf("%s: floor %d = %v is less than double the last, %v", w.Name, n, lo, w.Lo(n-1))
			}
			if d := w.BackOff(); d.NextBackOff() < time.Second {
				t.Errorf("%s: first delay under 1 s", w.Name)
			}
		}
	}
}

// A refusal with 502 is retried on the standard schedule; latency shifts
// every attempt.
func TestSimulateRefuseStatusLatency(t *testing.T) {
	m := Simulate(SimConfig{N: 1000, Cause: Drop, Capacity: 200, RefuseStatus: 502}, Pair(StdEqual, OvlLibrary)).Compute()
	if m.Back != 1000 || m.AttemptsMean <= 1 {
		t.Errorf("502: back %d, attempts mean %.2f", m.Back, m.AttemptsMean)
	}
	// After a 1013 the first retry is on the overload schedule, [1, 4) s;
	// a 503 keeps the next one there, at least 2 s later, while a 502
	// moves it to the standard schedule, [0, 1) s later. So before 3 s a
	// client makes at most one attempt after a 503, often two after a 502.
	before3s := func(refuse int) int {
		o := Simulate(SimConfig{N: 2000, Cause: TryAgainLater, Capacity: 200, RefuseStatus: refuse}, Library())
		n := 0
		for _, a := range o.Arrivals {
			if a < 3*time.Second {
				n++
			}
		}
		return n
	}
	if n503, n502 := before3s(0), before3s(502); n503 > 2000 || n502 <= n503 {
		t.Errorf("attempts before 3 s: %d with 503, %d with 502", n503, n502)
	}
	m = Simulate(SimConfig{N: 5000, Cause: Drop, Latency: 200 * time.Millisecond}, Library()).Compute()
	if m.WindowEnd < 1.1 || m.WindowEnd > 1.3 {
		t.Errorf("latency 200 ms: first window ends at %.3f s", m.WindowEnd)
	}
}
