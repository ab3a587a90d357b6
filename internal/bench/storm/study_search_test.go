package storm

import (
	"fmt"
	"os"
	"testing"
)

func TestStudySearch(t *testing.T) {
	if os.Getenv("STORM_SEARCH") == "" {
		t.Skip("STORM_SEARCH not set")
	}
	n := 20000
	f, _ := os.Create("/tmp/study/search.csv")
	defer f.Close()
	for _, h1 := range []float64{2, 3, 4, 5, 6, 8, 11} {
		for _, h2 := range []float64{4, 6, 8, 10, 12, 16} {
			for _, h3 := range []float64{8, 12, 16, 20, 25, 30} {
				for _, h4 := range []float64{16, 20, 25, 30} {
					hs := []float64{h1, h2, h3, h4}
					o := ovlDoubling("x", "x", func(n int) float64 {
						if n <= 4 {
							return hs[n-1]
						}
						return 30
					})
					v := Pair(StdEqual, o)
					line := fmt.Sprintf("%g,%g,%g,%g", h1, h2, h3, h4)
					for _, c := range []Cause{Drop, TryAgainLater} {
						for _, nc := range []float64{3, 10, 30} {
							m := Simulate(SimConfig{N: n, Cause: c, Capacity: float64(n) / nc}, v).Compute()
							line += fmt.Sprintf(",%.3f,%d", m.T99Ratio, m.AttemptsMax)
						}
					}
					fmt.Fprintln(f, line)
				}
			}
		}
	}
}
