package detect

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A few connections per mode with a short heartbeat: every dead peer is
// found by the heartbeat, no sooner than a check step (an eighth of the
// shorter of interval and timeout) before interval + timeout after the last
// frame: the heartbeat times the first frame after each check, never late.
func TestQuick(t *testing.T) {
	for _, mode := range Modes {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := Run(ctx, Config{Mode: mode, N: 4, Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Spread: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Ratios) != 4 || r.OtherEnds != 0 || r.Undetected != 0 {
				t.Fatalf("ratios %v, other ends %d, undetected %d", r.Ratios, r.OtherEnds, r.Undetected)
			}
			const interval, timeout = 100 * time.Millisecond, 100 * time.Millisecond
			earliest := 1 - float64(min(interval, timeout)/8)/float64(interval+timeout)
			if r.Min < earliest-0.01 {
				t.Errorf("detected after %.3f × (interval + timeout): before the peer could be proven dead", r.Min)
			}
			if c := Chart([]Result{r}); len(c.SVG()) == 0 {
				t.Error("empty chart")
			}
		})
	}
}
