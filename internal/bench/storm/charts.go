package storm

import (
	"fmt"
	"slices"

	"github.com/wsreconnect/wsreconnect/internal/bench/svgchart"
)

// HistogramSeries turns an outcome's arrivals into a step series per
// 100 ms, from 0 to until seconds.
func HistogramSeries(o *Outcome, name string, until float64, dash bool) svgchart.Series {
	h := o.Histogram()
	s := svgchart.Series{Name: name, Kind: svgchart.Step, Width: Bin.Seconds(), Dash: dash}
	for i := 0; float64(i)*Bin.Seconds() < until; i++ {
		c := 0
		if i < len(h) {
			c = h[i]
		}
		s.X = append(s.X, float64(i)*Bin.Seconds())
		s.Y = append(s.Y, float64(c))
	}
	return s
}

// ArrivalChart plots the arrivals per 100 ms of several storms of n
// clients, with the uniform spread over 1 s as a reference; bins above
// yMax (when set) are clipped and named in the subtitle.
func ArrivalChart(title string, n int, outs []*Outcome, names []string, until, yMax float64, capacity float64) *svgchart.Chart {
	c := &svgchart.Chart{
		Title:  title,
		XLabel: "seconds since the drop",
		YLabel: "connection attempts per 100 ms",
		XMin:   0, XMax: until,
		YMin: 0, YMax: yMax,
	}
	var clipped string
	for i, o := range outs {
		s := HistogramSeries(o, names[i], until, false)
		c.Series = append(c.Series, s)
		if m := o.Compute(); yMax > 0 && float64(m.Peak) > yMax {
			clipped += fmt.Sprintf("; %s peaks at %d (off scale)", names[i], m.Peak)
		}
	}
	if capacity > 0 {
		c.Refs = append(c.Refs, svgchart.Ref{Label: fmt.Sprintf("server capacity %.0f per 100 ms", capacity*Bin.Seconds()), Value: capacity * Bin.Seconds(), Horizontal: true, Color: "#000"})
		c.Subtitle = fmt.Sprintf("N = %d clients, server admits %.0f/s (N/C = %.0f s), refuses the rest with 503%s", n, capacity, float64(n)/capacity, clipped)
	} else {
		u := float64(n) * Bin.Seconds()
		c.Refs = append(c.Refs, svgchart.Ref{Label: fmt.Sprintf("uniform over 1 s: %.0f", u), Value: u, Horizontal: true, Color: "#000"})
		c.Subtitle = fmt.Sprintf("N = %d clients, server admits everyone%s", n, clipped)
	}
	return c
}

// BackChart plots the share of clients back over time, with the limit
// 0.99·N/C and 1.25 times it.
func BackChart(title string, n int, capacity float64, outs []*Outcome, names []string, until float64) *svgchart.Chart {
	limit := 0.99 * float64(n) / capacity
	c := &svgchart.Chart{
		Title:    title,
		Subtitle: fmt.Sprintf("N = %d clients, server admits %.0f/s and refuses the rest with 503; limit 0.99·N/C = %.1f s", n, capacity, limit),
		XLabel:   "seconds since the drop",
		YLabel:   "clients back (%)",
		XMin:     0, XMax: until,
		YMin: 0, YMax: 100,
		LegendBottom: true,
		Refs: []svgchart.Ref{
			{Label: "99 %", Value: 99, Horizontal: true, Color: "#000"},
			{Label: "limit", Value: limit, Color: "#000"},
			{Label: "1.25 × limit", Value: 1.25 * limit, Color: "#d62728"},
		},
	}
	for i, o := range outs {
		back := filterNonNeg(o.Back)
		slices.Sort(back)
		s := svgchart.Series{Name: names[i], Kind: svgchart.Line}
		s.X, s.Y = append(s.X, 0), append(s.Y, 0)
		step := max(1, len(back)/400)
		for j := 0; j < len(back); j += step {
			s.X = append(s.X, back[j].Seconds())
			s.Y = append(s.Y, 100*float64(j+1)/float64(n))
		}
		if len(back) > 0 {
			s.X = append(s.X, back[len(back)-1].Seconds(), until)
			s.Y = append(s.Y, 100*float64(len(back))/float64(n), 100*float64(len(back))/float64(n))
		}
		c.Series = append(c.Series, s)
	}
	return c
}
