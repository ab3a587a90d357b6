package conncost

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A few idle connections of each kind, with a short heartbeat: the
// figures come out, and wsreconnect's heartbeat pings.
func TestQuick(t *testing.T) {
	s, err := StartServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stats := "http" + strings.TrimPrefix(s.URL, "ws") + "stats"
	for _, impl := range []string{"raw", "wsreconnect"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res, err := Run(ctx, Config{URL: s.URL, StatsURL: stats, Impl: impl, N: 20,
			Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, CPUWindow: 300 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", impl, err)
		}
		if res.GoroutinesPerConn < 1 || res.HeapPerConn <= 0 {
			t.Errorf("%s: %.2f goroutines, %.0f heap bytes per connection", impl, res.GoroutinesPerConn, res.HeapPerConn)
		}
		if impl == "wsreconnect" && res.Pings == 0 {
			t.Errorf("no ping in %.2f s with a 50 ms heartbeat", res.CPUWindowSeconds)
		}
	}
}
