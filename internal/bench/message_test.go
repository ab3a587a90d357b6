package bench

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// BenchmarkMessage measures one 1 KiB binary Write or Read per op, for each
// client against the same kind of loopback server. Compare the impls with
//
//	benchstat -col /impl results.txt
func BenchmarkMessage(b *testing.B) {
	for _, op := range Ops {
		for _, impl := range Impls {
			b.Run("op="+op+"/impl="+impl, func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := Open(ctx, op, impl)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				b.SetBytes(PayloadSize)
				b.ReportAllocs()
				for b.Loop() {
					if err := s.Op(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestMessageQuick runs each benchmark's operation a few hundred times: the
// quick mode CI runs, so that the benchmarks keep compiling and working.
func TestMessageQuick(t *testing.T) {
	for _, op := range Ops {
		for _, impl := range Impls {
			t.Run(op+"/"+impl, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := Open(ctx, op, impl)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for range 300 {
					if err := s.Op(); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}
