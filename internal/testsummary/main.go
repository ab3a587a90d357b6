// Command testsummary reads `go test -json` on its standard input. By
// default it prints what `go test` prints (a line per package; the output
// of failed tests, and any build errors, in full), as test.sh does for each
// module. With -verdict it reads the JSON of every module, concatenated,
// and prints the verdict instead: the failed tests, if any, then one line
//
//	N passed, N failed, N skipped
//
// then the skipped tests with their reasons, if any. Either way it exits
// with 1 if a test or a package failed.
//
// What counts: every test, example and subtest that has no subtests of its
// own, by how it ended. A test with subtests counts through them, not
// once more itself, so that one failing subtest is one failure; but a
// parent that fails while none of its subtests did (in its own code after
// them, or its Cleanup) counts as a failure of its own. A package that
// fails while none of its tests did (a build error, TestMain or its
// goroutine-leak check, a panic outside any test, a timeout) counts as
// one failure, or, if it left tests unfinished (a timeout, a crash), each
// of them counts. A fail event for a package that carries an Output, which
// test2json never writes, is a failure that test.sh reports itself (go
// vet): the Output says what failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is what `go test -json` (test2json) writes, one per line. Since Go
// 1.24 build errors come as events too, "build-output" and "build-fail"
// (with ImportPath instead of Package), and the package's own "fail" then
// has FailedBuild set.
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	FailedBuild string
}

func main() {
	verdict := flag.Bool("verdict", false, "print the verdict of every module's `go test -json`, concatenated")
	flag.Parse()
	var (
		failed bool
		err    error
	)
	if *verdict {
		failed, err = printVerdict(os.Stdin, os.Stdout)
	} else {
		failed, err = summarize(os.Stdin, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// scan calls f with each event of in, and with the lines that are not
// events (ok false): a build error in the text form of older Go releases.
func scan(in io.Reader, f func(e event, line []byte, ok bool)) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			f(e, line, false)
			continue
		}
		f(e, line, true)
	}
	return sc.Err()
}

// summarize prints what `go test` would: a line per package, and the
// output of each failed test and failed build.
func summarize(in io.Reader, out io.Writer) (failed bool, err error) {
	buffered := map[string][]string{} // a running test's output, printed if it fails
	err = scan(in, func(e event, line []byte, ok bool) {
		if !ok {
			fmt.Fprintf(out, "%s\n", line) // not an event: a build error, say
			return
		}
		key := e.Package + " " + e.Test
		switch {
		case e.Action == "build-output":
			fmt.Fprint(out, e.Output)
		case e.Action == "build-fail":
			failed = true
		case e.Test == "" && e.Action == "output":
			if e.Output != "PASS\n" { // go test prints it only with -v
				fmt.Fprint(out, e.Output) // ok / FAIL lines of the package
			}
		case e.Test == "" && e.Action == "fail":
			failed = true
		case e.Test == "":
			// run, pass, or skip (no test files) of a package
		case e.Action == "output":
			buffered[key] = append(buffered[key], e.Output)
		case e.Action == "fail":
			failed = true
			fmt.Fprint(out, strings.Join(buffered[key], ""))
			delete(buffered, key)
		case e.Action == "skip", e.Action == "pass":
			delete(buffered, key)
		}
	})
	return failed, err
}

// outcome is how one test ended.
type outcome struct {
	pkg, test string
	action    string   // pass, fail or skip; "" while it runs
	output    []string // while it runs
	reason    string   // why it was skipped
}

func (o *outcome) name() string { return o.pkg + " " + o.test }

// Verdict is the count of every module's tests, and the names of those that
// failed or were skipped.
type Verdict struct {
	Passed  int
	Failed  []string // package and test, or a package and why it failed
	Skipped []string // package, test and the reason it gave
}

// Line is the verdict's closing line.
func (v Verdict) Line() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", v.Passed, len(v.Failed), len(v.Skipped))
}

// tally reads the events of any number of `go test -json` runs.
func tally(in io.Reader) (Verdict, error) {
	var (
		order    []*outcome // every test, in the order it started
		byName   = map[string]*outcome{}
		pkgFails []event // the fail events of packages
	)
	err := scan(in, func(e event, _ []byte, ok bool) {
		if !ok {
			return
		}
		if e.Test == "" {
			if e.Action == "fail" {
				pkgFails = append(pkgFails, e)
			}
			return
		}
		name := e.Package + " " + e.Test
		o := byName[name]
		if o == nil {
			o = &outcome{pkg: e.Package, test: e.Test}
			byName[name] = o
			order = append(order, o)
		}
		switch e.Action {
		case "output":
			o.output = append(o.output, e.Output)
		case "skip":
			o.reason = skipReason(o.output)
			fallthrough
		case "pass", "fail":
			o.action, o.output = e.Action, nil
		}
	})
	if err != nil {
		return Verdict{}, err
	}
	// The tests named under another are its subtests: it is a parent,
	// and if they failed, it failed through them.
	parent, failedSub := map[string]bool{}, map[string]bool{}
	for _, o := range order {
		for up := o.test; strings.Contains(up, "/"); {
			up = up[:strings.LastIndexByte(up, '/')]
			parent[o.pkg+" "+up] = true
			if o.action == "fail" {
				failedSub[o.pkg+" "+up] = true
			}
		}
	}
	var v Verdict
	testFailed := map[string]bool{} // packages with a failed test
	for _, o := range order {
		switch {
		case parent[o.name()]:
			if o.action == "fail" && !failedSub[o.name()] {
				v.Failed = append(v.Failed, o.name()+" (itself, not a subtest)")
				testFailed[o.pkg] = true
			}
		case o.action == "pass":
			v.Passed++
		case o.action == "fail":
			v.Failed = append(v.Failed, o.name())
			testFailed[o.pkg] = true
		case o.action == "skip":
			v.Skipped = append(v.Skipped, o.name()+": "+o.reason)
		}
	}
	// The tests that started and never ended, innermost only: the tests
	// a timeout or a crash interrupted.
	unfinished := map[string][]string{} // by package
	for _, o := range order {
		if o.action != "" {
			continue
		}
		inner := true
		for _, sub := range order {
			if sub.pkg == o.pkg && sub.action == "" && strings.HasPrefix(sub.test, o.test+"/") {
				inner = false
				break
			}
		}
		if inner {
			unfinished[o.pkg] = append(unfinished[o.pkg], o.name())
		}
	}
	for _, e := range pkgFails {
		switch {
		case e.Output != "":
			v.Failed = append(v.Failed, e.Package+": "+strings.TrimSpace(e.Output))
		case testFailed[e.Package]:
		case e.FailedBuild != "":
			v.Failed = append(v.Failed, e.Package+" [build failed]")
		case len(unfinished[e.Package]) > 0:
			for _, name := range unfinished[e.Package] {
				v.Failed = append(v.Failed, name+" (never finished: a timeout or a crash)")
			}
		default:
			v.Failed = append(v.Failed, e.Package+" (failed outside its tests: TestMain, a panic or a timeout)")
		}
	}
	return v, nil
}

// printVerdict prints the failed tests, the verdict's line and the skipped
// tests.
func printVerdict(in io.Reader, out io.Writer) (failed bool, err error) {
	v, err := tally(in)
	if err != nil {
		return false, err
	}
	if len(v.Failed) > 0 {
		fmt.Fprintln(out, "== failed")
		for _, f := range v.Failed {
			fmt.Fprintln(out, f)
		}
	}
	fmt.Fprintln(out, v.Line())
	if len(v.Skipped) > 0 {
		fmt.Fprintln(out, "== skipped")
		for _, s := range v.Skipped {
			fmt.Fprintln(out, s)
		}
	}
	return len(v.Failed) > 0, nil
}

// skipReason is the message a skipped test gave, from its output.
func skipReason(output []string) string {
	for i := len(output) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(output[i]); s != "" && !strings.HasPrefix(s, "---") && !strings.HasPrefix(s, "===") {
			return s
		}
	}
	return "(no reason given)"
}
