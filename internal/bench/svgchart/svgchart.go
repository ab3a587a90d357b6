// Package svgchart draws the benchmark charts as plain SVG: an x/y plot
// with axes, ticks, a legend, step lines, bars and points, and reference
// lines. It has no dependency beyond the standard library, so that the
// benchmark programs can render their own output.
package svgchart

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"strconv"
)

// Kind is how a Series is drawn.
type Kind int

const (
	// Step draws a histogram outline: Y[i] holds over [X[i], X[i]+Width).
	Step Kind = iota
	// Line joins the points.
	Line
	// Points draws a dot per point.
	Points
	// Bars fills Y[i] over [X[i], X[i]+Width).
	Bars
)

// Series is one data set.
type Series struct {
	Name  string
	Kind  Kind
	Color string // an SVG colour; a palette colour when empty
	X, Y  []float64
	Width float64 // bin width for Step and Bars
	Dash  bool
}

// Ref is a horizontal (Horizontal true) or vertical reference line.
type Ref struct {
	Label      string
	Value      float64
	Horizontal bool
	Color      string
	From, To   float64 // extent along the other axis; the whole plot when equal
	LabelLeft  bool    // a vertical line's label on its left
}

// Chart is one plot.
type Chart struct {
	Title, Subtitle string
	XLabel, YLabel  string
	Width, Height   int // pixels; 760×360 when zero
	XMin, XMax      float64
	YMin, YMax      float64 // computed from the data when XMin == XMax (resp. Y)
	Series          []Series
	Refs            []Ref
	LegendBottom    bool // legend at the bottom right instead of the top right
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

const (
	marginL = 64
	marginR = 16
	marginT = 48
	marginB = 48
)

// SVG renders the chart.
func (c *Chart) SVG() []byte {
	w, h := c.Width, c.Height
	if w == 0 {
		w = 760
	}
	if h == 0 {
		h = 360
	}
	xmin, xmax, ymin, ymax := c.bounds()
	pw := float64(w - marginL - marginR)
	ph := float64(h - marginT - marginB)
	px := func(x float64) float64 { return marginL + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return marginT + ph - (y-ymin)/(ymax-ymin)*ph }
	clampX := func(x float64) float64 { return math.Max(xmin, math.Min(xmax, x)) }
	clampY := func(y float64) float64 { return math.Max(ymin, math.Min(ymax, y)) }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	text(&b, float64(w)/2, 18, "middle", "font-size=\"15\" font-weight=\"bold\"", c.Title)
	if c.Subtitle != "" {
		text(&b, float64(w)/2, 35, "middle", `fill="#555"`, c.Subtitle)
	}

	// Grid and ticks.
	for _, t := range ticks(xmin, xmax, 10) {
		x := px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x, marginT, x, marginT+ph)
		text(&b, x, marginT+ph+16, "middle", "", fmtTick(t))
	}
	for _, t := range ticks(ymin, ymax, 6) {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", marginL, y, marginL+pw, y)
		text(&b, marginL-6, y+4, "end", "", fmtTick(t))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", marginL, marginT, pw, ph)
	text(&b, marginL+pw/2, float64(h)-10, "middle", "", c.XLabel)
	fmt.Fprintf(&b, `<text transform="translate(16,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", marginT+ph/2, esc(c.YLabel))

	// Data, clipped to the plot area.
	fmt.Fprintf(&b, `<clipPath id="plot"><rect x="%d" y="%d" width="%.1f" height="%.1f"/></clipPath>`+"\n", marginL, marginT, pw, ph)
	b.WriteString(`<g clip-path="url(#plot)">` + "\n")
	for i, s := range c.Series {
		col := color(s.Color, i)
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="6,4"`
		}
		switch s.Kind {
		case Step:
			var pts bytes.Buffer
			for j := range s.X {
				x0, x1, y := px(s.X[j]), px(s.X[j]+s.Width), py(clampY(s.Y[j]))
				fmt.Fprintf(&pts, "%.1f,%.1f %.1f,%.1f ", x0, y, x1, y)
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`+"\n", col, dash, pts.String())
		case Line:
			var pts bytes.Buffer
			for j := range s.X {
				fmt.Fprintf(&pts, "%.1f,%.1f ", px(s.X[j]), py(clampY(s.Y[j])))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`+"\n", col, dash, pts.String())
		case Points:
			for j := range s.X {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s" fill-opacity="0.7"/>`+"\n", px(s.X[j]), py(clampY(s.Y[j])), col)
			}
		case Bars:
			for j := range s.X {
				x0, x1 := px(s.X[j]), px(s.X[j]+s.Width)
				y0, y1 := py(clampY(s.Y[j])), py(clampY(0))
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.6"/>`+"\n", x0, y0, math.Max(x1-x0-0.5, 0.5), y1-y0, col)
			}
		}
	}
	b.WriteString("</g>\n")
	for i, r := range c.Refs {
		col := r.Color
		if col == "" {
			col = "#444"
		}
		if r.Horizontal {
			from, to := xmin, xmax
			if r.From != r.To {
				from, to = clampX(r.From), clampX(r.To)
			}
			y := py(clampY(r.Value))
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="3,3"/>`+"\n", px(from), y, px(to), y, col)
			text(&b, px(to)-4, y-4, "end", `fill="`+col+`"`, r.Label)
		} else {
			x := px(clampX(r.Value))
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="3,3"/>`+"\n", x, marginT, x, marginT+ph, col)
			if r.LabelLeft {
				text(&b, x-3, marginT+12+float64(i%4)*13, "end", `fill="`+col+`"`, r.Label)
			} else {
				text(&b, x+3, marginT+12+float64(i%4)*13, "start", `fill="`+col+`"`, r.Label)
			}
		}
	}

	// Legend, top right (or bottom right).
	ly := float64(marginT) + 8
	if c.LegendBottom {
		named := 0
		for _, s := range c.Series {
			if s.Name != "" {
				named++
			}
		}
		ly = float64(marginT) + ph - 8 - 16*float64(named)
	}
	longest := 0
	for _, s := range c.Series {
		longest = max(longest, len([]rune(s.Name)))
	}
	for i, s := range c.Series {
		if s.Name == "" {
			continue
		}
		x := marginL + pw - 36 - 6.6*float64(longest)
		col := color(s.Color, i)
		if s.Kind == Points {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", x+10, ly+6, col)
		} else {
			dash := ""
			if s.Dash {
				dash = ` stroke-dasharray="5,3"`
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/>`+"\n", x, ly+6, x+20, ly+6, col, dash)
		}
		text(&b, x+26, ly+10, "start", "", s.Name)
		ly += 16
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// WriteFile renders the chart to path.
func (c *Chart) WriteFile(path string) error {
	return os.WriteFile(path, c.SVG(), 0o644)
}

func (c *Chart) bounds() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax, ymin, ymax = c.XMin, c.XMax, c.YMin, c.YMax
	if xmin == xmax {
		xmin, xmax = math.Inf(1), math.Inf(-1)
		for _, s := range c.Series {
			for _, x := range s.X {
				xmin = math.Min(xmin, x)
				xmax = math.Max(xmax, x+s.Width)
			}
		}
	}
	if ymin == ymax {
		ymin, ymax = 0, math.Inf(-1)
		for _, s := range c.Series {
			for _, y := range s.Y {
				ymin = math.Min(ymin, y)
				ymax = math.Max(ymax, y)
			}
		}
		for _, r := range c.Refs {
			if r.Horizontal {
				ymax = math.Max(ymax, r.Value)
			}
		}
		ymax *= 1.08
	}
	if math.IsInf(xmin, 0) || math.IsInf(xmax, 0) || xmin >= xmax {
		xmin, xmax = 0, 1
	}
	if math.IsInf(ymax, 0) || ymin >= ymax {
		ymin, ymax = 0, 1
	}
	return
}

// ticks returns round values between lo and hi, about n of them.
func ticks(lo, hi float64, n int) []float64 {
	span := hi - lo
	step := math.Pow(10, math.Floor(math.Log10(span/float64(n))))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if span/(step*m) <= float64(n) {
			step *= m
			break
		}
	}
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi+step*1e-9; t += step {
		out = append(out, t)
	}
	return out
}

func fmtTick(v float64) string {
	if math.Abs(v) < 1e-12 {
		return "0"
	}
	if math.Abs(v) >= 10000 {
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

func color(c string, i int) string {
	if c != "" {
		return c
	}
	return palette[i%len(palette)]
}

func text(b *bytes.Buffer, x, y float64, anchor, attrs, s string) {
	if s == "" {
		return
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`+"\n", x, y, anchor, attrs, esc(s))
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
