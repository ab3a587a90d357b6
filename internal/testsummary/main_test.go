package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A passing test's output is dropped, a failing one's printed whole, the
// package lines kept, and skipped tests written to the file with their
// reasons.
func TestSummarize(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestOK"}`,
		`{"Action":"output","Package":"p","Test":"TestOK","Output":"=== RUN   TestOK\n"}`,
		`{"Action":"output","Package":"p","Test":"TestOK","Output":"    chatter\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestOK"}`,
		`{"Action":"output","Package":"p","Test":"TestBad","Output":"    bad_test.go:9: boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestBad"}`,
		`{"Action":"output","Package":"p","Test":"TestSkip","Output":"    skip_test.go:5: needs chromium\n"}`,
		`{"Action":"output","Package":"p","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestSkip"}`,
		`{"Action":"output","Package":"p","Output":"PASS\n"}`,
		`{"Action":"skip","Package":"q"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}`,
		`{"Action":"fail","Package":"p"}`,
		`# p [build failed]`,
	}, "\n")
	var out strings.Builder
	skipped := filepath.Join(t.TempDir(), "skipped")
	failed, err := summarize(strings.NewReader(in), &out, skipped)
	if err != nil || !failed {
		t.Fatalf("failed %v, err %v", failed, err)
	}
	if got, want := out.String(), "    bad_test.go:9: boom\nFAIL\tp\t0.1s\n# p [build failed]\n"; got != want {
		t.Fatalf("output\n%q\nwant\n%q", got, want)
	}
	b, err := os.ReadFile(skipped)
	if err != nil || string(b) != "p TestSkip: skip_test.go:5: needs chromium\n" {
		t.Fatalf("skipped %q, %v", b, err)
	}
}
