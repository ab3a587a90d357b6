package main

import (
	"slices"
	"strings"
	"testing"
)

// A passing test's output is dropped, a failing one's printed whole, and
// the package lines and build errors kept, in either form.
func TestSummarize(t *testing.T) {
	in := lines(
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
		`{"ImportPath":"b [b.test]","Action":"build-output","Output":"# b [b.test]\n"}`,
		`{"ImportPath":"b [b.test]","Action":"build-output","Output":"./b_test.go:3:1: syntax error\n"}`,
		`{"ImportPath":"b [b.test]","Action":"build-fail"}`,
		`{"Action":"start","Package":"b"}`,
		`{"Action":"output","Package":"b","Output":"FAIL\tb [build failed]\n"}`,
		`{"Action":"fail","Package":"b","FailedBuild":"b [b.test]"}`,
		`# c [build failed]`,
	)
	var out strings.Builder
	failed, err := summarize(strings.NewReader(in), &out)
	if err != nil || !failed {
		t.Fatalf("failed %v, err %v", failed, err)
	}
	want := "    bad_test.go:9: boom\nFAIL\tp\t0.1s\n" +
		"# b [b.test]\n./b_test.go:3:1: syntax error\nFAIL\tb [build failed]\n" +
		"# c [build failed]\n"
	if got := out.String(); got != want {
		t.Fatalf("output\n%q\nwant\n%q", got, want)
	}
}

// What counts: every test without subtests by how it ended; a parent only
// when it failed on its own; a package only when it failed outside its
// tests; and the runs of several modules add up.
func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		passed  int
		failed  []string
		skipped []string
	}{{
		name: "flat",
		in: lines(
			`{"Action":"run","Package":"p","Test":"TestA"}`,
			`{"Action":"pass","Package":"p","Test":"TestA"}`,
			`{"Action":"run","Package":"p","Test":"ExampleDial"}`,
			`{"Action":"pass","Package":"p","Test":"ExampleDial"}`,
			`{"Action":"run","Package":"p","Test":"TestB"}`,
			`{"Action":"fail","Package":"p","Test":"TestB"}`,
			`{"Action":"run","Package":"p","Test":"TestC"}`,
			`{"Action":"output","Package":"p","Test":"TestC","Output":"=== RUN   TestC\n"}`,
			`{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:5: needs chromium\n"}`,
			`{"Action":"output","Package":"p","Test":"TestC","Output":"--- SKIP: TestC (0.00s)\n"}`,
			`{"Action":"skip","Package":"p","Test":"TestC"}`,
			`{"Action":"fail","Package":"p"}`,
			`{"Action":"skip","Package":"p/notests"}`,
		),
		passed:  2,
		failed:  []string{"p TestB"},
		skipped: []string{"p TestC: c_test.go:5: needs chromium"},
	}, {
		name: "subtests count, their parents do not",
		in: lines(
			`{"Action":"run","Package":"p","Test":"TestT"}`,
			`{"Action":"run","Package":"p","Test":"TestT/a"}`,
			`{"Action":"pass","Package":"p","Test":"TestT/a"}`,
			`{"Action":"run","Package":"p","Test":"TestT/b"}`,
			`{"Action":"run","Package":"p","Test":"TestT/b/deep"}`,
			`{"Action":"fail","Package":"p","Test":"TestT/b/deep"}`,
			`{"Action":"fail","Package":"p","Test":"TestT/b"}`,
			`{"Action":"run","Package":"p","Test":"TestT/c"}`,
			`{"Action":"skip","Package":"p","Test":"TestT/c"}`,
			`{"Action":"fail","Package":"p","Test":"TestT"}`,
			`{"Action":"fail","Package":"p"}`,
		),
		passed:  1,
		failed:  []string{"p TestT/b/deep"},
		skipped: []string{"p TestT/c: (no reason given)"},
	}, {
		name: "a parent that fails on its own",
		in: lines(
			`{"Action":"run","Package":"p","Test":"TestT"}`,
			`{"Action":"run","Package":"p","Test":"TestT/a"}`,
			`{"Action":"pass","Package":"p","Test":"TestT/a"}`,
			`{"Action":"fail","Package":"p","Test":"TestT"}`,
			`{"Action":"fail","Package":"p"}`,
		),
		passed: 1,
		failed: []string{"p TestT (itself, not a subtest)"},
	}, {
		name: "a package that fails outside its tests, or leaves tests unfinished",
		in: lines(
			`{"Action":"run","Package":"p","Test":"TestA"}`,
			`{"Action":"pass","Package":"p","Test":"TestA"}`,
			`{"Action":"output","Package":"p","Output":"goleak: Errors on successful test run\n"}`,
			`{"Action":"fail","Package":"p"}`,
			`{"Action":"run","Package":"q","Test":"TestDone"}`,
			`{"Action":"pass","Package":"q","Test":"TestDone"}`,
			`{"Action":"run","Package":"q","Test":"TestHangs"}`,
			`{"Action":"run","Package":"q","Test":"TestHangs/inner"}`,
			`{"Action":"run","Package":"q","Test":"TestAlsoHangs"}`,
			`{"Action":"output","Package":"q","Output":"panic: test timed out after 15m0s\n"}`,
			`{"Action":"fail","Package":"q"}`,
			`{"Action":"fail","Package":"b","FailedBuild":"b [b.test]"}`,
		),
		passed: 2,
		failed: []string{
			"p (failed outside its tests: TestMain, a panic or a timeout)",
			"q TestHangs/inner (never finished: a timeout or a crash)",
			"q TestAlsoHangs (never finished: a timeout or a crash)",
			"b [build failed]",
		},
	}, {
		name: "modules add up, and test.sh's own failures count",
		in: lines(
			`{"Action":"run","Package":"m","Test":"TestA"}`,
			`{"Action":"pass","Package":"m","Test":"TestA"}`,
			`{"Action":"pass","Package":"m"}`,
			`{"Action":"fail","Package":"./internal/bench","Output":"go vet ./... failed"}`,
			`{"Action":"run","Package":"m/internal/faulttest","Test":"TestA"}`,
			`{"Action":"pass","Package":"m/internal/faulttest","Test":"TestA"}`,
			`{"Action":"pass","Package":"m/internal/faulttest"}`,
		),
		passed: 2,
		failed: []string{"./internal/bench: go vet ./... failed"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tally(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if v.Passed != tc.passed || !slices.Equal(v.Failed, tc.failed) || !slices.Equal(v.Skipped, tc.skipped) {
				t.Errorf("passed %d, failed %q, skipped %q\nwant %d, %q, %q", v.Passed, v.Failed, v.Skipped, tc.passed, tc.failed, tc.skipped)
			}
		})
	}
}

// The verdict's line comes after the failures, and the skipped tests
// after it; a clean run ends with the line.
func TestPrintVerdict(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		failed   bool
	}{{
		in: lines(
			`{"Action":"pass","Package":"p","Test":"TestA"}`,
			`{"Action":"fail","Package":"p","Test":"TestB"}`,
			`{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:5: needs root\n"}`,
			`{"Action":"skip","Package":"p","Test":"TestC"}`,
			`{"Action":"fail","Package":"p"}`,
		),
		want:   "== failed\np TestB\n1 passed, 1 failed, 1 skipped\n== skipped\np TestC: c_test.go:5: needs root\n",
		failed: true,
	}, {
		in:   lines(`{"Action":"pass","Package":"p","Test":"TestA"}`, `{"Action":"pass","Package":"p"}`),
		want: "1 passed, 0 failed, 0 skipped\n",
	}, {
		in:   "",
		want: "0 passed, 0 failed, 0 skipped\n",
	}} {
		var out strings.Builder
		failed, err := printVerdict(strings.NewReader(tc.in), &out)
		if err != nil || failed != tc.failed || out.String() != tc.want {
			t.Errorf("failed %v, err %v, output\n%s\nwant failed %v, output\n%s", failed, err, out.String(), tc.failed, tc.want)
		}
	}
}

func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }
