package bench

import (
	"context"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// BenchmarkMessage measures one Write or Read per op, for each client and
// each Case (see Cases). Compare the clients with
//
//	benchstat -col /impl results.txt
func BenchmarkMessage(b *testing.B) {
	for _, c := range Cases() {
		for _, impl := range c.Impls {
			b.Run("op="+c.Op+"/peer="+c.Peer+"/size="+SizeName(c.Size)+"/impl="+impl, func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := Open(ctx, c, impl)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				b.SetBytes(int64(c.Size))
				b.ReportAllocs()
				// allocs/op is truncated to an integer per run: mallocs/op is
				// the same count, not rounded, to tell 0.05 from 0.
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for b.Loop() {
					if err := s.Op(); err != nil {
						b.Fatal(err)
					}
				}
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "mallocs/op")
			})
		}
	}
}

// TestMessageQuick runs each benchmark's operation a few times: the quick
// mode CI runs, so that the benchmarks keep compiling and working.
func TestMessageQuick(t *testing.T) {
	for _, c := range Cases() {
		for _, impl := range c.Impls {
			t.Run(c.Op+"/"+c.Peer+"/"+SizeName(c.Size)+"/"+impl, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := Open(ctx, c, impl)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				n := 300
				if c.Size > 1<<20 {
					n = 5
				}
				for range n {
					if err := s.Op(); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}
