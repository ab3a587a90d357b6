package storm

import (
	"fmt"
	"os"
	"testing"
)

func TestStudyExplore(t *testing.T) {
	if os.Getenv("STORM_EXPLORE") == "" {
		t.Skip("STORM_EXPLORE not set")
	}
	n := 100000
	ovls := []Windows{OvlLibrary, OvlOverlap, OvlColleague, OvlRatio(3), OvlRatio(6), OvlRatio(8), OvlCap(3), OvlCap(5), OvlCap(7.5), OvlCap(10), OvlCap(15)}
	for _, o := range ovls {
		v := Pair(StdEqual, o)
		line := fmt.Sprintf("%-34s", o.Name)
		for _, c := range []Cause{Drop, TryAgainLater} {
			for _, nc := range []float64{3, 10, 30} {
				m := Simulate(SimConfig{N: n, Cause: c, Capacity: float64(n) / nc}, v).Compute()
				line += fmt.Sprintf(" | %5.2f %d", m.T99Ratio, m.AttemptsMax)
			}
		}
		fmt.Println(line)
	}
}
