package storm

import (
	"math"
	"slices"
	"time"
)

// Bin is the width of the arrival histogram.
const Bin = 100 * time.Millisecond

// Outcome is what the server saw during one storm, relative to the instant
// of the drop.
type Outcome struct {
	N        int
	Cause    Cause
	Capacity float64
	Variant  string
	Real     bool
	Server   Server // how refused handshakes are answered

	Arrivals []time.Duration // every attempt, in order
	First    []time.Duration // each client's first attempt (-1: none)
	Back     []time.Duration // each client's admission (-1: never)
	Attempts []int           // each client's attempts, the admitted one included
	GaveUp   int             // clients whose schedule said Stop

	// notBefore is, per client, when the Retry-After of its last refusal
	// lets it back (0: none); Early counts the attempts that came sooner.
	notBefore []time.Duration
	Early     int
}

func newOutcome(n int, cause Cause, capacity float64, variant string, real bool) *Outcome {
	o := &Outcome{N: n, Cause: cause, Capacity: capacity, Variant: variant, Real: real,
		First: make([]time.Duration, n), Back: make([]time.Duration, n), Attempts: make([]int, n)}
	for i := range o.First {
		o.First[i], o.Back[i] = -1, -1
	}
	return o
}

// attempt records client's attempt at t, and the Retry-After the server
// answered it with (0: none).
func (o *Outcome) attempt(client int, t time.Duration, admitted bool, retryAfter time.Duration) {
	o.Arrivals = append(o.Arrivals, t)
	if o.notBefore == nil {
		o.notBefore = make([]time.Duration, o.N)
	}
	if t < o.notBefore[client] {
		o.Early++
	}
	o.notBefore[client] = 0
	if !admitted && retryAfter > 0 {
		o.notBefore[client] = t + retryAfter
	}
	if o.First[client] < 0 {
		o.First[client] = t
	}
	o.Attempts[client]++
	if admitted && o.Back[client] < 0 {
		o.Back[client] = t
	}
}

func (o *Outcome) finish() {
	slices.Sort(o.Arrivals)
}

// Histogram counts arrivals per Bin from t = 0.
func (o *Outcome) Histogram() []int {
	var h []int
	for _, t := range o.Arrivals {
		i := int(t / Bin)
		if t < 0 {
			i = 0
		}
		for len(h) <= i {
			h = append(h, 0)
		}
		h[i]++
	}
	return h
}

// Metrics are the figures of one storm.
type Metrics struct {
	Variant  string  `json:"variant"`
	Cause    Cause   `json:"cause"`
	N        int     `json:"n"`
	Capacity float64 `json:"capacity_per_s"` // 0: unlimited
	Real     bool    `json:"real"`
	Server   Server  `json:"server,omitempty"` // "": 503 without Retry-After

	// The first window is the span of the clients' first attempts,
	// estimated robustly from their 1st and 99th percentiles (a uniform
	// spread over [a, b) gives [a, b); a few stragglers do not stretch it).
	WindowStart float64 `json:"first_window_start_s"`
	WindowEnd   float64 `json:"first_window_end_s"`
	Window      float64 `json:"first_window_s"`
	// Peak is the most arrivals in one 100 ms bin; Uniform is what a bin
	// holds when N arrivals spread evenly over the first window (N when
	// the window is under 100 ms); Uniform1s, over 1 s.
	Peak        int     `json:"peak_per_100ms"`
	PeakAt      float64 `json:"peak_at_s"`
	Uniform     float64 `json:"uniform_per_100ms"`
	PeakRatio   float64 `json:"peak_over_uniform"`
	PeakRatio1s float64 `json:"peak_over_uniform_1s"`

	// T99 is when 99 % of the clients were admitted again; Limit is the
	// least possible with the server at capacity, 0.99·N/C.
	Back     int     `json:"back"`
	T99      float64 `json:"t99_s"` // -1 if fewer than 99 % came back
	Limit    float64 `json:"limit_s"`
	T99Ratio float64 `json:"t99_over_limit"` // -1 if fewer than 99 % came back

	// AdmitPeak1s is the most admissions in any 1 s window (sliding);
	// a token bucket of C/s with a burst of C/10 allows 1.1·C.
	AdmitPeak1s int `json:"admit_peak_1s"`

	AttemptsMean float64 `json:"attempts_mean"`
	AttemptsP99  int     `json:"attempts_p99"`
	AttemptsMax  int     `json:"attempts_max"`
	GaveUp       int     `json:"gave_up"`
	// Early counts the attempts that came back sooner than the server's
	// Retry-After said.
	Early int `json:"early_retries"`
}

// Compute derives the metrics.
func (o *Outcome) Compute() Metrics {
	m := Metrics{Variant: o.Variant, Cause: o.Cause, N: o.N, Capacity: o.Capacity, Real: o.Real, Server: o.Server, GaveUp: o.GaveUp, Early: o.Early}
	first := filterNonNeg(o.First)
	if len(first) > 0 {
		slices.Sort(first)
		q := func(p float64) float64 { return first[int(p*float64(len(first)-1))].Seconds() }
		lo, hi := q(0.01), q(0.99)
		m.Window = (hi - lo) / 0.98
		m.WindowStart, m.WindowEnd = max(0, lo-0.01*m.Window), hi+0.01*m.Window
	}
	for i, c := range o.Histogram() {
		if c > m.Peak {
			m.Peak, m.PeakAt = c, (time.Duration(i) * Bin).Seconds()
		}
	}
	n := float64(o.N)
	m.Uniform = n * min(1, Bin.Seconds()/max(m.Window, 1e-9))
	m.PeakRatio = float64(m.Peak) / m.Uniform
	m.PeakRatio1s = float64(m.Peak) / (n * Bin.Seconds())

	back := filterNonNeg(o.Back)
	m.Back = len(back)
	slices.Sort(back)
	need := int(math.Ceil(0.99 * n))
	m.AdmitPeak1s = MaxInWindow(back, time.Second)
	m.T99 = -1
	if need > 0 && len(back) >= need {
		m.T99 = back[need-1].Seconds()
	}
	if o.Capacity > 0 {
		m.Limit = 0.99 * n / o.Capacity
		m.T99Ratio = -1
		if m.T99 >= 0 {
			m.T99Ratio = m.T99 / m.Limit
		}
	}
	att := slices.Clone(o.Attempts)
	slices.Sort(att)
	sum := 0
	for _, a := range att {
		sum += a
	}
	if len(att) > 0 {
		m.AttemptsMean = float64(sum) / float64(len(att))
		m.AttemptsP99 = att[max(0, int(math.Ceil(0.99*float64(len(att))))-1)]
		m.AttemptsMax = att[len(att)-1]
	}
	return m
}

// PeakTarget is the bound on Peak/Uniform for n clients.
func PeakTarget(n int) float64 {
	if n >= 10000 {
		return 1.15
	}
	return 1.5
}

// PeakOK reports whether the peak target holds: a first window of at least
// 1 s (0.95 s as estimated from the percentiles, which a uniform spread
// over exactly 1 s passes), and a peak within PeakTarget of a uniform
// spread over it.
func (m Metrics) PeakOK() bool {
	return m.Window >= 0.95 && m.PeakRatio <= PeakTarget(m.N)
}

// CapacityOK reports whether the at-capacity targets hold: 99 % back within
// 1.25× the limit, and at most 6 attempts per client (the worst client).
func (m Metrics) CapacityOK() bool {
	return m.T99Ratio >= 0 && m.T99Ratio <= 1.25 && m.AttemptsMax <= 6
}

// MaxInWindow is the most of the sorted times ts that fall in any window
// [t, t+w).
func MaxInWindow(ts []time.Duration, w time.Duration) int {
	n, _ := BusiestWindow(ts, w)
	return n
}

// BusiestWindow is MaxInWindow, and the first time in the busiest window.
func BusiestWindow(ts []time.Duration, w time.Duration) (int, time.Duration) {
	best, j := 0, 0
	var at time.Duration
	for i := range ts {
		for ts[i]-ts[j] >= w {
			j++
		}
		if i-j+1 > best {
			best, at = i-j+1, ts[j]
		}
	}
	return best, at
}

// PacedOK reports whether the server-paced targets hold: 99 % back within
// 1.1× the limit, and at most 3 attempts per client (the worst client).
func (m Metrics) PacedOK() bool {
	return m.T99Ratio >= 0 && m.T99Ratio <= 1.1 && m.AttemptsMax <= 3
}

func filterNonNeg(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, 0, len(ds))
	for _, d := range ds {
		if d >= 0 {
			out = append(out, d)
		}
	}
	return out
}
