package storm

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The study's tables: go run ./cmd/storm -study (minutes; BENCHMARKS.md
// quotes them).

var studyNCs = []float64{3, 10, 30}

// studyBound is the least 99 %-back ÷ limit any schedule can reach: after
// a 1013 nobody may come back before 1 s, when the bucket holds C/10.
func studyBound(c Cause, nc float64) float64 {
	limit := 0.99 * nc
	if c == TryAgainLater {
		return (1 + limit - 0.1) / limit
	}
	return (limit - 0.1) / limit
}

func causeName(c Cause) string {
	if c == Drop {
		return "TCP drop"
	}
	return "1013"
}

type capCell struct {
	ratio float64
	max   int
	mean  float64
}

func (c capCell) String() string {
	r := "∞"
	if c.ratio >= 0 {
		r = fmt.Sprintf("%.2f×", c.ratio)
	}
	return fmt.Sprintf("%s, %d / %.2f", r, c.max, c.mean)
}

func capRun(v Variant, n int, c Cause, nc float64, refuse int) capCell {
	m := Simulate(SimConfig{N: n, Cause: c, Capacity: float64(n) / nc, RefuseStatus: refuse}, v).Compute()
	return capCell{ratio: m.T99Ratio, max: m.AttemptsMax, mean: m.AttemptsMean}
}

// peakRuns returns the median and worst peak ÷ uniform of runs storms, the
// median first window, the runs that missed the target, and the median
// peak ÷ (N/10).
func peakRuns(v Variant, n int, c Cause, runs int) (med, worst, window float64, missed int, per1s float64) {
	var ps, ws, p1 []float64
	for range runs {
		m := Simulate(SimConfig{N: n, Cause: c}, v).Compute()
		ps, ws, p1 = append(ps, m.PeakRatio), append(ws, m.Window), append(p1, m.PeakRatio1s)
		if !m.PeakOK() {
			missed++
		}
	}
	slices.Sort(ps)
	slices.Sort(ws)
	slices.Sort(p1)
	return ps[len(ps)/2], ps[len(ps)-1], ws[len(ws)/2], missed, p1[len(p1)/2]
}

func peakCell(v Variant, n int, c Cause) string {
	runs := map[int]int{2000: 20, 10000: 20, 100000: 3}[n]
	med, worst, _, missed, _ := peakRuns(v, n, c, runs)
	return fmt.Sprintf("%.2f / %.2f (%d/%d)", med, worst, missed, runs)
}

// StudyTables runs the simulations of the schedule study and returns its
// tables, in Markdown.
func StudyTables() string {
	start := time.Now()
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("Lower bound on 99 %% back ÷ limit (token bucket of C/10 full at the drop; nobody before 1 s after a 1013):\n\n")
	p("| cause | N/C = 3 s | 10 s | 30 s |\n|---|---|---|---|\n")
	for _, c := range []Cause{Drop, TryAgainLater} {
		p("| %s | %.2f× | %.2f× | %.2f× |\n", causeName(c), studyBound(c, 3), studyBound(c, 10), studyBound(c, 30))
	}

	p("\n### Standard schedules (overload schedule: the library's O-a)\n\n")
	p("Peak per 100 ms ÷ uniform over the first window, TCP drop, no limit: median / worst (runs that missed the target). ")
	p("At capacity: 99 %% back ÷ limit, attempts max / mean, N = 100,000; refusals are 503 (overload schedule) or 502 (standard schedule).\n\n")
	p("| standard | first window | peak N=2,000 | N=10,000 | N=100,000 | 503: drop 3 s | 503: drop 10 s | 503: drop 30 s | 502: drop 3 s | 502: drop 10 s | 502: drop 30 s | 502: 1013 3 s | 502: 1013 10 s | 502: 1013 30 s |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	const big = 100000
	for _, s := range StdVariants() {
		v := Pair(s, OvlLibrary)
		_, _, w, _, _ := peakRuns(v, big, Drop, 1)
		p("| %s: %s | %.2f s | %s | %s | %s", s.Name, s.Desc, w, peakCell(v, 2000, Drop), peakCell(v, 10000, Drop), peakCell(v, big, Drop))
		for _, nc := range studyNCs {
			p(" | %s", capRun(v, big, Drop, nc, 0))
		}
		for _, c := range []Cause{Drop, TryAgainLater} {
			for _, nc := range studyNCs {
				p(" | %s", capRun(v, big, c, nc, 502))
			}
		}
		p(" |\n")
	}

	p("\n### Overload schedules (standard schedule: the library's S-a)\n\n")
	p("Peak per 100 ms ÷ uniform over the first window after a 1013, no limit: median / worst (runs that missed the target); peak ÷ (N/10) is against a uniform spread over 1 s.\n\n")
	p("| overload | windows | first window | peak N=2,000 | N=10,000 | N=100,000 | peak ÷ (N/10), N=10,000 |\n|---|---|---|---|---|---|---|\n")
	for _, o := range OvlVariants() {
		v := Pair(StdEqual, o)
		_, _, w, _, _ := peakRuns(v, big, TryAgainLater, 1)
		_, _, _, _, p1 := peakRuns(v, 10000, TryAgainLater, 5)
		p("| %s | %s | %.2f s | %s | %s | %s | %.2f |\n", o.Name, o.Desc, w,
			peakCell(v, 2000, TryAgainLater), peakCell(v, 10000, TryAgainLater), peakCell(v, big, TryAgainLater), p1)
	}
	p("\nAt capacity, N = 100,000, 503 refusals: 99 %% back ÷ limit, attempts max / mean (target ≤ 1.25×, ≤ 6).\n\n")
	p("| overload | drop 3 s | drop 10 s | drop 30 s | 1013 3 s | 1013 10 s | 1013 30 s |\n|---|---|---|---|---|---|---|\n")
	p("| lower bound | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× |\n",
		studyBound(Drop, 3), studyBound(Drop, 10), studyBound(Drop, 30), studyBound(TryAgainLater, 3), studyBound(TryAgainLater, 10), studyBound(TryAgainLater, 30))
	for _, o := range OvlVariants() {
		v := Pair(StdEqual, o)
		p("| %s", o.Name)
		for _, c := range []Cause{Drop, TryAgainLater} {
			for _, nc := range studyNCs {
				p(" | %s", capRun(v, big, c, nc, 0))
			}
		}
		p(" |\n")
	}

	p("\nN/C = 10 s at smaller N: 99 %% back ÷ limit, median / worst of the runs (runs over 1.25×), attempts max.\n\n")
	p("| overload | drop N=2,000 (20 runs) | 1013 N=2,000 | drop N=10,000 (5 runs) | 1013 N=10,000 |\n|---|---|---|---|---|\n")
	for _, o := range OvlVariants() {
		v := Pair(StdEqual, o)
		p("| %s", o.Name)
		for _, nr := range [][2]int{{2000, 20}, {10000, 5}} {
			for _, c := range []Cause{Drop, TryAgainLater} {
				var rs []float64
				am, over := 0, 0
				for range nr[1] {
					m := Simulate(SimConfig{N: nr[0], Cause: c, Capacity: float64(nr[0]) / 10}, v).Compute()
					rs = append(rs, m.T99Ratio)
					am = max(am, m.AttemptsMax)
					if m.T99Ratio > 1.25 || m.T99Ratio < 0 {
						over++
					}
				}
				slices.Sort(rs)
				p(" | %.2f× / %.2f× (%d/%d), %d", rs[len(rs)/2], rs[len(rs)-1], over, nr[1], am)
			}
		}
		p(" |\n")
	}

	sweep := []float64{3, 4, 5, 6, 8, 9, 10, 11, 12, 15, 20, 25, 30}
	p("\nSweep of N/C (seconds), N = 20,000: 99 %% back ÷ limit, TCP drop / 1013.\n\n| overload | worst | median |")
	for _, nc := range sweep {
		p(" %g s |", nc)
	}
	p("\n|---|---|---|%s\n", strings.Repeat("---|", len(sweep)))
	for _, o := range OvlVariants() {
		v := Pair(StdEqual, o)
		var all []float64
		cells := ""
		for _, nc := range sweep {
			d := capRun(v, 20000, Drop, nc, 0).ratio
			a := capRun(v, 20000, TryAgainLater, nc, 0).ratio
			all = append(all, d, a)
			cells += fmt.Sprintf(" %.2f / %.2f |", d, a)
		}
		slices.Sort(all)
		p("| %s | %.2f× | %.2f× |%s\n", o.Name, all[len(all)-1], all[len(all)/2], cells)
	}
	p("\nThe fitted pair (S-a, O-f) at N/C = 10 s, N = 100,000, with every attempt delayed by a further uniform [0, latency) (dial and handshake time):\n\n")
	p("| latency | TCP drop | 1013 |\n|---|---|---|\n")
	for _, lat := range []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond} {
		v := Pair(StdEqual, OvlFitted)
		p("| %v", lat)
		for _, c := range []Cause{Drop, TryAgainLater} {
			m := Simulate(SimConfig{N: big, Cause: c, Capacity: big / 10, Latency: lat}, v).Compute()
			p(" | %s", capCell{m.T99Ratio, m.AttemptsMax, m.AttemptsMean})
		}
		p(" |\n")
	}
	p("\n(%v)\n", time.Since(start).Round(time.Second))
	return b.String()
}
