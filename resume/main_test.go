//go:build !js

package resume

import (
	"testing"

	"github.com/wsreconnect/wsreconnect/internal/leakcheck"
)

// TestMain fails the run if any goroutine outlives the tests (see
// internal/leakcheck: the library's go.mod requires no goleak). Tests in
// testing/synctest bubbles are also checked by synctest itself.
func TestMain(m *testing.M) { leakcheck.Main(m) }
