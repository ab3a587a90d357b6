package svgchart

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"
)

func TestSVGIsWellFormed(t *testing.T) {
	c := &Chart{
		Title: "a <title> & more", XLabel: "x", YLabel: "y",
		Series: []Series{
			{Name: "step", Kind: Step, X: []float64{0, 0.1, 0.2}, Y: []float64{3, 5, 2}, Width: 0.1},
			{Name: "line", Kind: Line, X: []float64{0, 1}, Y: []float64{0, 4}, Dash: true},
			{Name: "points", Kind: Points, X: []float64{0.5}, Y: []float64{1}},
			{Name: "bars", Kind: Bars, X: []float64{0.3}, Y: []float64{2}, Width: 0.1},
		},
		Refs:         []Ref{{Label: "h", Value: 2, Horizontal: true}, {Label: "v", Value: 0.5}},
		LegendBottom: true,
	}
	out := c.SVG()
	d := xml.NewDecoder(bytes.NewReader(out))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
	}
	if !bytes.Contains(out, []byte("a &lt;title&gt; &amp; more")) {
		t.Error("title not escaped")
	}
}

func TestTicks(t *testing.T) {
	got := ticks(0, 1, 10)
	if len(got) < 5 || got[0] != 0 || got[len(got)-1] < 0.99 {
		t.Errorf("ticks(0, 1, 10) = %v", got)
	}
	if got := ticks(0, 100000, 6); len(got) < 3 {
		t.Errorf("ticks(0, 1e5, 6) = %v", got)
	}
}
