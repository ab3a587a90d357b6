package faulttest

// The servers of the resume tests: the Go server (package resume) and
// testdata/resume_server.py, a second implementation written from
// PROTOCOL.md alone. Both listen on a fixed 127.0.0.1 port, so that a
// test can restart one where its proxy and its client expect it.

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	"github.com/wsreconnect/wsreconnect/resume"
)

// resumeServer is one server under test.
type resumeServer interface {
	// addr is where it listens, host:port.
	addr() string
	// stop ends it; restart starts it again on the same port, having
	// forgotten everything it kept in memory.
	stop()
	restart(t *testing.T)
}

// goServer runs resume.NewServer behind an http.Server.
type goServer struct {
	address string
	serve   func(context.Context, *resume.Session)
	opts    []resume.Option

	mu   sync.Mutex
	srv  *resume.Server
	hs   *http.Server
	done chan struct{} // closed when hs.Serve has returned
}

// startGoServer starts a Go server; port 0 picks a free one.
func startGoServer(t *testing.T, port int, serve func(context.Context, *resume.Session), opts ...resume.Option) *goServer {
	g := &goServer{address: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), serve: serve, opts: opts}
	g.restart(t)
	t.Cleanup(g.stop)
	return g
}

func (g *goServer) addr() string { return g.address }

func (g *goServer) restart(t *testing.T) {
	t.Helper()
	srv, err := resume.NewServer(g.serve, g.opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", g.address)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.address = ln.Addr().String()
	g.srv, g.hs, g.done = srv, &http.Server{Handler: srv}, make(chan struct{})
	go func(hs *http.Server, done chan struct{}) {
		defer close(done)
		_ = hs.Serve(ln)
	}(g.hs, g.done)
}

// stop closes the listener, then the Server: its sessions' connections
// are closed (1001) and every ServeConn has returned.
func (g *goServer) stop() {
	g.mu.Lock()
	srv, hs, done := g.srv, g.hs, g.done
	g.srv = nil
	g.mu.Unlock()
	if srv == nil {
		return
	}
	_ = hs.Close()
	<-done
	_ = srv.Close()
}

func (g *goServer) server() *resume.Server {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.srv
}

// pyServer runs testdata/resume_server.py.
type pyServer struct {
	args []string
	port string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	errs *lockedBuffer
}

// startPyServer starts the Python server with args (its options, see
// the script). Without Debian's python3-websockets the test is skipped,
// except under CI=true, where it fails.
func startPyServer(t *testing.T, args ...string) *pyServer {
	t.Helper()
	requirePython(t)
	p := &pyServer{args: args, port: "0"}
	p.restart(t)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			if s := p.stderr(); s != "" {
				t.Logf("resume_server.py stderr:\n%s", s)
			}
		}
	})
	return p
}

func (p *pyServer) addr() string { return "127.0.0.1:" + p.port }

func (p *pyServer) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.errs == nil {
		return ""
	}
	return p.errs.String()
}

func (p *pyServer) restart(t *testing.T) {
	t.Helper()
	cmd := exec.Command(pythonPath(), append([]string{"testdata/resume_server.py", "--port", p.port}, p.args...)...)
	errs := &lockedBuffer{}
	cmd.Stderr = errs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", pythonPath(), err)
	}
	done := make(chan struct{})
	port := make(chan string, 1)
	go func() {
		defer close(done)
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		port <- strings.TrimSpace(line)
		_ = cmd.Wait() // after the read: Wait closes stdout
	}()
	p.mu.Lock()
	p.cmd, p.done, p.errs = cmd, done, errs
	p.mu.Unlock()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case got := <-port:
		if got == "" {
			<-done
			t.Fatalf("resume_server.py exited before printing its port:\n%s", errs.String())
		}
		p.port = got
	case <-timer.C:
		p.stop()
		t.Fatalf("resume_server.py printed no port within %v:\n%s", waitTimeout, errs.String())
	}
}

// stop kills the process: a crash, nothing said to the clients.
func (p *pyServer) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// requirePython skips (fails under CI=true) without Python's websockets.
func requirePython(t *testing.T) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if inCI() {
			t.Fatalf("third-party peer unavailable under CI=true: "+format+" (.ci/run installs python3-websockets)", args...)
		}
		t.Skipf("third-party peer unavailable: "+format+" (apt-get install python3-websockets)", args...)
	}
	python := pythonPath()
	if out, err := exec.Command(python, "-c", "import websockets").CombinedOutput(); err != nil {
		missing("%s cannot import websockets: %v: %s", python, err, strings.TrimSpace(string(out)))
	}
}

// resumeProxy is toxiproxy in front of a server.
type resumeProxy struct {
	t     *testing.T
	proxy *toxiproxy.Proxy
	addr  string // where it listens, also after a Stop and Start
}

func newResumeProxy(t *testing.T, upstream string) *resumeProxy {
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(api, strings.ReplaceAll(t.Name(), "/", "_")+"_"+upstream, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &resumeProxy{t: t, proxy: p, addr: p.Listen}
}

func (p *resumeProxy) url() string { return "ws://" + p.addr + "/" }

// add adds a toxic; remove removes it (a toxic already gone is fine).
func (p *resumeProxy) add(name, typ, stream string, attrs map[string]any) error {
	_, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(toxicJSON(name, typ, stream, attrs)))
	return err
}

func (p *resumeProxy) remove(name string) error {
	err := p.proxy.Toxics.RemoveToxic(context.Background(), name)
	if err != nil && strings.Contains(err.Error(), "not found") {
		return nil
	}
	return err
}

func toxicJSON(name, typ, stream string, attrs map[string]any) string {
	body, _ := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attrs})
	return string(body)
}
