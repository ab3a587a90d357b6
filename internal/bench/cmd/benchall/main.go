// Command benchall reproduces every table and chart of BENCHMARKS.md in
// one run, from the bench module's directory:
//
//	cd internal/bench && go run ./cmd/benchall
//
// It builds the benchmark programs, runs the per-message Go benchmarks
// -count times (each run of the test binary runs every implementation
// back to back, so the samples interleave on a noisy machine) and compares
// them with benchstat, profiles the library's side, then runs conncost
// (raw and wsreconnect, each in its own process with its server in a
// third), storm, detect and fleet (WithDialLimiter). Raw outputs go to results/, the charts to
// ../../docs/, and the tables between the <!-- benchall:NAME --> markers
// of ../../BENCHMARKS.md.
//
// With -quick (or BENCH_QUICK=1) everything runs small and fast, and
// nothing in the repository is rewritten unless -write is given; the
// tables are printed.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsreconnect/wsreconnect/internal/bench"
	"github.com/wsreconnect/wsreconnect/internal/bench/conncost"
	"github.com/wsreconnect/wsreconnect/internal/bench/detect"
	"github.com/wsreconnect/wsreconnect/internal/bench/fleet"
	"github.com/wsreconnect/wsreconnect/internal/bench/storm"
	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

type config struct {
	quick      bool
	write      bool
	count      int
	benchtime  string
	connN      int
	window     time.Duration
	hbArgs     []string // heartbeat flags for conncost
	stormArgs  []string
	detectArgs []string
	fleetArgs  []string
	profile    bool
	only       string // the -only flag
}

var (
	binDir     string
	resultsDir string
	docsDir    string
	rootDir    string
	commands   []string // every command run, for the provenance table
)

func main() {
	var (
		quickF  = flag.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "small and fast; also BENCH_QUICK=1")
		writeF  = flag.Bool("write", false, "rewrite BENCHMARKS.md, docs/ and results/ (the default without -quick)")
		countF  = flag.Int("count", 0, "runs of the per-message benchmarks (default 10; quick 2)")
		connF   = flag.Int("conns", 0, "idle connections for the per-connection cost (default 10000; quick 200)")
		windowF = flag.Duration("window", 0, "CPU window for the per-connection cost (default 1m; quick 3s)")
		onlyF   = flag.String("only", "", "comma-separated steps to run: message,profile,conncost,storm,detect,fleet (default all)")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchall: ")
	cfg := config{quick: *quickF, write: !*quickF || *writeF, count: 10, benchtime: "1s", connN: 10000, window: time.Minute, profile: true,
		detectArgs: []string{"-n", "50", "-interval", "200ms", "-timeout", "200ms"},
		fleetArgs:  []string{"-n", "5000", "-rate", "500", "-burst", "50"}}
	if cfg.quick {
		cfg.count, cfg.benchtime, cfg.connN, cfg.window, cfg.profile = 2, "200ms", 200, 3*time.Second, false
		cfg.hbArgs = []string{"-interval", "1s", "-timeout", "500ms"}
		cfg.stormArgs = []string{"-sim-n", "1000,10000", "-real-n", "200", "-nc", "3", "-sweep", "3,10", "-timeout", "1m"}
		cfg.detectArgs = []string{"-n", "10", "-interval", "100ms", "-timeout", "100ms"}
		cfg.fleetArgs = []string{"-n", "300", "-rate", "200", "-burst", "20", "-timeout", "1m"}
	}
	cfg.only = *onlyF
	if *countF > 0 {
		cfg.count = *countF
	}
	if *connF > 0 {
		cfg.connN = *connF
	}
	if *windowF > 0 {
		cfg.window = *windowF
	}
	steps := map[string]bool{"message": true, "profile": cfg.profile, "conncost": true, "storm": true, "detect": true, "fleet": true}
	if *onlyF != "" {
		for k := range steps {
			steps[k] = false
		}
		for _, s := range strings.Split(*onlyF, ",") {
			steps[strings.TrimSpace(s)] = true
		}
	}

	mod, err := os.ReadFile("go.mod")
	if err != nil || !bytes.Contains(mod, []byte("module github.com/wsreconnect/wsreconnect/internal/bench")) {
		log.Fatal("run me from internal/bench: cd internal/bench && go run ./cmd/benchall")
	}
	rootDir, _ = filepath.Abs("../..")
	tmp, err := os.MkdirTemp("", "benchall-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	binDir = filepath.Join(tmp, "bin")
	if cfg.write {
		resultsDir, docsDir = "results", filepath.Join(rootDir, "docs")
	} else {
		resultsDir, docsDir = filepath.Join(tmp, "results"), filepath.Join(tmp, "docs")
	}
	for _, d := range []string{binDir, resultsDir, docsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	start := time.Now()
	env := environment(cfg)

	run("go", "test", "-c", "-o", filepath.Join(binDir, "bench.test"), ".")
	for _, c := range []string{"conncost", "storm", "detect", "fleet"} {
		run("go", "build", "-o", filepath.Join(binDir, c), "./cmd/"+c)
	}

	sections := map[string]string{}
	var verdicts []verdict
	if steps["message"] {
		t, v := messages(cfg)
		sections["message"], sections["message-benchstat"] = t[0], t[1]
		verdicts = append(verdicts, v...)
	}
	if steps["profile"] {
		sections["profile"] = profiles(cfg)
	}
	if steps["conncost"] {
		t, v := connCost(cfg)
		sections["conncost"] = t
		verdicts = append(verdicts, v...)
	}
	if steps["storm"] {
		t, v := stormRuns(cfg)
		for k, s := range t {
			sections[k] = s
		}
		verdicts = append(verdicts, v...)
	}
	if steps["detect"] {
		t, v := detection(cfg)
		sections["detect"] = t
		verdicts = append(verdicts, v...)
	}
	if steps["fleet"] {
		t, v := fleetRuns(cfg)
		sections["fleet"] = t
		verdicts = append(verdicts, v...)
	}
	env = append(env, [2]string{"benchall took", time.Since(start).Round(time.Second).String()})
	env = append(env, [2]string{"load average after", loadavg()})
	if *onlyF == "" {
		sections["env"] = envTable(env, cfg)
		sections["env-partial"] = "None: every step ran in the run above.\n"
		sections["verdict"] = verdictTable(verdicts)
	} else {
		// A partial run: the provenance of the full run stays, and this
		// run's is written beside it; the verdicts of the steps that did
		// not run are kept from the page.
		var ran []string
		for _, k := range stepOrder {
			if steps[k] {
				ran = append(ran, k)
			}
		}
		old := ""
		if b, err := os.ReadFile(filepath.Join(rootDir, "BENCHMARKS.md")); err == nil {
			old = string(b)
		}
		sections["env-partial"] = mergePartial(old, ran, envTable(env, cfg))
		sections["verdict"] = mergeVerdicts(old, verdicts, steps)
	}

	names := make([]string, 0, len(sections))
	for k := range sections {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Printf("<!-- benchall:%s -->\n%s<!-- /benchall:%s -->\n\n", k, sections[k], k)
	}
	if cfg.write {
		path := filepath.Join(rootDir, "BENCHMARKS.md")
		if err := rewrite(path, sections); err != nil {
			log.Fatal(err)
		}
		log.Printf("rewrote %s, %s and %s", path, docsDir, resultsDir)
	}
}

// run runs a command, echoing it, with stderr passed through; it returns
// stdout.
func run(name string, args ...string) []byte {
	line := name + " " + strings.Join(args, " ")
	commands = append(commands, line)
	log.Printf("$ %s", line)
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s: %v", line, err)
	}
	return out
}

func save(name string, data []byte) string {
	p := filepath.Join(resultsDir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		log.Fatal(err)
	}
	return p
}

func bin(name string) string { return filepath.Join(binDir, name) }

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func environment(cfg config) [][2]string {
	desc := "?"
	if out, err := exec.Command("git", "-C", rootDir, "describe", "--always", "--dirty", "--abbrev=12").Output(); err == nil {
		desc = strings.TrimSpace(string(out))
	}
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.*)$`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	mode, flags := "full", ""
	if cfg.quick {
		mode, flags = "quick", " -quick"
	}
	if cfg.only != "" {
		flags += " -only " + cfg.only
	}
	return [][2]string{
		{"command", "`cd internal/bench && go run ./cmd/benchall" + flags + "` (" + mode + ")"},
		{"date", time.Now().UTC().Format("2006-01-02 15:04 UTC")},
		{"library commit", "`" + desc + "`"},
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		{"CPU", fmt.Sprintf("%s, %d cores (shared with other jobs)", cpu, runtime.NumCPU())},
		{"load average before", loadavg()},
	}
}

func envTable(env [][2]string, cfg config) string {
	var b strings.Builder
	b.WriteString("| | |\n|---|---|\n")
	for _, kv := range env {
		fmt.Fprintf(&b, "| %s | %s |\n", kv[0], kv[1])
	}
	b.WriteString("\nCommands it ran (binaries built from this module into a temporary directory):\n\n```\n")
	for _, c := range commands {
		c = strings.ReplaceAll(c, binDir+"/", "")
		fmt.Fprintln(&b, c)
	}
	b.WriteString("```\n")
	return b.String()
}

// stepOrder is the order of the steps, and of their rows in the verdict
// table.
var stepOrder = []string{"message", "profile", "conncost", "storm", "detect", "fleet"}

// verdictStep names the step a verdict row (its first cell) comes from.
func verdictStep(what string) string {
	if strings.Contains(what, "throughput vs raw") {
		return "message" // "1KiB write, rawws peer: …", "4MiB read, heartbeat on …"
	}
	for _, p := range []struct{ prefix, step string }{
		{"extra allocations", "message"},
		{"extra goroutines", "conncost"}, {"extra bytes", "conncost"}, {"heartbeat CPU", "conncost"},
		{"storm ", "storm"}, {"server-paced", "storm"},
		{"dead-peer", "detect"},
		{"limited fleet", "fleet"}, {"the same fleet", "fleet"},
	} {
		if strings.HasPrefix(what, p.prefix) {
			return p.step
		}
	}
	return ""
}

// partialHead starts each partial run's entry in the env-partial section.
const partialHead = "Steps re-run since, newest first: "

// mergePartial is the env-partial section after a partial run of the
// steps ran: this run's entry, then the earlier partial runs' from page,
// except those whose steps all ran again now.
func mergePartial(page string, ran []string, envTable string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s**%s**\n\n%s", partialHead, strings.Join(ran, ", "), envTable)
	const open, close = "<!-- benchall:env-partial -->\n", "<!-- /benchall:env-partial -->"
	i, j := strings.Index(page, open), strings.Index(page, close)
	if i < 0 || j < i {
		return b.String()
	}
	for _, entry := range strings.Split(page[i+len(open):j], partialHead)[1:] {
		steps, _, _ := strings.Cut(entry, "\n")
		steps = strings.Trim(steps, "*")
		covered := true
		for _, step := range strings.Split(steps, ", ") {
			if !slices.Contains(ran, step) {
				covered = false
			}
		}
		if !covered {
			b.WriteString("\n" + partialHead + strings.TrimRight(entry, "\n") + "\n")
		}
	}
	return b.String()
}

// mergeVerdicts is the verdict table of a partial run: the rows of the
// steps that ran are vs, the others are kept from page's table, in step
// order.
func mergeVerdicts(page string, vs []verdict, ran map[string]bool) string {
	rows := map[string][]string{}
	const open, close = "<!-- benchall:verdict -->\n", "<!-- /benchall:verdict -->"
	if i, j := strings.Index(page, open), strings.Index(page, close); i >= 0 && j > i {
		for _, line := range strings.Split(page[i+len(open):j], "\n") {
			cells := strings.Split(line, "|")
			if len(cells) < 3 || strings.HasPrefix(line, "| target ") || strings.HasPrefix(line, "|---") {
				continue
			}
			step := verdictStep(strings.TrimSpace(cells[1]))
			if !ran[step] {
				rows[step] = append(rows[step], line+"\n")
			}
		}
	}
	for _, v := range vs {
		step := verdictStep(v.what)
		rows[step] = append(rows[step], strings.TrimPrefix(verdictTable([]verdict{v}), verdictHeader))
	}
	var b strings.Builder
	b.WriteString(verdictHeader)
	for _, step := range append(slices.Clone(stepOrder), "") {
		for _, r := range rows[step] {
			b.WriteString(r)
		}
	}
	return b.String()
}

const verdictHeader = "| target | bound | measured | |\n|---|---|---|---|\n"

type verdict struct {
	what, target, got string
	ok                bool
}

func verdictTable(vs []verdict) string {
	var b strings.Builder
	b.WriteString(verdictHeader)
	for _, v := range vs {
		mark := "met"
		if !v.ok {
			mark = "**missed**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", v.what, v.target, v.got, mark)
	}
	return b.String()
}

// rewrite replaces each <!-- benchall:NAME --> … <!-- /benchall:NAME -->
// block of path with sections[NAME].
func rewrite(path string, sections map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	for name, body := range sections {
		open, close := "<!-- benchall:"+name+" -->\n", "<!-- /benchall:"+name+" -->"
		i := strings.Index(s, open)
		j := strings.Index(s, close)
		if i < 0 || j < i {
			log.Printf("BENCHMARKS.md has no block %q; not written", name)
			continue
		}
		s = s[:i+len(open)] + body + s[j:]
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// ---- per-message ----

func messages(cfg config) ([2]string, []verdict) {
	var all bytes.Buffer
	for i := range cfg.count {
		log.Printf("per-message benchmarks, run %d of %d", i+1, cfg.count)
		all.Write(run(bin("bench.test"), "-test.run", "^$", "-test.bench", "^BenchmarkMessage$", "-test.benchmem", "-test.benchtime", cfg.benchtime))
	}
	raw := save("message.txt", all.Bytes())
	stat := run("go", "tool", "benchstat", "-col", "/impl", raw)
	save("message-benchstat.txt", stat)

	// The samples of each case and client, run by run: every run of the
	// test binary measures all of them back to back, so a client's ratio
	// to raw is taken within a run (paired), and the median of those
	// ratios is robust to the machine's load changing between runs.
	type key struct{ op, peer, size, impl string }
	samples := map[key]map[string][]float64{}
	r := benchfmt.NewReader(bytes.NewReader(all.Bytes()), "message.txt")
	for r.Scan() {
		res, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		_, parts := res.Name.Parts()
		var k key
		for _, p := range parts {
			s := strings.TrimPrefix(string(p), "/")
			for name, dst := range map[string]*string{"op=": &k.op, "peer=": &k.peer, "size=": &k.size, "impl=": &k.impl} {
				if v, ok := strings.CutPrefix(s, name); ok {
					*dst = v
				}
			}
		}
		if samples[k] == nil {
			samples[k] = map[string][]float64{}
		}
		for _, v := range res.Values {
			samples[k][v.Unit] = append(samples[k][v.Unit], v.Value)
		}
	}
	median := func(xs []float64) benchmath.Summary {
		return benchmath.AssumeNothing.Summary(benchmath.NewSample(xs, &benchmath.DefaultThresholds), 0.95)
	}
	// paired returns the median and range of raw's time ÷ impl's, run by run.
	paired := func(k key) (med, lo, hi float64) {
		base := samples[key{k.op, k.peer, k.size, "raw"}]["sec/op"]
		got := samples[k]["sec/op"]
		var rs []float64
		for i := range min(len(base), len(got)) {
			rs = append(rs, base[i]/got[i])
		}
		if len(rs) == 0 {
			return math.NaN(), math.NaN(), math.NaN()
		}
		slices.Sort(rs)
		return rs[len(rs)/2], rs[0], rs[len(rs)-1]
	}
	var b strings.Builder
	b.WriteString("| op | peer | size | client | time/op (median, 95% CI) | throughput vs raw (median of paired runs, range) | B/op | allocations/op |\n|---|---|---|---|---|---|---|---|\n")
	var vs []verdict
	for _, c := range bench.Cases() {
		for _, impl := range c.Impls {
			k := key{c.Op, c.Peer, bench.SizeName(c.Size), impl}
			s := samples[k]
			if len(s["sec/op"]) == 0 {
				continue
			}
			sum := median(s["sec/op"])
			ci := ""
			if !math.IsInf(sum.Lo, 0) && !math.IsInf(sum.Hi, 0) && !math.IsNaN(sum.Lo) && !math.IsNaN(sum.Hi) {
				ci = fmt.Sprintf(" [%s, %s]", fmtDur(sum.Lo), fmtDur(sum.Hi))
			}
			ratio := "1 (baseline)"
			med, lo, hi := paired(k)
			if impl != "raw" {
				ratio = fmt.Sprintf("%.3f× [%.2f, %.2f]", med, lo, hi)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s%s | %s | %.1f | %.3f |\n", c.Op, c.Peer, k.size, impl,
				fmtDur(sum.Center), ci, ratio, median(s["B/op"]).Center, median(s["mallocs/op"]).Center)
			if impl != "wsreconnect" {
				continue
			}
			bound := 1.0
			what := fmt.Sprintf("%s %s, %s peer: throughput vs raw coder/websocket", k.size, c.Op, c.Peer)
			if c.Op == "write" {
				bound = 0.98
			}
			if c.Size > bench.PayloadSize {
				what = fmt.Sprintf("%s %s, heartbeat on (fragments, pings): throughput vs raw", k.size, c.Op)
			}
			vs = append(vs, verdict{what, fmt.Sprintf("≥ %.2f×", bound), fmt.Sprintf("%.3f× (paired median; range %.2f–%.2f)", med, lo, hi), med >= bound})
			if c.Op == "write" && c.Size == bench.PayloadSize {
				// allocs/op is an integer per run (total allocations / N), so an
				// allocation every other op reads as 0 or 1 at random, in raw
				// and wrapper alike; compare the means over all runs, and the
				// bytes, which are counted finely.
				rawS := samples[key{c.Op, c.Peer, k.size, "raw"}]
				extra := median(s["mallocs/op"]).Center - median(rawS["mallocs/op"]).Center
				extraB := median(s["B/op"]).Center - median(rawS["B/op"]).Center
				vs = append(vs, verdict{fmt.Sprintf("extra allocations per 1 KiB Write, %s peer", c.Peer), "< 0.1 (none in Write; the heartbeat's ping every 960 KiB)",
					fmt.Sprintf("%+.3f mallocs/op, %+.1f B/op (medians)", extra, extraB),
					extra < 0.1 && extraB < 8})
			}
		}
	}
	fmt.Fprintf(&b, "\n%d runs of every benchmark, -benchtime %s, interleaved (each run of the test binary runs them all back to back). Peers: rawws, a minimal server on loopback (pre-encoded frames, nearly free: the client is measured); coder, a coder/websocket server in the same process writing or reading as fast as it can. Raw output: `internal/bench/results/message.txt`.\n", cfg.count, cfg.benchtime)
	return [2]string{b.String(), "```\n" + string(stat) + "```\n"}, vs
}

func fmtDur(sec float64) string {
	return time.Duration(sec * 1e9).Round(time.Nanosecond).String()
}

// ---- profiles ----

func profiles(cfg config) string {
	var b strings.Builder
	top := func(title string, args ...string) {
		out := trimPaths(run("go", append([]string{"tool", "pprof"}, args...)...))
		lines := strings.Split(string(out), "\n")
		fmt.Fprintf(&b, "%s\n\n```\n%s\n```\n\n", title, strings.Join(lines[:min(len(lines), 28)], "\n"))
	}
	for _, op := range []string{"write", "read"} {
		for _, impl := range []string{"raw", "wsreconnect", "gorilla"} {
			prof := filepath.Join(resultsDir, fmt.Sprintf("cpu-%s-%s.prof", op, impl))
			run(bin("bench.test"), "-test.run", "^$", "-test.bench", fmt.Sprintf("^BenchmarkMessage$/^op=%s$/^peer=rawws$/^size=1KiB$/^impl=%s$", op, impl),
				"-test.benchtime", "3s", "-test.cpuprofile", prof)
			out := run("go", "tool", "pprof", "-top", "-nodecount", "30", bin("bench.test"), prof)
			save(fmt.Sprintf("profile-%s-%s.txt", op, impl), out)
		}
	}
	// Where wsreconnect's per-connection bytes go: heap in use by line,
	// wsreconnect minus raw, and where the heartbeat's CPU goes.
	rawHeap := filepath.Join(resultsDir, "heap-raw.prof")
	wsrHeap := filepath.Join(resultsDir, "heap-wsreconnect.prof")
	hbCPU := filepath.Join(resultsDir, "cpu-heartbeat.prof")
	run(bin("conncost"), "-impl", "raw", "-n", "2000", "-window", "0", "-memprofile", rawHeap)
	run(bin("conncost"), "-impl", "wsreconnect", "-n", "2000", "-window", "0", "-memprofile", wsrHeap)
	run(bin("conncost"), "-impl", "wsreconnect", "-n", "2000", "-window", "10s", "-interval", "1s", "-timeout", "1s", "-cpuprofile", hbCPU)
	top("Heap in use, wsreconnect minus raw, 2,000 idle connections, default options (`-base`; every allocation sampled):",
		"-top", "-lines", "-inuse_space", "-nodecount", "20", "-base", rawHeap, bin("conncost"), wsrHeap)
	top("CPU of the heartbeat, 2,000 idle connections, 1 s interval, 10 s window:",
		"-top", "-nodecount", "20", bin("conncost"), hbCPU)
	for _, p := range []string{"write", "read"} {
		out, _ := os.ReadFile(filepath.Join(resultsDir, fmt.Sprintf("profile-%s-wsreconnect.txt", p)))
		lines := strings.Split(string(out), "\n")
		fmt.Fprintf(&b, "CPU, 1 KiB %s through wsreconnect (full profiles of both clients in `internal/bench/results/profile-*.txt`):\n\n```\n%s\n```\n\n", p, strings.Join(lines[:min(len(lines), 22)], "\n"))
	}
	return b.String()
}

// trimPaths makes the file names in a profile's text relative to the
// repository and to GOROOT/src.
func trimPaths(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte(rootDir+"/"), nil)
	for _, v := range []string{"GOROOT", "GOMODCACHE"} {
		dir, err := exec.Command("go", "env", v).Output()
		if err != nil {
			continue
		}
		d := strings.TrimSpace(string(dir))
		if v == "GOROOT" {
			d = filepath.Join(d, "src")
		}
		b = bytes.ReplaceAll(b, []byte(d+"/"), nil)
	}
	return b
}

// ---- per-connection ----

func connCost(cfg config) (string, []verdict) {
	res := map[string]conncost.Result{}
	for _, impl := range []string{"raw", "wsreconnect"} {
		args := append([]string{"-impl", impl, "-n", strconv.Itoa(cfg.connN), "-window", cfg.window.String()}, cfg.hbArgs...)
		out := run(bin("conncost"), args...)
		save("conncost-"+impl+".json", out)
		var r conncost.Result
		if err := json.Unmarshal(out, &r); err != nil {
			log.Fatal(err)
		}
		res[impl] = r
	}
	raw, w := res["raw"], res["wsreconnect"]
	kib := func(x float64) string { return fmt.Sprintf("%.2f KiB", x/1024) }
	var b strings.Builder
	b.WriteString("| client | goroutines/conn | heap in use/conn | stacks/conn | heap + stacks/conn | CPU over the window | pings in it | CPU per ping |\n|---|---|---|---|---|---|---|---|\n")
	for _, impl := range []string{"raw", "wsreconnect"} {
		r := res[impl]
		perPing := "–"
		if r.Pings > 0 {
			perPing = fmt.Sprintf("%.1f µs", r.CPUSeconds/float64(r.Pings)*1e6)
		}
		name := "raw coder/websocket + 1 reader goroutine"
		if impl == "wsreconnect" {
			name = fmt.Sprintf("wsreconnect, heartbeat %s/%s", r.Interval, r.Timeout)
		}
		fmt.Fprintf(&b, "| %s | %.2f | %s | %s | %s | %.3f s in %.0f s | %d | %s |\n", name, r.GoroutinesPerConn, kib(r.HeapPerConn), kib(r.StackPerConn),
			kib(r.HeapPerConn+r.StackPerConn), r.CPUSeconds, r.CPUWindowSeconds, r.Pings, perPing)
	}
	dg := w.GoroutinesPerConn - raw.GoroutinesPerConn
	dh, ds := w.HeapPerConn-raw.HeapPerConn, w.StackPerConn-raw.StackPerConn
	fmt.Fprintf(&b, "| **extra for wsreconnect** | **%+.2f** | **%s** | **%s** | **%s** | **%+.3f s** | | |\n", dg, kib(dh), kib(ds), kib(dh+ds), w.CPUSeconds-raw.CPUSeconds)
	fmt.Fprintf(&b, "\n%d idle connections per client, each client in its own process with the server in a third; figures are the change in `runtime.MemStats` (after five `runtime.GC()`) and `runtime.NumGoroutine()` from before dialling, divided by N; CPU is `getrusage(RUSAGE_SELF)` user+system over the window. Raw output: `internal/bench/results/conncost-*.json`.\n", cfg.connN)
	cpuPerMin := (w.CPUSeconds - raw.CPUSeconds) / w.CPUWindowSeconds * 60
	return b.String(), []verdict{
		{"extra goroutines per idle connection", "≤ 1", fmt.Sprintf("%.2f", dg), dg <= 1.001},
		{"extra bytes per idle connection (heap + stacks)", "≤ 4 KiB", kib(dh + ds), dh+ds <= 4096},
		{fmt.Sprintf("heartbeat CPU, %d connections (no target)", cfg.connN), "–", fmt.Sprintf("%.3f CPU-s per minute (%.2f %% of one core)", cpuPerMin, cpuPerMin/60*100), true},
	}
}

// ---- storm ----

func stormRuns(cfg config) (map[string]string, []verdict) {
	args := append([]string{"-svgdir", docsDir}, cfg.stormArgs...)
	out := run(bin("storm"), args...)
	save("storm.json", out)
	var rep storm.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		log.Fatal(err)
	}
	kind := func(m storm.Metrics) string {
		if m.Real {
			return "real"
		}
		return "sim"
	}
	cause := func(c storm.Cause) string {
		if c == storm.Drop {
			return "TCP drop (1006)"
		}
		return "1013 to all"
	}
	t99 := func(m storm.Metrics) string {
		if m.T99 < 0 {
			return "not within 30 min"
		}
		return fmt.Sprintf("%.2f s", m.T99)
	}
	ratio := func(m storm.Metrics) string {
		if m.T99Ratio < 0 {
			return "∞"
		}
		return fmt.Sprintf("%.2f×", m.T99Ratio)
	}
	okMark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	var vs []verdict
	sections := map[string]string{}

	// Peaks, no capacity limit.
	var b strings.Builder
	b.WriteString("| N | run | cause | schedule | first window | peak /100 ms | uniform /100 ms over it | peak ÷ uniform | peak ÷ (N/10) | target |\n|---|---|---|---|---|---|---|---|---|---|\n")
	peakRows := append(slices.Clone(rep.Sim), rep.Real...)
	for _, m := range peakRows {
		if m.Capacity != 0 || m.Variant == "proposed" || m.Server != storm.Plain {
			continue
		}
		target := fmt.Sprintf("window ≥ 1 s, ≤ %.2f×: %s", storm.PeakTarget(m.N), okMark(m.PeakOK()))
		if m.N < 1000 {
			target = "none for N < 1,000"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | [%.2f, %.2f] s = %.2f s | %d | %.0f | %.2f× | %.2f× | %s |\n", m.N, kind(m), cause(m.Cause), m.Variant,
			m.WindowStart, m.WindowEnd, m.Window, m.Peak, m.Uniform, m.PeakRatio, m.PeakRatio1s, target)
		if m.Variant == "library" && m.N >= 1000 {
			vs = append(vs, verdict{fmt.Sprintf("storm peak, %s, %s, N = %d", kind(m), cause(m.Cause), m.N),
				fmt.Sprintf("window ≥ 1 s, peak ≤ %.2f× uniform", storm.PeakTarget(m.N)), fmt.Sprintf("%.2f s, %.2f×", m.Window, m.PeakRatio), m.PeakOK()})
		}
	}
	b.WriteString("\nThe first window is the span of the clients' first attempts (from their 1st to 99th percentile, stretched by 1/0.98); \"peak ÷ (N/10)\" compares the peak with a uniform spread over 1 s, the shortest window the target allows.\n")
	sections["storm-peak"] = b.String()

	// At capacity.
	b.Reset()
	fmt.Fprintf(&b, "| N | run | cause | schedule | 99 %% back | limit 0.99·N/C | ratio | attempts mean / p99 / max | target (≤ 1.25×, ≤ 6) |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range peakRows {
		if m.Capacity == 0 || m.Server != storm.Plain {
			continue
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %.2f s | %s | %.2f / %d / %d | %s |\n", m.N, kind(m), cause(m.Cause), m.Variant, t99(m), m.Limit, ratio(m),
			m.AttemptsMean, m.AttemptsP99, m.AttemptsMax, okMark(m.CapacityOK()))
		if m.Variant == "library" && (m.Real || m.N == slices.Max(rep.SimNs)) {
			vs = append(vs, verdict{fmt.Sprintf("storm at capacity (N/C = %.0f s), %s, %s, N = %d", rep.NC, kind(m), cause(m.Cause), m.N),
				"99 % back ≤ 1.25× limit, ≤ 6 attempts", fmt.Sprintf("%s, max %d attempts", ratio(m), m.AttemptsMax), m.CapacityOK()})
		}
	}
	fmt.Fprintf(&b, "\nThe server admits C = N/%.0f connections per second (a token bucket with a burst of C/10, full at the drop) and refuses the rest with HTTP 503 and no Retry-After.\n", rep.NC)
	sections["storm-capacity"] = b.String()

	// A server that paces the refused with Retry-After.
	b.Reset()
	fmt.Fprintf(&b, "| N | N/C | run | cause | the server answers a refusal with | 99 %% back | limit 0.99·N/C | ratio | attempts mean / p99 / max | back before Retry-After | busiest 1 s ÷ C | target (≤ 1.10×, ≤ 3) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	pacedRow := func(m storm.Metrics) {
		fmt.Fprintf(&b, "| %d | %.0f s | %s | %s | %s | %s | %.2f s | %s | %.2f / %d / %d | %d | %.2f | %s |\n", m.N, float64(m.N)/m.Capacity, kind(m), cause(m.Cause), m.Server.Describe(),
			t99(m), m.Limit, ratio(m), m.AttemptsMean, m.AttemptsP99, m.AttemptsMax, m.Early, float64(m.AdmitPeak1s)/m.Capacity, okMark(m.PacedOK()))
	}
	big := slices.Max(rep.SimNs)
	for _, m := range peakRows {
		if m.Capacity == 0 || m.Variant != "library" || (!m.Real && m.N != big) {
			continue
		}
		pacedRow(m)
		if m.Server == storm.Paced {
			what := fmt.Sprintf("server-paced 503 + Retry-After (N/C = %.0f s), %s, %s, N = %d", rep.NC, kind(m), cause(m.Cause), m.N)
			vs = append(vs,
				verdict{what + ": 99 % back", "≤ 1.10× limit", fmt.Sprintf("%s (%s)", ratio(m), t99(m)), m.T99Ratio >= 0 && m.T99Ratio <= 1.1},
				verdict{what + ": attempts per client", "≤ 3", fmt.Sprintf("max %d (mean %.2f, p99 %d)", m.AttemptsMax, m.AttemptsMean, m.AttemptsP99), m.AttemptsMax <= 3})
		}
	}
	for _, m := range rep.Sweep {
		if m.Variant == "library" && float64(m.N)/m.Capacity != rep.NC {
			pacedRow(m)
		}
	}
	fmt.Fprintf(&b, "\nEvery client runs the library's defaults. The server admits C connections per second (the same token bucket as above) and refuses the rest with 503; \"back before Retry-After\" counts the attempts that came sooner than the server's last Retry-After to that client; \"busiest 1 s\" is the most admissions in any one-second window (the bucket alone allows 1.1·C).\n")
	sections["storm-paced"] = b.String()

	b.Reset()
	b.WriteString("| schedule | what it is | real runs |\n|---|---|---|\n")
	for _, v := range rep.Variants {
		r := "simulation only"
		if v.Real {
			r = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", v.Name, v.Desc, r)
	}
	sections["storm-variants"] = b.String()
	return sections, vs
}

// ---- detection ----

func detection(cfg config) (string, []verdict) {
	args := append([]string{"-svg", filepath.Join(docsDir, "detect.svg")}, cfg.detectArgs...)
	out := run(bin("detect"), args...)
	save("detect.json", out)
	var rs []detect.Result
	if err := json.Unmarshal(out, &rs); err != nil {
		log.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| peer dies by | connections | median | max | min | other ends / undetected | target (median ≤ 1.05, max ≤ 1.2) |\n|---|---|---|---|---|---|---|\n")
	var vs []verdict
	for _, r := range rs {
		ok := r.Median <= 1.05 && r.Max <= 1.2 && r.OtherEnds == 0 && r.Undetected == 0
		mark := "met"
		if !ok {
			mark = "**missed**"
		}
		fmt.Fprintf(&b, "| %s | %d | %.3f | %.3f | %.3f | %d / %d | %s |\n", r.Mode, r.N, r.Median, r.Max, r.Min, r.OtherEnds, r.Undetected, mark)
		vs = append(vs, verdict{"dead-peer detection ÷ (interval + timeout), " + r.Mode, "median ≤ 1.05, max ≤ 1.2", fmt.Sprintf("%.3f, %.3f", r.Median, r.Max), ok})
	}
	if len(rs) > 0 {
		fmt.Fprintf(&b, "\nHeartbeat interval %s, timeout %s. Raw output: `internal/bench/results/detect.json`.\n", rs[0].Interval, rs[0].Timeout)
	}
	return b.String(), vs
}

// ---- fleet ----

func fleetRuns(cfg config) (string, []verdict) {
	args := append([]string{"-svg", filepath.Join(docsDir, "fleet.svg")}, cfg.fleetArgs...)
	out := run(bin("fleet"), args...)
	save("fleet.json", out)
	var rs []fleet.Result
	if err := json.Unmarshal(out, &rs); err != nil {
		log.Fatal(err)
	}
	secs := func(x float64) string {
		if x < 0 {
			return "not all"
		}
		return fmt.Sprintf("%.2f s", x)
	}
	var b strings.Builder
	b.WriteString("| limiter | all back | 99 % back | handshakes | dials started: most in any 1 s / 100 ms | handshakes at the server: most in any 1 s / 100 ms | server's busiest whole second | bound R + B per 1 s / R/10 + B per 100 ms |\n|---|---|---|---|---|---|---|---|\n")
	var vs []verdict
	for _, r := range rs {
		bound, name := "–", "none"
		if r.Limited {
			bound = fmt.Sprintf("%d / %d", r.Bound1s, r.Bound100ms)
			name = fmt.Sprintf("one rate.Limiter(%.0f, %d) shared by all", r.Rate, r.Burst)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d / %d | %d / %d | %d | %s |\n", name, secs(r.AllBack), secs(r.Back99), r.Attempts,
			r.ClientMax1s, r.ClientMax100ms, r.Max1s, r.Max100ms, slices.Max(append([]int{0}, r.PerSecond...)), bound)
		if r.Limited {
			what := fmt.Sprintf("limited fleet never exceeds R + burst per second (N = %d, R = %.0f/s, burst %d): dials started in any 1 s", r.N, r.Rate, r.Burst)
			vs = append(vs, verdict{what, fmt.Sprintf("≤ %d", r.Bound1s), fmt.Sprintf("%d (busiest from %.2f s)", r.ClientMax1s, r.ClientMax1sAt), r.ClientMax1s <= r.Bound1s},
				verdict{"the same fleet, handshakes as the server saw them (no target)", "–",
					fmt.Sprintf("%d in any 1 s (busiest from %.2f s), %d in the busiest whole second", r.Max1s, r.Max1sAt, slices.Max(append([]int{0}, r.PerSecond...))), true})
		}
	}
	if len(rs) > 0 {
		r := rs[0]
		fmt.Fprintf(&b, "\n%d wsreconnect Conns in one process (heartbeat off, all other options at their defaults), the server in a child process; both on 127.0.0.1. Connecting the fleet took %.1f s; the server closed all %d sockets in %.2f s, and 99 %% of the Conns had reported the drop %.2f s after it began, their standard schedule choosing delays of %.2f s on average (%.2f to %.2f s). Raw output: `internal/bench/results/fleet.json`.\n",
			r.N, r.SetupSeconds, r.N, r.DropSeconds, r.NoticeP99, r.DelayMean, r.DelayMin, r.DelayMax)
	}
	return b.String(), vs
}

// mean is the arithmetic mean of xs (0 for none).
