// Package redistest starts a real redis-server for a test: on 127.0.0.1,
// on a free port, in a temporary directory, persisting nothing, and
// killed when the test ends. The tests of resume/redisstore and of
// internal/faulttest use it.
//
// Without redis-server (Debian's redis-server package) a test is skipped,
// except under CI=true, where it fails: CI must never pass without the
// real thing. WSRECONNECT_REDIS_SERVER names another binary.
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startTimeout bounds how long a redis-server may take to say it is
// ready (it says so within milliseconds).
const startTimeout = 30 * time.Second

// Server is a running redis-server.
type Server struct {
	// Addr is its host:port, on 127.0.0.1.
	Addr string

	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has been waited for
}

// Start starts a redis-server that is killed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("WSRECONNECT_REDIS_SERVER")
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server unavailable under CI=true: %v (.ci/run installs redis-server)", err)
		}
		t.Skipf("redis-server unavailable: %v (apt-get install redis-server)", err)
	}
	dir := t.TempDir()
	// A port picked by the kernel may be taken again before redis-server
	// binds it: then it says so and exits, and another is tried.
	var tries []string
	for range 5 {
		s, out, err := start(path, dir)
		if err == nil {
			t.Cleanup(s.Kill)
			return s
		}
		tries = append(tries, fmt.Sprintf("%v\n%s", err, out))
	}
	t.Fatalf("redis-server did not start:\n%s", strings.Join(tries, "\n"))
	return nil
}

func start(path, dir string) (*Server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(path,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, done: make(chan struct{})}
	// It logs "Ready to accept connections" once it listens, or why it
	// cannot, and exits.
	ready := make(chan bool, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if !ok {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "Ready to accept connections") {
					ok = true
					ready <- true
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		if !ok {
			ready <- false
		}
		_ = cmd.Wait()
		close(s.done)
	}()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case ok := <-ready:
		if ok {
			return s, "", nil
		}
		<-s.done
		return nil, log.String(), fmt.Errorf("redis-server on port %d exited", port)
	case <-t.C:
		s.Kill()
		return nil, "", fmt.Errorf("redis-server on port %d not ready within %v", port, startTimeout)
	}
}

// Kill kills the server and waits for it to exit.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}
