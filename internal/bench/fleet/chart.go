package fleet

import (
	"fmt"

	"github.com/wsreconnect/wsreconnect/internal/bench/svgchart"
)

// Chart plots the handshakes per 100 ms of the fleets, with the limiter's
// rate per 100 ms for the limited ones.
func Chart(results []*Result) *svgchart.Chart {
	c := &svgchart.Chart{
		Title:  "A fleet of Conns in one process dropped at once: handshakes per 100 ms",
		XLabel: "seconds since the drop",
		YLabel: "handshakes per 100 ms",
		YMin:   0,
	}
	until := 0.0
	for _, r := range results {
		until = max(until, float64(len(r.Per100ms))/10+0.5)
	}
	c.XMin, c.XMax = 0, until
	for _, r := range results {
		s := svgchart.Series{Name: Name(r), Kind: svgchart.Step, Width: 0.1}
		for i := 0; float64(i)/10 < until; i++ {
			v := 0
			if i < len(r.Per100ms) {
				v = r.Per100ms[i]
			}
			s.X = append(s.X, float64(i)/10)
			s.Y = append(s.Y, float64(v))
		}
		c.Series = append(c.Series, s)
		if r.Limited {
			c.Refs = append(c.Refs, svgchart.Ref{Label: fmt.Sprintf("limiter rate: %.0f per 100 ms", r.Rate/10), Value: r.Rate / 10, Horizontal: true, Color: "#000"})
		}
	}
	if len(results) > 0 {
		c.Subtitle = fmt.Sprintf("N = %d Conns, heartbeat off, the server drops every TCP connection and accepts everyone back", results[0].N)
	}
	return c
}

// Name describes a fleet's limiter.
func Name(r *Result) string {
	if !r.Limited {
		return "no limiter"
	}
	return fmt.Sprintf("shared rate.Limiter, %.0f/s, burst %d", r.Rate, r.Burst)
}
