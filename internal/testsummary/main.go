// Command testsummary reads `go test -json` on its standard input and
// prints what `go test` prints (a line per package; the output of failed
// tests in full), then, with -skipped FILE, appends the name of every
// skipped test to FILE, so that test.sh can list them all at the end. It
// exits with 1 if a test or a package failed.
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

// event is what `go test -json` (test2json) writes, one per line.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	skippedFile := flag.String("skipped", "", "append the skipped tests to this file")
	flag.Parse()
	failed, err := summarize(os.Stdin, os.Stdout, *skippedFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func summarize(in io.Reader, out io.Writer, skippedFile string) (failed bool, err error) {
	var skipped []string
	buffered := map[string][]string{} // a running test's output, printed if it fails
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(out, "%s\n", line) // not an event: a build error, say
			continue
		}
		key := e.Package + " " + e.Test
		switch {
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
		case e.Action == "skip":
			skipped = append(skipped, e.Package+" "+e.Test+": "+skipReason(buffered[key]))
			delete(buffered, key)
		case e.Action == "pass":
			delete(buffered, key)
		}
	}
	if err := sc.Err(); err != nil {
		return failed, err
	}
	if skippedFile != "" && len(skipped) > 0 {
		f, err := os.OpenFile(skippedFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return failed, err
		}
		defer f.Close()
		for _, s := range skipped {
			fmt.Fprintln(f, s)
		}
	}
	return failed, nil
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
