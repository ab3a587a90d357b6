package faulttest

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The README's first command, `go run ./examples/demo`, does the library's
// main job against the misbehaving server it starts itself (a TCP drop, a
// 1013, a 503 with Retry-After, a 1008) and exits 0 only when everything
// happened as it says.
func TestDemoRunsAsTheReadmeSays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./examples/demo")
	cmd.Dir = filepath.Join("..", "..") // the repository's root module
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./examples/demo: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("done: everything happened as expected")) {
		t.Fatalf("the demo did not say it went as expected:\n%s", out)
	}
	t.Logf("%s", out)
}
