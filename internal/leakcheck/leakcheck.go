// Package leakcheck finds goroutines a test left running. The library's
// own go.mod requires only coder/websocket and backoff/v4, so the tests of
// its packages use this instead of go.uber.org/goleak (which the test
// modules under internal/ use): what goleak does, in the few lines these
// tests need. Tests in testing/synctest bubbles are also checked by
// synctest, which fails a test whose bubble still has goroutines at its end.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Patience is how long a check waits for goroutines on their way out.
const Patience = 5 * time.Second

// Main runs the tests, then fails the run if any goroutine outlives them.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := Leaked(nil, Patience); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n\n%s\n", strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// Check checks, when the test ends (after its other cleanups, which it
// must precede), that it left no goroutine behind.
func Check(t testing.TB) {
	t.Helper()
	before := IDs()
	t.Cleanup(func() {
		if leaked := Leaked(before, Patience); len(leaked) > 0 {
			t.Errorf("goroutines leaked:\n\n%s", strings.Join(leaked, "\n\n"))
		}
	})
}

// Leaked returns the stacks of the goroutines that are neither in ignore
// (by id) nor the runtime's or the test framework's, retrying for up to
// about patience while goroutines on their way out finish.
func Leaked(ignore []string, patience time.Duration) []string {
	var leaked []string
	for wait := time.Millisecond; ; wait *= 2 {
		leaked = leaked[:0]
		for _, g := range stacks() {
			if !slices.Contains(ignore, id(g)) && !framework(g) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || wait > patience {
			return leaked
		}
		time.Sleep(wait)
	}
}

// IDs returns the ids of the goroutines running now, but the caller's.
func IDs() []string {
	var ids []string
	for _, g := range stacks() {
		ids = append(ids, id(g))
	}
	return ids
}

// stacks returns the stack of every goroutine but the caller's.
func stacks() []string {
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

// id returns the N of a stack's "goroutine N [state]:" line.
func id(stack string) string {
	n, _, _ := strings.Cut(strings.TrimPrefix(stack, "goroutine "), " ")
	return n
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
		"runtime.ReadTrace",
	} {
		if strings.Contains(stack, f) {
			return true
		}
	}
	return false
}
