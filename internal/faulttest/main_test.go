package faulttest

import (
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// toxiproxy logs through zerolog's global logger in places.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	goleak.VerifyTestMain(m, leakOptions()...)
}

// leakOptions are the goroutines the leak checks ignore: those toxiproxy
// itself strands. A toxic removed while it holds data can block forever on a
// channel send inside the proxy (seen with latency: LatencyToxic.Pipe under
// ToxicStub.Run, "chan send"); that is toxiproxy's bookkeeping, not ours,
// and it holds no socket of the client. Nothing of wsreconnect,
// coder/websocket or net/http is ignored.
func leakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).write"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
	}
}

// noLeaks checks, when the test ends (after its other cleanups, which it
// must precede), that it left no goroutine behind; then, with every
// goroutine gone, that no callback recorded in worlds misbehaved late (a
// callback after Close returned is recorded as a violation).
func noLeaks(t *testing.T, worlds ...*world) {
	t.Helper()
	opts := append(leakOptions(), goleak.IgnoreCurrent())
	t.Cleanup(func() {
		goleak.VerifyNone(t, opts...)
		for _, w := range worlds {
			w.reportLate(t)
		}
	})
}

// inCI reports whether the tests run under CI (CI=true), where a missing
// third-party peer fails the run instead of skipping.
func inCI() bool { return os.Getenv("CI") == "true" }

// Generous bounds for a loaded 2-core machine under the race detector.
const (
	slack       = 2 * time.Second // how late a timer-driven event may come
	waitTimeout = 15 * time.Second
)
