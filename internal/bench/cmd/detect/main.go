// Command detect measures dead-peer detection: for each mode (see package
// detect), N wsreconnect Conns whose peer goes dead at a random instant;
// it prints the ratios detection ÷ (interval + timeout) as JSON and writes
// their distribution as SVG.
//
//	go run ./cmd/detect -n 50 -interval 200ms -timeout 200ms -svg ../../docs/detect.svg
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"strings"
	"time"

	"github.com/wsreconnect/wsreconnect/internal/bench/detect"
)

func main() {
	var (
		n        = flag.Int("n", 50, "connections per mode")
		interval = flag.Duration("interval", 200*time.Millisecond, "heartbeat interval")
		timeout  = flag.Duration("timeout", 200*time.Millisecond, "heartbeat timeout")
		modes    = flag.String("modes", strings.Join(detect.Modes, ","), "ways the peer dies: proxy, stopread, inflight")
		svg      = flag.String("svg", "", "write the chart here")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("detect: ")
	var results []detect.Result
	for _, m := range strings.Split(*modes, ",") {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		r, err := detect.Run(ctx, detect.Config{Mode: m, N: *n, Interval: *interval, Timeout: *timeout})
		cancel()
		if err != nil {
			log.Fatalf("%s: %v", m, err)
		}
		results = append(results, r)
	}
	if *svg != "" {
		if err := detect.Chart(results).WriteFile(*svg); err != nil {
			log.Fatal(err)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		log.Fatal(err)
	}
}
