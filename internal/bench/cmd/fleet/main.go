// Command fleet measures WithDialLimiter: N wsreconnect Conns in one
// process dropped at once, first without a limiter (each Conn follows its
// schedule), then with one golang.org/x/time/rate.Limiter shared by all of
// them. The server runs in a child process (this program with -serve).
// It prints the results as JSON and writes the chart as SVG.
//
//	go run ./cmd/fleet -n 5000 -rate 500 -burst 50 -svg ../../docs/fleet.svg
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"time"

	"github.com/wsreconnect/wsreconnect/internal/bench/conncost"
	"github.com/wsreconnect/wsreconnect/internal/bench/fleet"
)

func main() {
	var (
		n       = flag.Int("n", 5000, "Conns in the fleet")
		r       = flag.Float64("rate", 500, "dials per second of the shared limiter")
		burst   = flag.Int("burst", 50, "burst of the shared limiter")
		timeout = flag.Duration("timeout", 2*time.Minute, "longest wait for the fleet to come back")
		svg     = flag.String("svg", "", "write the chart here")
		inproc  = flag.Bool("inproc", false, "run the server in this process (default: in a child process)")
		serve   = flag.Bool("serve", false, "be the server: see fleet.Serve")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("fleet: ")
	if err := conncost.RaiseFileLimit(uint64(3**n) + 1024); err != nil {
		log.Fatal(err)
	}
	if *serve {
		if err := fleet.Serve(*n, os.Stdin, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	server := fleet.StartServer
	if !*inproc {
		self, err := os.Executable()
		if err != nil {
			log.Fatal(err)
		}
		server = fleet.StartChild(self, "-serve")
	}
	var results []*fleet.Result
	for _, rate := range []float64{0, *r} {
		t := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), *timeout+2*time.Minute)
		res, err := fleet.Run(ctx, fleet.Config{N: *n, Rate: rate, Burst: *burst, Timeout: *timeout, Server: server})
		cancel()
		if err != nil {
			log.Fatalf("%v/s: %v", rate, err)
		}
		log.Printf("%-40s back %d/%d, all back %.2fs, max %d per 1 s, %d per 100 ms (%v)", fleet.Name(res), res.Back, res.N, res.AllBack, res.Max1s, res.Max100ms, time.Since(t).Round(time.Millisecond))
		results = append(results, res)
	}
	if *svg != "" {
		if err := fleet.Chart(results).WriteFile(*svg); err != nil {
			log.Fatal(err)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		log.Fatal(err)
	}
}
