// Command vulngate reads `govulncheck -format json` on stdin and fails when
// a vulnerability outside the standard library is reachable from the
// scanned code. Standard-library findings depend on the Go toolchain that
// builds the program, not on this repository; they are listed, not failed
// on, with the toolchain version that fixes them.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
)

type message struct {
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

func main() {
	dec := json.NewDecoder(os.Stdin)
	stdlib := map[string]string{}
	var bad []string
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "vulngate: reading govulncheck output:", err)
			os.Exit(2)
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue // only findings whose vulnerable symbol is called
		}
		if f.Trace[0].Module == "stdlib" {
			stdlib[f.OSV] = f.FixedVersion
			continue
		}
		bad = append(bad, fmt.Sprintf("%s in %s (fixed in %s)", f.OSV, f.Trace[0].Module, f.FixedVersion))
	}
	ids := make([]string, 0, len(stdlib))
	for id := range stdlib {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Printf("note: %s in the standard library of this toolchain (fixed in Go %s)\n", id, stdlib[id])
	}
	if len(bad) > 0 {
		for _, b := range bad {
			fmt.Println("VULNERABLE:", b)
		}
		os.Exit(1)
	}
	fmt.Println("govulncheck: no called vulnerability outside the standard library")
}
