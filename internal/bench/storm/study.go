package storm

// The schedule design study (BENCHMARKS.md, section 3, issue 5): candidate
// pairs of (standard, overload) schedules, simulated with the library's
// policy and a copy of schedules.next, but with the candidate windows in
// place of NewBackOff and NewOverloadBackOff. Simulation only: none of
// them is the library's code, and the library is not changed.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/wsreconnect/wsreconnect"
)

// Windows is a schedule written as its windows: the n-th delay (n = 1, 2,
// …, counting the decisions on this schedule since the last reset) is
// drawn uniformly from [Lo(n), Hi(n)) seconds.
type Windows struct {
	Name string
	Desc string
	Lo   func(n int) float64
	Hi   func(n int) float64
}

// windowsBackOff runs a Windows as a backoff/v4 BackOff.
type windowsBackOff struct {
	w Windows
	n int
}

func (b *windowsBackOff) Reset() { b.n = 0 }

func (b *windowsBackOff) NextBackOff() time.Duration {
	b.n++
	lo, hi := b.w.Lo(b.n), b.w.Hi(b.n)
	l := time.Duration(lo * float64(time.Second))
	h := time.Duration(hi * float64(time.Second))
	if h <= l {
		return l
	}
	return l + rand.N(h-l)
}

// Draw returns one delay of the n-th window (for tests).
func (w Windows) Draw(n int) time.Duration {
	b := &windowsBackOff{w: w, n: n - 1}
	return b.NextBackOff()
}

// p2 is 2^(n-1) for n ≥ 1, without overflow for large n.
func p2(n int) float64 { return math.Pow(2, float64(min(n, 62)-1)) }

// The standard schedules compared (base 1 s, cap 30 s; the cap bounds
// the delay slept, jitter included, in every one of them).
var (
	// StdEqual is the library's NewBackOff: [0, 1) then [2^(n-2), 2^(n-1)),
	// capped window [15, 30).
	StdEqual = Windows{Name: "equal", Desc: "library NewBackOff: [0, 1) s, then [2^(n-2), 2^(n-1)), capped [15, 30)",
		Lo: func(n int) float64 {
			if n == 1 {
				return 0
			}
			return min(p2(n), 30) / 2
		},
		Hi: func(n int) float64 { return min(p2(n), 30) }}
	// StdFull is full jitter: [0, min(30, 2^(n-1))).
	StdFull = Windows{Name: "full", Desc: "full jitter: [0, min(30, 2^(n-1))) s",
		Lo: func(int) float64 { return 0 },
		Hi: func(n int) float64 { return min(p2(n), 30) }}
	// StdQuarter is full jitter with a floor of a quarter of the ceiling,
	// taken literally: [2^(n-1)/4, 2^(n-1)), so its first window is
	// [0.25, 1) s.
	StdQuarter = Windows{Name: "quarter", Desc: "[2^(n-1)/4, min(30, 2^(n-1))) s, first [0.25, 1)",
		Lo: func(n int) float64 { return min(p2(n), 30) / 4 },
		Hi: func(n int) float64 { return min(p2(n), 30) }}
	// StdQuarter0 is StdQuarter with the first window [0, 1) s.
	StdQuarter0 = Windows{Name: "quarter0", Desc: "[0, 1) s, then [2^(n-1)/4, min(30, 2^(n-1)))",
		Lo: func(n int) float64 {
			if n == 1 {
				return 0
			}
			return min(p2(n), 30) / 4
		},
		Hi: func(n int) float64 { return min(p2(n), 30) }}
)

// Overload schedules. Each keeps the rules: never sooner than 1 s,
// a floor that at least doubles per consecutive overload until it reaches
// the cap's half (where the library's own schedule stops it), and no delay
// above the cap (30 s).
func ovlDoubling(name, desc string, hi func(n int) float64) Windows {
	lo := func(n int) float64 { return min(p2(n), 15) }
	return Windows{Name: name, Desc: desc, Lo: lo, Hi: func(n int) float64 { return max(min(hi(n), 30), lo(n)) }}
}

var (
	// OvlLibrary is NewOverloadBackOff: [2^(n-1), 2^n), capped [15, 30).
	OvlLibrary = ovlDoubling("O-a 2^(n-1)..2^n", "library NewOverloadBackOff: [2^(n-1), 2^n) s, capped [15, 30)",
		func(n int) float64 { return 2 * p2(n) })
	// OvlOverlap is [2^(n-1), 2^(n+1)): each window overlaps the next.
	OvlOverlap = ovlDoubling("O-b 2^(n-1)..2^(n+1)", "[2^(n-1), 2^(n+1)) s, capped at 30",
		func(n int) float64 { return 4 * p2(n) })
	// OvlColleague is the earlier proposal: [2.5^(n-1), 4·2.5^(n-1)).
	OvlColleague = Windows{Name: "O-d 2.5^(n-1)..4·2.5^(n-1)", Desc: "[2.5^(n-1), 4·2.5^(n-1)) s, capped [15, 30) (the earlier proposal)",
		Lo: func(n int) float64 {
			f := math.Pow(2.5, float64(min(n, 20)-1))
			return max(min(f, min(4*f, 30)/2), 1)
		},
		Hi: func(n int) float64 { return min(4*math.Pow(2.5, float64(min(n, 20)-1)), 30) }}
)

// OvlRatio is [2^(n-1), r·2^(n-1)), capped.
func OvlRatio(r float64) Windows {
	return ovlDoubling(fmt.Sprintf("2^(n-1)..%g·2^(n-1)", r), fmt.Sprintf("[2^(n-1), %g·2^(n-1)) s, capped at 30", r),
		func(n int) float64 { return r * p2(n) })
}

// OvlCap is [2^(n-1), 2^(n-1) + w) with a fixed width w (a fraction of
// the cap), capped at 30.
func OvlCap(w float64) Windows {
	return ovlDoubling(fmt.Sprintf("O-c 2^(n-1)..+%g", w), fmt.Sprintf("[2^(n-1), 2^(n-1) + %g) s (%g = cap/%g), capped at 30", w, w, 30/w),
		func(n int) float64 { return p2(n) + w })
}

// OvlFirst is a first window [1, 1 + w1) and then [2^(n-1), r·2^(n-1)).
func OvlFirst(w1, r float64) Windows {
	return ovlDoubling(fmt.Sprintf("[1,%g) then 2^(n-1)..%g·2^(n-1)", 1+w1, r), fmt.Sprintf("[1, %g) s, then [2^(n-1), %g·2^(n-1)), capped at 30", 1+w1, r),
		func(n int) float64 {
			if n == 1 {
				return 1 + w1
			}
			return r * p2(n)
		})
}

// Pair is a candidate (standard, overload) pair.
func Pair(std, ovl Windows) Variant {
	return Variant{
		Name: std.Name + " + " + ovl.Name,
		Desc: "standard " + std.Desc + "; overload " + ovl.Desc,
		New: func(func() time.Time) Schedule {
			return &libSchedule{
				std:           &windowsBackOff{w: std},
				overload:      &windowsBackOff{w: ovl},
				maxDelay:      wsreconnect.DefaultMaxDelay,
				maxRetryAfter: wsreconnect.DefaultMaxRetryAfter,
				spread:        librarySpread,
			}
		},
	}
}

var _ backoff.BackOff = (*windowsBackOff)(nil)
