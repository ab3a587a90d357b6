package storm

// The schedule design study (issue 5, BENCHMARKS.md section 3): candidate
// (standard, overload) pairs, simulated with the library's DefaultPolicy
// and libSchedule's copy of schedules.next, but with candidate windows in
// place of NewBackOff and NewOverloadBackOff. Simulation only: none of
// them is the library's code, and the library is not changed. The tables
// are printed by go run ./cmd/storm -study.

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

var _ backoff.BackOff = (*windowsBackOff)(nil)

func (b *windowsBackOff) Reset() { b.n = 0 }

func (b *windowsBackOff) NextBackOff() time.Duration {
	b.n++
	l := time.Duration(b.w.Lo(b.n) * float64(time.Second))
	h := time.Duration(b.w.Hi(b.n) * float64(time.Second))
	if h <= l {
		return l
	}
	return l + rand.N(h-l)
}

// BackOff returns a fresh backoff/v4 BackOff drawing from w.
func (w Windows) BackOff() backoff.BackOff { return &windowsBackOff{w: w} }

// p2 is 2^(n-1) for n ≥ 1, without overflow for large n.
func p2(n int) float64 { return math.Pow(2, float64(min(n, 62)-1)) }

// The study's base and cap: the library's defaults, 1 s and 30 s.
const studyCap = 30.0

// The standard schedules compared. The cap bounds the delay slept, jitter
// included, in every one of them, and none ever stops.
var (
	// StdEqual is the library's NewBackOff(1 s, 30 s): [0, 1) s, then
	// [2^(n-2), 2^(n-1)), capped window [15, 30).
	StdEqual = Windows{Name: "S-a equal jitter (library)",
		Desc: "[0, 1) s, then [2^(n-2), 2^(n-1)); once 2^(n-1) ≥ 30: [15, 30)",
		Lo: func(n int) float64 {
			if n == 1 {
				return 0
			}
			return min(p2(n), studyCap) / 2
		},
		Hi: func(n int) float64 { return min(p2(n), studyCap) }}
	// StdFull is full jitter: [0, min(30, 2^(n-1))).
	StdFull = Windows{Name: "S-b full jitter",
		Desc: "[0, min(30, 2^(n-1))) s",
		Lo:   func(int) float64 { return 0 },
		Hi:   func(n int) float64 { return min(p2(n), studyCap) }}
	// StdQuarter is full jitter with a floor of a quarter of the ceiling,
	// taken literally, so its first window is [0.25, 1) s.
	StdQuarter = Windows{Name: "S-c floor ¼ (literal)",
		Desc: "[min(30, 2^(n-1))/4, min(30, 2^(n-1))) s: first [0.25, 1)",
		Lo:   func(n int) float64 { return min(p2(n), studyCap) / 4 },
		Hi:   func(n int) float64 { return min(p2(n), studyCap) }}
	// StdQuarter0 is StdQuarter with the first window [0, 1) s.
	StdQuarter0 = Windows{Name: "S-c' floor ¼, first [0, 1)",
		Desc: "[0, 1) s, then [min(30, 2^(n-1))/4, min(30, 2^(n-1)))",
		Lo: func(n int) float64 {
			if n == 1 {
				return 0
			}
			return min(p2(n), studyCap) / 4
		},
		Hi: func(n int) float64 { return min(p2(n), studyCap) }}
)

// StdVariants are the standard schedules compared.
func StdVariants() []Windows { return []Windows{StdEqual, StdFull, StdQuarter, StdQuarter0} }

// ovlDoubling is an overload schedule with the least floors the issue
// allows: 2^(n-1) s, doubling until the cap's half (15 s, where the
// library's own schedule stops it), and hi(n) as the ceiling, at most the
// cap (30 s).
func ovlDoubling(name, desc string, hi func(n int) float64) Windows {
	lo := func(n int) float64 { return min(p2(n), studyCap/2) }
	return Windows{Name: name, Desc: desc, Lo: lo,
		Hi: func(n int) float64 { return max(min(hi(n), studyCap), lo(n)) }}
}

// windowsFrom is an overload schedule given by its first windows
// [lo[i], hi[i]) s; the later ones are [15, 30).
func windowsFrom(name, desc string, lo, hi []float64) Windows {
	return Windows{Name: name, Desc: desc,
		Lo: func(n int) float64 {
			if n <= len(lo) {
				return lo[n-1]
			}
			return studyCap / 2
		},
		Hi: func(n int) float64 {
			if n <= len(hi) {
				return hi[n-1]
			}
			return studyCap
		}}
}

// The overload schedules compared. Each keeps the rules: never
// sooner than 1 s, a floor that at least doubles per consecutive overload
// up to the cap's half, no delay above the cap (30 s).
var (
	// OvlDisjoint is the library's first overload schedule: [2^(n-1), 2^n).
	OvlDisjoint = ovlDoubling("O-a [2^(n-1), 2^n) (library before)",
		"[2^(n-1), 2^n) s; capped [15, 30)",
		func(n int) float64 { return 2 * p2(n) })
	// OvlLibrary is NewOverloadBackOff(1 s, 30 s) since this study:
	// [2^(n-1), 2^(n+1)), each window overlapping the next.
	OvlLibrary = ovlDoubling("O-b [2^(n-1), 2^(n+1)) (library)",
		"[2^(n-1), 2^(n+1)) s; capped [15, 30)",
		func(n int) float64 { return 4 * p2(n) })
	// OvlColleague is the earlier proposal: [2.5^(n-1), 4·2.5^(n-1)).
	OvlColleague = Windows{Name: "O-d [2.5^(n-1), 4·2.5^(n-1))",
		Desc: "[2.5^(n-1), 4·2.5^(n-1)) s, capped at 30: [1, 4), [2.5, 10), [6.25, 25), [15, 30) (the earlier proposal)",
		Lo: func(n int) float64 {
			f := math.Pow(2.5, float64(min(n, 20)-1))
			return max(min(f, min(4*f, studyCap)/2), 1)
		},
		Hi: func(n int) float64 { return min(4*math.Pow(2.5, float64(min(n, 20)-1)), studyCap) }}
	// OvlFitted is the overload schedule fitted to N/C = 10 s (the study's
	// recommendation for meeting the targets there): [1, 3), [2, 6.25),
	// [4, 4.5), [8, 16), then [15, 30). Its first window is 2 s, short
	// enough for the peak target at N = 10,000; the narrow third window
	// brings the clients refused on their second attempt back before
	// 1.25× the limit.
	OvlFitted = windowsFrom("O-f fitted to N/C = 10 s",
		"[1, 3), [2, 6.25), [4, 4.5), [8, 16) s, then [15, 30)",
		[]float64{1, 2, 4, 8}, []float64{3, 6.25, 4.5, 16})
	// OvlMinimax is the smallest worst case over N/C from 3 to 30 s that
	// a random search over the first five windows found (first window
	// [1, 5.04): too long for the peak target at N = 10,000).
	OvlMinimax = windowsFrom("O-m minimax (search)",
		"[1, 5.04), [2, 3.56), [4, 6.92), [8, 16.43), [15, 17.07) s, then [15, 30)",
		[]float64{1, 2, 4, 8, 15}, []float64{5.04, 3.56, 6.92, 16.43, 17.07})
)

// OvlCap is [2^(n-1), 2^(n-1) + w) with a fixed width w (a fraction of
// the cap), capped at 30.
func OvlCap(w float64) Windows {
	return ovlDoubling(fmt.Sprintf("O-c [2^(n-1), 2^(n-1) + %g)", w),
		fmt.Sprintf("[2^(n-1), 2^(n-1) + %g) s (%g = cap/%g); capped at 30", w, w, studyCap/w),
		func(n int) float64 { return p2(n) + w })
}

// OvlVariants are the overload schedules compared.
func OvlVariants() []Windows {
	return []Windows{OvlDisjoint, OvlLibrary, OvlCap(3), OvlCap(5), OvlCap(10), OvlColleague, OvlFitted, OvlMinimax}
}

// Pair runs a candidate (standard, overload) pair the way a Conn's
// supervisor does: DefaultPolicy picks the schedule, the standard delay is
// capped at the max delay, Retry-After is a floor (libSchedule.Next, a
// copy of schedules.next).
func Pair(std, ovl Windows) Variant {
	return Variant{
		Name: std.Name + " + " + ovl.Name,
		Desc: "standard " + std.Desc + "; overload " + ovl.Desc,
		New: func(func() time.Time) Schedule {
			return &libSchedule{
				std:           std.BackOff(),
				overload:      ovl.BackOff(),
				maxDelay:      wsreconnect.DefaultMaxDelay,
				maxRetryAfter: wsreconnect.DefaultMaxRetryAfter,
				spread:        librarySpread,
			}
		},
	}
}
