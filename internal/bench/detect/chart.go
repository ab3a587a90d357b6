package detect

import (
	"fmt"
	"math"

	"github.com/wsreconnect/wsreconnect/internal/bench/svgchart"
)

// Chart plots each mode's detection ratios as a cumulative distribution,
// with the targets for the median (1.05) and the maximum (1.2).
func Chart(results []Result) *svgchart.Chart {
	c := &svgchart.Chart{
		Title:  "Dead-peer detection: time to detect ÷ (interval + timeout)",
		XLabel: "detection time ÷ (interval + timeout)",
		YLabel: "connections (cumulative %)",
		YMin:   0, YMax: 100,
		Refs: []svgchart.Ref{
			{Label: "ideal 1.0", Value: 1.0, Color: "#000", LabelLeft: true},
			{Label: "median target 1.05", Value: 1.05, Color: "#2ca02c"},
			{Label: "max target 1.2", Value: 1.2, Color: "#d62728"},
		},
		LegendBottom: true,
	}
	lo, hi := 0.95, 1.25
	for _, r := range results {
		if len(r.Ratios) > 0 {
			lo = math.Min(lo, r.Ratios[0]-0.02)
			hi = math.Max(hi, r.Ratios[len(r.Ratios)-1]+0.02)
		}
		if c.Subtitle == "" {
			c.Subtitle = fmt.Sprintf("%d connections per mode, heartbeat interval %s, timeout %s, on 127.0.0.1", r.N, r.Interval, r.Timeout)
		}
	}
	c.XMin, c.XMax = math.Floor(lo*20)/20, math.Ceil(hi*20)/20
	for _, r := range results {
		s := svgchart.Series{Name: fmt.Sprintf("%s (median %.3f, max %.3f)", r.Mode, r.Median, r.Max), Kind: svgchart.Points}
		for i, x := range r.Ratios {
			s.X = append(s.X, x)
			s.Y = append(s.Y, 100*float64(i+1)/float64(len(r.Ratios)))
		}
		c.Series = append(c.Series, s)
	}
	return c
}
