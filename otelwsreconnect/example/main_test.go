//go:build !js

package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The example runs as its doc comment says, checks itself, and leaves
// nothing running: go run . does what the README shows.
func TestExample(t *testing.T) {
	defer goleak.VerifyNone(t)
	var out bytes.Buffer
	if err := run(&out, "127.0.0.1:0", 0); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "] checked: the metrics count") {
		t.Errorf("the example did not check its metrics:\n%s", out.String())
	}
}
