package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/wsreconnect/wsreconnect/internal/bench/conncost"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The quick fleet benchall runs in CI: 300 Conns dropped at once come back
// within their first window without a limiter, and no faster than the
// shared limiter allows with one.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("real sockets")
	}
	if err := conncost.RaiseFileLimit(3*300 + 1024); err != nil {
		t.Fatal(err)
	}
	const n, r, b = 300, 200, 20
	for _, rate := range []float64{0, r} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res, err := Run(ctx, Config{N: n, Rate: rate, Burst: b, Timeout: 30 * time.Second})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: all back %.2f s, %d attempts, max %d per 1 s, %d per 100 ms (client: %d, %d)", Name(res), res.AllBack, res.Attempts, res.Max1s, res.Max100ms, res.ClientMax1s, res.ClientMax100ms)
		if res.Back != n || res.AllBack < 0 || res.Attempts < n {
			t.Fatalf("%s: %d of %d back, %d attempts", Name(res), res.Back, n, res.Attempts)
		}
		if rate == 0 {
			// The standard schedule's first window, [0, 1 s): everyone
			// within about a second, more than the limiter would allow.
			if res.AllBack > 2 || res.Max1s <= r+b {
				t.Errorf("no limiter: all back at %.2f s, max %d per 1 s", res.AllBack, res.Max1s)
			}
			continue
		}
		// The limiter: at most R·1 s + B dials in any second (a little
		// slack for a loaded machine under -race), so the last is back no
		// sooner than (N - B)/R.
		if slack := (r + b) / 10; res.ClientMax1s > res.Bound1s+slack || res.Max1s > res.Bound1s+slack {
			t.Errorf("limiter %v/s burst %d: max %d dials (client), %d handshakes (server) in 1 s, bound %d", rate, b, res.ClientMax1s, res.Max1s, res.Bound1s)
		}
		if want := float64(n-b)/r - 0.1; res.AllBack < want {
			t.Errorf("limiter %v/s: all back at %.2f s, before %.2f s", rate, res.AllBack, want)
		}
	}
}
