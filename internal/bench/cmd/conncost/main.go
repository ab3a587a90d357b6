// Command conncost measures the per-connection cost of idle connections:
// goroutines, heap and stack bytes per connection, and the CPU time spent
// over a window (the heartbeat's cost for wsreconnect). It runs its server
// in a child process (itself with -serve), so that only the client is
// measured, and prints one JSON Result on stdout.
//
//	go run ./cmd/conncost -impl raw -n 10000 -window 1m
//	go run ./cmd/conncost -impl wsreconnect -n 10000 -window 1m
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/wsreconnect/wsreconnect/internal/bench/conncost"
)

func main() {
	var (
		serve    = flag.Bool("serve", false, "run the server: print its URL, serve until stdin closes")
		impl     = flag.String("impl", "wsreconnect", "client: raw or wsreconnect")
		n        = flag.Int("n", 10000, "idle connections")
		window   = flag.Duration("window", time.Minute, "CPU measurement window (0: skip)")
		interval = flag.Duration("interval", 0, "heartbeat interval (0: the library's default, 20s)")
		timeout  = flag.Duration("timeout", 0, "heartbeat timeout (with -interval; 0: the default, 10s)")
		memprof  = flag.String("memprofile", "", "write a heap profile of the connected state to this file")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the idle window to this file")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("conncost: ")
	if err := conncost.RaiseFileLimit(uint64(*n) + 1024); err != nil {
		log.Fatal(err)
	}
	if *serve {
		s, err := conncost.StartServer()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(s.URL)
		_, _ = io.Copy(io.Discard, os.Stdin)
		s.Close()
		return
	}
	if *interval != 0 && *timeout == 0 {
		*timeout = *interval / 2
	}

	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(self, "-serve", "-n", fmt.Sprint(*n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		log.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		log.Fatal("server: ", err)
	}
	url = strings.TrimSpace(url)
	statsURL := "http" + strings.TrimPrefix(url, "ws") + "stats"

	cfg := conncost.Config{
		URL: url, StatsURL: statsURL, Impl: *impl, N: *n,
		Interval: *interval, Timeout: *timeout, CPUWindow: *window,
	}
	if *memprof != "" {
		runtime.MemProfileRate = 1 // every allocation, for exact per-site bytes
		cfg.HeapProfile = func() {
			f, err := os.Create(*memprof)
			if err != nil {
				log.Fatal(err)
			}
			defer f.Close()
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				log.Fatal(err)
			}
		}
	}
	if *cpuprof != "" {
		var f *os.File
		cfg.CPUProfile = func(start bool) {
			if !start {
				pprof.StopCPUProfile()
				_ = f.Close()
				return
			}
			var err error
			if f, err = os.Create(*cpuprof); err != nil {
				log.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				log.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	res, err := conncost.Run(ctx, cfg)
	cancel()
	_ = stdin.Close()
	_ = cmd.Wait()
	if err != nil {
		log.Fatal(err)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
}
