package faulttest

// Soak: a server that ends every connection after a random 10-500 ms, with a
// random close code the default policy retries (or no close frame at all),
// while the client writes and reads streams. Afterwards goroutines are back
// at baseline, the heap is flat (the test's own ledger is of constant size:
// see world.compact), and every message is accounted for.
//
// WSRECONNECT_SOAK sets the duration (a Go duration: 10m, 1h); by default
// 60 s under CI=true and 20 s otherwise; 0 skips it.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("WSRECONNECT_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("WSRECONNECT_SOAK=%q: %v", v, err)
		}
		return d
	}
	if inCI() {
		return 60 * time.Second
	}
	return 20 * time.Second
}

// retriedCodes are close codes the default policy retries on the standard
// schedule. 1013 is retried too, but on the overload schedule (at least 1 s
// per attempt), which would leave the soak mostly waiting; it has its own
// test.
var retriedCodes = []websocket.StatusCode{1001, 1011, 1012, 1014, 3000, 3999, 4000, 4321, 4999}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestSoak(t *testing.T) {
	d := soakDuration(t)
	if d <= 0 {
		t.Skip("WSRECONNECT_SOAK=0")
	}
	w := newWorld()
	noLeaks(t, w)
	goroutines0 := runtime.NumGoroutine()
	heap0 := heapAfterGC()

	srv := newServer(w)
	srv.streamSize = sizeSmall
	srv.drop = func(r *rand.Rand) (time.Duration, websocket.StatusCode, string) {
		after := 10*time.Millisecond + time.Duration(r.Int64N(int64(490*time.Millisecond)))
		if r.IntN(4) == 0 {
			return after, 0, "" // no close frame: 1006
		}
		reason := strings.Repeat("z", r.IntN(124))
		return after, retriedCodes[r.IntN(len(retriedCodes))], reason
	}
	srv.dropping.Store(true)
	srv.streaming.Store(true)
	srv.start(t)

	const maxDelay = 100 * time.Millisecond
	// The ledger keeps a window of the latest messages and events and
	// checks the rest as they leave it: its size is constant, so that a
	// flat heap is a real check of the library's.
	w.setCompact(checkOpts{serverRecords: true, maxDelay: maxDelay, slack: slack})
	c := dialClient(t, w, w.dialer(t, fixedURL(srv.url), nil),
		wsreconnect.WithHeartbeat(200*time.Millisecond, 200*time.Millisecond),
		wsreconnect.WithInitialDelay(10*time.Millisecond),
		wsreconnect.WithMaxDelay(maxDelay),
		wsreconnect.WithStableUptime(200*time.Millisecond),
		wsreconnect.WithDialTimeout(2*time.Second),
	)
	c.startWriter(5*time.Millisecond, sizeSmall)

	start := time.Now()
	time.Sleep(d / 4)
	heapQuarter := heapAfterGC()
	time.Sleep(time.Until(start.Add(d)))
	heapEnd := heapAfterGC()

	srv.dropping.Store(false)
	marker := c.flush(waitTimeout)
	a := w.check(t, checkOpts{serverRecords: true, marker: marker, maxDelay: maxDelay, slack: slack})
	took := c.close(true)
	srv.close()

	codes := w.codeCounts()
	for _, ev := range w.disconnectsSince(0) {
		if !ev.d.Reconnect {
			t.Errorf("the soak server only sends codes the default policy retries, yet: %v", ev.d)
		}
	}
	if min := int(d / time.Second); a.disconnects < min {
		t.Errorf("only %d disconnects in %v: the soak did not churn", a.disconnects, d)
	}

	// Goroutines back at baseline (goleak then checks which ones).
	deadline := time.Now().Add(10 * time.Second)
	goroutines1 := runtime.NumGoroutine()
	for goroutines1 > goroutines0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		goroutines1 = runtime.NumGoroutine()
	}
	heap1 := heapAfterGC()

	t.Logf("soak of %v: %v", d, a)
	t.Logf("disconnects by code: %s", formatCodes(codes))
	t.Logf("goroutines: %d before, %d after Close", goroutines0, goroutines1)
	t.Logf("heap after GC: %s at start, %s at 1/4, %s at the end (running), %s after Close; Close took %v",
		mib(heap0), mib(heapQuarter), mib(heapEnd), mib(heap1), took)
	if goroutines1 > goroutines0 {
		t.Errorf("%d goroutines after Close, %d before\n%s", goroutines1, goroutines0, goroutines())
	}
	// The ledger's window (a few hundred KiB) fills in the first seconds;
	// from a quarter of the run on, the heap must stay flat.
	if heapEnd > heapQuarter+1<<20 {
		t.Errorf("heap grew from %s at a quarter of the run to %s at its end", mib(heapQuarter), mib(heapEnd))
	}
	if heap1 > heap0+2<<20 {
		t.Errorf("heap grew from %s to %s after Close", mib(heap0), mib(heap1))
	}
	if took > 3*time.Second {
		t.Errorf("Close took %v", took)
	}
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func formatCodes(m map[int]int) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
