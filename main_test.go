package wsreconnect

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The library's own go.mod requires only coder/websocket and backoff/v4, so
// its tests check for leaked goroutines with the standard library (the
// test modules under internal/ use go.uber.org/goleak): what goleak does,
// in the few lines this package needs. Tests in synctest bubbles are also
// checked by synctest itself, which fails a test whose bubble still has
// goroutines when it ends.

// TestMain fails the run if any goroutine outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(nil, 5*time.Second); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n\n%s\n", strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// noLeaks checks, when the test ends (after its other cleanups, which it
// must precede), that it left no goroutine behind.
func noLeaks(t *testing.T) {
	t.Helper()
	before := goroutineIDs()
	t.Cleanup(func() {
		if leaked := leakedGoroutines(before, 5*time.Second); len(leaked) > 0 {
			t.Errorf("goroutines leaked:\n\n%s", strings.Join(leaked, "\n\n"))
		}
	})
}

// leakedGoroutines returns the stacks of the goroutines that are neither
// in ignore (by id) nor the test framework's, retrying for up to about
// patience while goroutines that are on their way out finish.
func leakedGoroutines(ignore []string, patience time.Duration) []string {
	var leaked []string
	for wait := time.Millisecond; ; wait *= 2 {
		leaked = leaked[:0]
		for _, g := range goroutines() {
			if !slices.Contains(ignore, goroutineID(g)) && !framework(g) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || wait > patience {
			return leaked
		}
		time.Sleep(wait)
	}
}

// goroutines returns the stack of every goroutine but the caller's.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	all := strings.Split(strings.TrimSpace(string(buf)), "\n\n")
	return all[1:] // the first is the caller
}

func goroutineIDs() []string {
	var ids []string
	for _, g := range goroutines() {
		ids = append(ids, goroutineID(g))
	}
	return ids
}

// goroutineID returns the N of a stack's "goroutine N [state]:" line.
func goroutineID(stack string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(stack, "goroutine "), " ")
	return id
}

// framework reports the goroutines of the runtime and the testing package
// that a finished test leaves (as goleak's defaults do).
func framework(stack string) bool {
	for _, f := range []string{
		"testing.RunTests(",
		"testing.(*T).Run(",
		"testing.(*T).Parallel(",
		"testing.(*F).Fuzz(",
		"testing.runFuzzing(",
		"testing.tRunner.func1(",
		"testing.(*M).startAlarm",
		"runtime.goexit0",
		"runtime.ensureSigM",
		"os/signal.signal_recv",
		"os/signal.loop",
		"created by runtime.gc",
		"runtime.MHeap_Scavenger",
		"runtime.ReadTrace",
		"interestingGoroutines",
	} {
		if strings.Contains(stack, f) {
			return true
		}
	}
	return false
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The leak check finds a goroutine a test left running, and names it.
func TestLeakCheckFindsALeftGoroutine(t *testing.T) {
	before := goroutineIDs()
	release := make(chan struct{})
	go leftRunning(release)
	leaked := leakedGoroutines(before, 10*time.Millisecond)
	close(release)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "leftRunning") {
		t.Fatalf("leak check found %q, want the one goroutine left running", leaked)
	}
	if leaked := leakedGoroutines(before, 5*time.Second); len(leaked) != 0 {
		t.Fatalf("after it returned: %q", leaked)
	}
}

func leftRunning(release chan struct{}) { <-release }
