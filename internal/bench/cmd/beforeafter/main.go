// Command beforeafter measures a change to the library against an earlier
// commit, side by side in one run, from the bench module's directory:
//
//	cd internal/bench && go run ./cmd/beforeafter -base a763ed0
//
// It checks the base commit out into a temporary git worktree, builds this
// module's benchmark binary (and the conncost program) twice, once against
// the base library and once against the working tree (with -modfile: the
// benchmark code itself is the working tree's, so it must compile against
// both), then runs the two binaries alternately -count times, so that the
// samples of both interleave on a noisy machine, and compares them with
// benchstat (column "rev": base, head). With -conns it also measures the
// cost of idle connections with each library.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wsreconnect/wsreconnect/internal/bench/conncost"
)

func main() {
	var (
		base      = flag.String("base", "", "the commit to compare with (required)")
		count     = flag.Int("count", 10, "runs of each binary")
		benchtime = flag.String("benchtime", "1s", "-test.benchtime")
		bench     = flag.String("bench", "^BenchmarkMessage$/^op=(write|read)$/^impl=(raw|wsreconnect)$", "-test.bench")
		conns     = flag.Int("conns", 0, "also measure this many idle connections with each library (0: skip)")
		window    = flag.Duration("window", 20*time.Second, "CPU window of the idle-connection measurement")
		interval  = flag.Duration("interval", 0, "heartbeat interval of the idle connections (0: the default)")
		timeout   = flag.Duration("timeout", 0, "heartbeat timeout of the idle connections (0: the default)")
		out       = flag.String("o", "", "also write the raw benchmark output to this file")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("beforeafter: ")
	if *base == "" {
		log.Fatal("-base is required")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := os.Stat("cmd/beforeafter"); err != nil {
		log.Fatal("run me from internal/bench: cd internal/bench && go run ./cmd/beforeafter -base REV")
	}
	tmp, err := os.MkdirTemp("", "beforeafter-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	wt := filepath.Join(tmp, "base")
	run("git", "-C", root, "worktree", "add", "--detach", wt, *base)
	defer run("git", "-C", root, "worktree", "remove", "--force", wt)
	desc := strings.TrimSpace(string(run("git", "-C", wt, "log", "-1", "--format=%h %s")))
	head := strings.TrimSpace(string(run("git", "-C", root, "describe", "--always", "--dirty", "--abbrev=7")))

	// The same go.mod and go.sum, the library replaced by the base's.
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		log.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^replace github.com/wsreconnect/wsreconnect => .*$`)
	if !re.Match(mod) {
		log.Fatal("go.mod has no replace of the library")
	}
	baseMod := filepath.Join(tmp, "base.mod")
	write(baseMod, re.ReplaceAll(mod, []byte("replace github.com/wsreconnect/wsreconnect => "+wt)))
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		log.Fatal(err)
	}
	write(filepath.Join(tmp, "base.sum"), sum)

	bins := map[string]string{"base": filepath.Join(tmp, "base.test"), "head": filepath.Join(tmp, "head.test")}
	run("go", "test", "-c", "-modfile", baseMod, "-o", bins["base"], ".")
	run("go", "test", "-c", "-o", bins["head"], ".")

	var all bytes.Buffer
	for i := range *count {
		for _, rev := range []string{"base", "head"} {
			log.Printf("run %d of %d, %s", i+1, *count, rev)
			fmt.Fprintf(&all, "rev: %s\n", rev)
			all.Write(run(bins[rev], "-test.run", "^$", "-test.bench", *bench, "-test.benchmem", "-test.benchtime", *benchtime))
		}
	}
	raw := filepath.Join(tmp, "beforeafter.txt")
	write(raw, all.Bytes())
	if *out != "" {
		write(*out, all.Bytes())
	}
	fmt.Printf("base: %s\nhead: %s\n\n", desc, head)
	fmt.Printf("$ cd internal/bench && go run ./cmd/beforeafter %s\n\n", strings.Join(os.Args[1:], " "))
	os.Stdout.Write(run("go", "tool", "benchstat", "-col", "rev", raw))

	if *conns > 0 {
		cc := map[string]string{"base": filepath.Join(tmp, "base-conncost"), "head": filepath.Join(tmp, "head-conncost")}
		run("go", "build", "-modfile", baseMod, "-o", cc["base"], "./cmd/conncost")
		run("go", "build", "-o", cc["head"], "./cmd/conncost")
		hb := "heartbeat defaults"
		args := []string{"-impl", "wsreconnect", "-n", strconv.Itoa(*conns), "-window", window.String()}
		if *interval > 0 || *timeout > 0 {
			hb = fmt.Sprintf("heartbeat %v/%v", *interval, *timeout)
			args = append(args, "-interval", interval.String(), "-timeout", timeout.String())
		}
		fmt.Printf("\nidle connections (%d each, %s, CPU over %v):\n\n", *conns, hb, *window)
		fmt.Printf("| library | goroutines/conn | heap/conn | stacks/conn | CPU in the window | pings | CPU per ping |\n|---|---|---|---|---|---|---|\n")
		for _, rev := range []string{"base", "head"} {
			b := run(cc[rev], args...)
			var r conncost.Result
			if err := json.Unmarshal(b, &r); err != nil {
				log.Fatal(err)
			}
			perPing := "–"
			if r.Pings > 0 {
				perPing = fmt.Sprintf("%.1f µs", r.CPUSeconds/float64(r.Pings)*1e6)
			}
			fmt.Printf("| %s | %.2f | %.2f KiB | %.2f KiB | %.3f s | %d | %s |\n", rev, r.GoroutinesPerConn, r.HeapPerConn/1024, r.StackPerConn/1024, r.CPUSeconds, r.Pings, perPing)
		}
	}
}

func run(name string, args ...string) []byte {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func write(path string, b []byte) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		log.Fatal(err)
	}
}
