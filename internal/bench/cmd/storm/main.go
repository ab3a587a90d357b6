// Command storm runs the reconnect-storm benchmarks: simulated storms of
// up to 100,000 clients on the library's real schedule code, and real
// storms of wsreconnect Conns on 127.0.0.1, against a server at capacity
// that refuses with 503 without Retry-After or, paced, with one (the
// library's schedules only). It prints one JSON document (the metrics of
// every run) and writes the arrival charts as SVG.
//
//	go run ./cmd/storm -svgdir ../../docs > storm.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wsreconnect/wsreconnect/internal/bench/conncost"
	"github.com/wsreconnect/wsreconnect/internal/bench/storm"
	"github.com/wsreconnect/wsreconnect/internal/bench/svgchart"
)

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			n, err := strconv.Atoi(f)
			if err != nil {
				log.Fatalf("bad number %q", f)
			}
			out = append(out, n)
		}
	}
	return out
}

func floats(s string) []float64 {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			x, err := strconv.ParseFloat(f, 64)
			if err != nil {
				log.Fatalf("bad number %q", f)
			}
			out = append(out, x)
		}
	}
	return out
}

func main() {
	var (
		simN    = flag.String("sim-n", "2000,10000,100000", "simulated storm sizes")
		realN   = flag.Int("real-n", 2000, "real clients (0: no real storm)")
		nc      = flag.Float64("nc", 10, "N/C in seconds: the capacity-limited server admits N/nc per second")
		sweep   = flag.String("sweep", "3,10,30", "N/C values (seconds) for the sweep at the largest simulated N")
		svgdir  = flag.String("svgdir", "", "write the charts here (none when empty)")
		timeout = flag.Duration("timeout", 3*time.Minute, "longest wait for a real storm to settle")
		study   = flag.Bool("study", false, "print the schedule study's tables (minutes) and nothing else")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("storm: ")
	if *study {
		fmt.Print(storm.StudyTables())
		return
	}
	start := time.Now()
	rep := storm.Report{SimNs: ints(*simN), RealN: *realN, NC: *nc, SweepNCs: floats(*sweep)}
	for _, v := range storm.Variants() {
		rep.Variants = append(rep.Variants, storm.VariantDesc{Name: v.Name, Desc: v.Desc, Real: v.Options != nil})
	}
	causes := []storm.Cause{storm.Drop, storm.TryAgainLater}
	sims := map[string]*storm.Outcome{}
	key := func(n int, c storm.Cause, capacity float64, v string) string {
		return fmt.Sprint(n, c, capacity, v)
	}
	// The servers that answer a refusal with a Retry-After: simulated
	// with the library's schedules, at every size and in the sweep.
	pacedServers := []storm.Server{storm.Backlog, storm.Paced}
	pacedSims := map[string]*storm.Outcome{}

	// Simulated storms: every variant, cause, size, with and without a
	// capacity limit.
	for _, n := range rep.SimNs {
		for _, c := range causes {
			for _, capacity := range []float64{0, float64(n) / *nc} {
				for _, v := range storm.Variants() {
					o := storm.Simulate(storm.SimConfig{N: n, Cause: c, Capacity: capacity}, v)
					sims[key(n, c, capacity, v.Name)] = o
					rep.Sim = append(rep.Sim, o.Compute())
				}
			}
			for _, srv := range pacedServers {
				capacity := float64(n) / *nc
				o := storm.Simulate(storm.SimConfig{N: n, Cause: c, Capacity: capacity, Server: srv}, storm.Library())
				pacedSims[key(n, c, capacity, string(srv))] = o
				rep.Sim = append(rep.Sim, o.Compute())
			}
		}
	}
	// The capacity sweep, at the largest N.
	big := rep.SimNs[len(rep.SimNs)-1]
	for _, x := range rep.SweepNCs {
		for _, c := range causes {
			for _, v := range storm.Variants() {
				if v.Name == "no jitter" {
					continue
				}
				cfg := storm.SimConfig{N: big, Cause: c, Capacity: float64(big) / x}
				rep.Sweep = append(rep.Sweep, storm.Simulate(cfg, v).Compute())
			}
			for _, srv := range pacedServers {
				cfg := storm.SimConfig{N: big, Cause: c, Capacity: float64(big) / x, Server: srv}
				rep.Sweep = append(rep.Sweep, storm.Simulate(cfg, storm.Library()).Compute())
			}
		}
	}

	// Real storms.
	reals := map[string]*storm.Outcome{}
	if *realN > 0 {
		if err := conncost.RaiseFileLimit(uint64(4**realN) + 1024); err != nil {
			log.Fatal(err)
		}
		type run struct {
			v        storm.Variant
			c        storm.Cause
			capacity float64
			server   storm.Server
		}
		capacity := float64(*realN) / *nc
		runs := []run{
			{storm.Library(), storm.Drop, 0, storm.Plain}, {storm.Library(), storm.TryAgainLater, 0, storm.Plain},
			{storm.NoJitter(), storm.Drop, 0, storm.Plain}, {storm.BackoffV4(), storm.Drop, 0, storm.Plain},
			{storm.Library(), storm.Drop, capacity, storm.Plain}, {storm.Library(), storm.TryAgainLater, capacity, storm.Plain},
			{storm.Library(), storm.Drop, capacity, storm.Paced}, {storm.Library(), storm.TryAgainLater, capacity, storm.Paced},
		}
		for _, r := range runs {
			t := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), *timeout+2*time.Minute)
			o, err := storm.RunReal(ctx, storm.RealConfig{N: *realN, Cause: r.c, Capacity: r.capacity, Variant: r.v, Timeout: *timeout, Server: r.server})
			cancel()
			if err != nil {
				log.Fatalf("real %s %s %s: %v", r.v.Name, r.c, r.server, err)
			}
			if r.server == storm.Plain {
				reals[key(*realN, r.c, r.capacity, r.v.Name)] = o
			} else {
				reals[key(*realN, r.c, r.capacity, string(r.server))] = o
			}
			m := o.Compute()
			rep.Real = append(rep.Real, m)
			log.Printf("real %-16s %-4s capacity %5.0f/s %-6s: back %d/%d, t99 %.2fs (%v)", r.v.Name, r.c, r.capacity, r.server, m.Back, m.N, m.T99, time.Since(t).Round(time.Millisecond))
		}
	}

	if *svgdir != "" {
		write := func(name string, ch interface{ WriteFile(string) error }) {
			if err := ch.WriteFile(filepath.Join(*svgdir, name)); err != nil {
				log.Fatal(err)
			}
		}
		n := big
		u := float64(n) * storm.Bin.Seconds()
		get := func(c storm.Cause, capacity float64, v string) *storm.Outcome { return sims[key(n, c, capacity, v)] }
		write("storm-sim-drop.svg", storm.ArrivalChart(
			fmt.Sprintf("Simulated storm of %d clients, everyone admitted: attempts per 100 ms", n), n,
			[]*storm.Outcome{get(storm.Drop, 0, "no jitter"), get(storm.Drop, 0, "backoff/v4 ±50%"), get(storm.Drop, 0, "library"), get(storm.TryAgainLater, 0, "library")},
			[]string{"no jitter (1006)", "backoff/v4 ±50% (1006)", "library (1006)", "library (1013)"}, 2.5, 2.6*u, 0))
		capacity := float64(n) / *nc
		write("storm-sim-capacity.svg", storm.ArrivalChart(
			fmt.Sprintf("Simulated storm of %d clients against a server at capacity", n), n,
			[]*storm.Outcome{get(storm.TryAgainLater, capacity, "library"), get(storm.TryAgainLater, capacity, "proposed"), get(storm.Drop, capacity, "library")},
			[]string{"library, 1013", "proposed, 1013", "library, TCP drop"}, 32, 0, capacity))
		var outs []*storm.Outcome
		var names []string
		colors := map[string]string{"backoff/v4 ±50%": "#1f77b4", "library": "#ff7f0e", "proposed": "#2ca02c"}
		for _, v := range []string{"backoff/v4 ±50%", "library", "proposed"} {
			for _, c := range causes {
				outs = append(outs, get(c, capacity, v))
				names = append(names, fmt.Sprintf("%s, %s", v, map[storm.Cause]string{storm.Drop: "TCP drop", storm.TryAgainLater: "1013"}[c]))
			}
		}
		back := storm.BackChart(
			fmt.Sprintf("Simulated storm of %d clients at capacity: clients back over time", n), n, capacity, outs, names, 32)
		for i := range back.Series {
			back.Series[i].Color = colors[[]string{"backoff/v4 ±50%", "library", "proposed"}[i/2]]
			back.Series[i].Dash = i%2 == 1
		}
		write("storm-sim-back.svg", back)

		// The servers that pace with Retry-After, against the plain one.
		var pouts []*storm.Outcome
		var pnames []string
		pcolors := []string{"#7f7f7f", "#9467bd", "#2ca02c"}
		var pcol []string
		for i, srv := range []storm.Server{storm.Plain, storm.Backlog, storm.Paced} {
			for _, c := range causes {
				o := get(c, capacity, "library")
				if srv != storm.Plain {
					o = pacedSims[key(n, c, capacity, string(srv))]
				}
				pouts = append(pouts, o)
				pnames = append(pnames, fmt.Sprintf("%s, %s", srv.Describe(), map[storm.Cause]string{storm.Drop: "TCP drop", storm.TryAgainLater: "1013"}[c]))
				pcol = append(pcol, pcolors[i])
			}
		}
		pback := storm.BackChart(
			fmt.Sprintf("Simulated storm of %d clients at capacity: what the server answers", n), n, capacity, pouts, pnames, 32)
		pback.Subtitle = fmt.Sprintf("N = %d clients with the library's defaults, server admits %.0f/s; limit 0.99·N/C = %.1f s", n, capacity, 0.99*float64(n)/capacity)
		pback.Refs = append(pback.Refs, svgchart.Ref{Label: "1.1 × limit", Value: 1.1 * 0.99 * float64(n) / capacity, Color: "#2ca02c"})
		for i := range pback.Series {
			pback.Series[i].Color = pcol[i]
			pback.Series[i].Dash = i%2 == 1
		}
		write("storm-paced-back.svg", pback)
		if *realN > 0 {
			rn := *realN
			ru := float64(rn) * storm.Bin.Seconds()
			rget := func(c storm.Cause, capacity float64, v string) *storm.Outcome { return reals[key(rn, c, capacity, v)] }
			write("storm-real.svg", storm.ArrivalChart(
				fmt.Sprintf("Real storm of %d wsreconnect Conns on 127.0.0.1: attempts per 100 ms", rn), rn,
				[]*storm.Outcome{rget(storm.Drop, 0, "no jitter"), rget(storm.Drop, 0, "backoff/v4 ±50%"), rget(storm.Drop, 0, "library"), rget(storm.TryAgainLater, 0, "library")},
				[]string{"no jitter (1006)", "backoff/v4 ±50% (1006)", "library (1006)", "library (1013)"}, 2.5, 2.6*ru, 0))
			rc := float64(rn) / *nc
			ch := storm.ArrivalChart(
				fmt.Sprintf("Real storm of %d Conns against a server at capacity, and the simulation", rn), rn,
				[]*storm.Outcome{rget(storm.TryAgainLater, rc, "library"), rget(storm.Drop, rc, "library")},
				[]string{"real: library, 1013", "real: library, TCP drop"}, 32, 0, rc)
			if o := sims[key(rn, storm.TryAgainLater, rc, "library")]; o != nil {
				s := storm.HistogramSeries(o, "simulated: library, 1013", 32, true)
				s.Color = "#1f77b4"
				ch.Series = append(ch.Series, s)
			}
			if o := sims[key(rn, storm.Drop, rc, "library")]; o != nil {
				s := storm.HistogramSeries(o, "simulated: library, TCP drop", 32, true)
				s.Color = "#d62728"
				ch.Series = append(ch.Series, s)
			}
			write("storm-real-capacity.svg", ch)
			if o := reals[key(rn, storm.TryAgainLater, rc, string(storm.Paced))]; o != nil {
				pch := storm.ArrivalChart(
					fmt.Sprintf("Real storm of %d Conns against a server at capacity that paces them with Retry-After", rn), rn,
					[]*storm.Outcome{rget(storm.TryAgainLater, rc, "library"), o, reals[key(rn, storm.Drop, rc, string(storm.Paced))]},
					[]string{"1013, then 503 without Retry-After", "1013, then 503 + Retry-After (paced)", "TCP drop, then 503 + Retry-After (paced)"}, 24, 0, rc)
				write("storm-paced-real.svg", pch)
			}
		}
	}
	rep.ElapsedSec = time.Since(start).Seconds()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		log.Fatal(err)
	}
}
