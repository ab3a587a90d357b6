//go:build !js

package wsreconnect

import (
	"io"
	"log/slog"
	"testing"

	"github.com/wsreconnect/wsreconnect/internal/leakcheck"
)

// TestMain fails the run if any goroutine outlives the tests (see
// internal/leakcheck: the library's go.mod requires no goleak).
func TestMain(m *testing.M) { leakcheck.Main(m) }

// noLeaks checks, when the test ends (after its other cleanups, which it
// must precede), that it left no goroutine behind.
func noLeaks(t *testing.T) {
	t.Helper()
	leakcheck.Check(t)
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
