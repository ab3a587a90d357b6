package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// A goroutine a test left running is found, and named; once it has
// returned, nothing is.
func TestLeakedFindsLeftGoroutine(t *testing.T) {
	before := IDs()
	release := make(chan struct{})
	go leftRunning(release)
	leaked := Leaked(before, 10*time.Millisecond)
	close(release)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "leftRunning") {
		t.Fatalf("found %q, want the one goroutine left running", leaked)
	}
	if leaked := Leaked(before, Patience); len(leaked) != 0 {
		t.Fatalf("after it returned: %q", leaked)
	}
}

func leftRunning(release chan struct{}) { <-release }
