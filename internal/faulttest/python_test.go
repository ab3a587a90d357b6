package faulttest

// A real third-party peer: Python's websockets (Debian's python3-websockets,
// 10.x, for Debian's /usr/bin/python3), run from testdata/pyserver.py. Its
// request path picks the behaviour; see the script.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsreconnect/wsreconnect"
)

// systemPython is where Debian's python3-websockets is importable; the
// python3 first on PATH may be another interpreter without it.
// WSRECONNECT_PYTHON overrides it (another distribution, a virtualenv).
const systemPython = "/usr/bin/python3"

func pythonPath() string {
	if p := os.Getenv("WSRECONNECT_PYTHON"); p != "" {
		return p
	}
	return systemPython
}

// startPython starts testdata/pyserver.py and returns its ws:// base URL (no
// trailing slash). Without the interpreter or the module the test is skipped,
// except under CI=true, where it fails: CI must never pass without the peer.
func startPython(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if inCI() {
			t.Fatalf("third-party peer unavailable under CI=true: "+format+" (.ci/run installs python3-websockets)", args...)
		}
		t.Skipf("third-party peer unavailable: "+format+" (apt-get install python3-websockets)", args...)
	}
	python := pythonPath()
	if _, err := os.Stat(python); err != nil {
		missing("%v", err)
	}
	if out, err := exec.Command(python, "-c", "import websockets").CombinedOutput(); err != nil {
		missing("%s cannot import websockets: %v: %s", python, err, bytes.TrimSpace(out))
	}

	cmd := exec.Command(python, "testdata/pyserver.py")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", python, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() && stderr.String() != "" {
			t.Logf("pyserver stderr:\n%s", stderr.String())
		}
	})
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		port <- strings.TrimSpace(line)
	}()
	select {
	case p := <-port:
		if p == "" {
			t.Fatalf("pyserver exited before printing its port:\n%s", stderr.String())
		}
		return "ws://127.0.0.1:" + p
	case <-time.After(waitTimeout):
		t.Fatalf("pyserver printed no port within %v:\n%s", waitTimeout, stderr.String())
	}
	return ""
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const (
	pyInterval = 200 * time.Millisecond
	pyTimeout  = 200 * time.Millisecond
	pyInitial  = 50 * time.Millisecond
	pyMaxDelay = 500 * time.Millisecond
)

func pyOptions() []wsreconnect.Option {
	return []wsreconnect.Option{
		wsreconnect.WithHeartbeat(pyInterval, pyTimeout),
		wsreconnect.WithInitialDelay(pyInitial),
		wsreconnect.WithMaxDelay(pyMaxDelay),
		wsreconnect.WithStableUptime(time.Second),
		wsreconnect.WithDialTimeout(2 * time.Second),
	}
}

// pyScenario dials the Python server through paths (one per attempt, the
// last repeating) with the client writing a stream, and returns the parts.
func pyScenario(t *testing.T, writing bool, paths ...string) (*world, *client) {
	w := newWorld()
	noLeaks(t, w)
	base := startPython(t)
	c := dialClient(t, w, w.dialer(t, scriptURL(base, paths...), nil), pyOptions()...)
	if writing {
		c.startWriter(5*time.Millisecond, sizeMix)
	}
	return w, c
}

func waitEchoes(t *testing.T, w *world, n int) {
	t.Helper()
	e, _ := w.progress()
	w.waitFor(t, waitTimeout, "echoes", func() bool { return w.echoes >= e+n })
}

// pyFinish flushes, checks the invariants the client can see on its own
// (Python keeps no records) and closes.
func pyFinish(t *testing.T, w *world, c *client, maxDelay time.Duration) {
	t.Helper()
	marker := c.flush(waitTimeout)
	a := w.check(t, checkOpts{marker: marker, maxDelay: maxDelay, slack: slack})
	took := c.close(true)
	if took > 3*time.Second {
		t.Errorf("Close took %v on a healthy connection", took)
	}
	t.Logf("%v; Close took %v", a, took)
}

func TestPythonEcho(t *testing.T) {
	w, c := pyScenario(t, true, "/echo")
	waitEchoes(t, w, 300)
	if n := w.numDisconnects(); n != 0 {
		t.Errorf("%d disconnects from a healthy echo server", n)
	}
	pyFinish(t, w, c, pyMaxDelay)
}

// 1013 (try again later) retries on the overload schedule, at least 1 s;
// 1012 (service restart) on the standard one. Both carry their reason.
func TestPythonCloseCodes(t *testing.T) {
	for _, tc := range []struct {
		code     int
		decision wsreconnect.Decision
		lo, hi   time.Duration // the window of the first delay
	}{
		{1013, wsreconnect.RetryOverload, time.Second, 2 * time.Second},
		{1012, wsreconnect.Retry, 0, pyInitial},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			w, c := pyScenario(t, true, "/close?code="+strconv.Itoa(tc.code)+"&reason=pyserver+says+so&after=20", "/echo")
			ev := w.waitDisconnect(t, 0, waitTimeout)
			d := ev.d
			if int(d.Code) != tc.code || d.Reason != "pyserver says so" || d.Decision != tc.decision || !d.Reconnect {
				t.Errorf("disconnect %v: want code %d, reason %q, %v", d, tc.code, "pyserver says so", tc.decision)
			}
			if d.Delay < tc.lo || d.Delay > tc.hi {
				t.Errorf("disconnect %v: delay %v outside [%v, %v]", d, d.Delay, tc.lo, tc.hi)
				if tc.code == 1013 && d.Delay < time.Second {
					t.Errorf("library bug: the overload schedule waited %v < 1 s with WithMaxDelay(%v); "+
						"WithMaxDelay's doc and DESIGN.md promise at least 1 s", d.Delay, pyMaxDelay)
				}
			}
			w.waitConnect(t, 1, waitTimeout)
			waitEchoes(t, w, 20)
			pyFinish(t, w, c, 2*time.Second)
		})
	}
}

// transport.abort(): the TCP connection ends with RST and no close frame:
// 1006, found by the reader at once (not by the heartbeat), and a retry.
func TestPythonAbort(t *testing.T) {
	w, c := pyScenario(t, true, "/abort?after=20", "/echo")
	d := w.waitDisconnect(t, 0, waitTimeout).d
	if d.Code != 1006 || d.Decision != wsreconnect.Retry || isHeartbeat(d) || d.Uptime <= 0 {
		t.Errorf("disconnect %v: want 1006 from the reader, retried on the standard schedule", d)
	}
	w.waitConnect(t, 1, waitTimeout)
	waitEchoes(t, w, 20)
	pyFinish(t, w, c, pyMaxDelay)
}

// process_request answers 503 with Retry-After: 2 to the first attempt. Dial
// keeps trying (a 503 is transient) and waits no less than the server asked.
func TestPythonReject503RetryAfter(t *testing.T) {
	start := time.Now()
	w, c := pyScenario(t, true, "/reject?status=503&retry_after=2", "/echo")
	took := time.Since(start)
	ds := w.disconnectsSince(0)
	if len(ds) != 1 {
		t.Fatalf("%d disconnects before the first connection, want 1\n%s", len(ds), w.summary())
	}
	d := ds[0].d
	if d.HTTPStatus != 503 || d.Code != 0 || d.RetryAfter != 2*time.Second || d.Decision != wsreconnect.RetryOverload {
		t.Errorf("disconnect %v: want handshake 503 with Retry-After 2s on the overload schedule", d)
	}
	// Never sooner than Retry-After, spread by at most a tenth of it.
	if d.Delay < 2*time.Second || d.Delay > 2200*time.Millisecond {
		t.Errorf("disconnect %v: delay %v, want 2 s to 2.2 s", d, d.Delay)
	}
	if took < 2*time.Second || took > 2*time.Second+slack+time.Second {
		t.Errorf("Dial returned after %v", took)
	}
	waitEchoes(t, w, 20)
	pyFinish(t, w, c, 3*time.Second)
}

// 401 stops: Dial returns at once with a *StopError; after an established
// connection, Read and Write return it instead.
func TestPythonReject401(t *testing.T) {
	t.Run("Dial", func(t *testing.T) {
		w := newWorld()
		noLeaks(t, w)
		base := startPython(t)
		c := newClient(t, w)
		start := time.Now()
		conn, err := c.dial(w.dialer(t, fixedURL(base+"/reject?status=401"), nil), waitTimeout, pyOptions()...)
		took := time.Since(start)
		c.closed.Store(true)
		if conn != nil {
			_ = conn.CloseNow()
			t.Fatal("Dial connected to a server that answers 401")
		}
		var se *wsreconnect.StopError
		if !errors.As(err, &se) || se.Disconnect.HTTPStatus != 401 || se.Disconnect.Reconnect {
			t.Fatalf("Dial: %v, want a *StopError for handshake status 401", err)
		}
		if len(w.dials) != 1 || took > slack {
			t.Errorf("Dial made %d attempts in %v; a 401 must stop at once", len(w.dials), took)
		}
	})
	t.Run("after a connection", func(t *testing.T) {
		w, c := pyScenario(t, true, "/close?code=1012&after=10", "/reject?status=401")
		w.waitFor(t, waitTimeout, "the stop", func() bool { return w.readEnd != nil })
		c.stopWriter()
		err := c.readError()
		var se *wsreconnect.StopError
		if !errors.As(err, &se) || se.Disconnect.HTTPStatus != 401 {
			t.Errorf("Read: %v, want a *StopError for handshake status 401", err)
		}
		if err := c.writeOne(8); !errors.As(err, &se) {
			t.Errorf("Write after the stop: %v, want the *StopError", err)
		}
		if s := c.conn.State(); s != wsreconnect.StateClosed {
			t.Errorf("State after the stop = %v", s)
		}
		a := w.check(t, checkOpts{maxDelay: pyMaxDelay, slack: slack})
		if a.dials != 2 {
			t.Errorf("%d dials, want 2: a 401 must not be retried", a.dials)
		}
		c.close(false)
		t.Logf("%v", a)
	})
}

// transport.pause_reading(): the peer's socket stays open but nothing is
// read or answered: a dead peer only the heartbeat can find, within
// interval + timeout (+ slack) of the last frame; then a reconnect.
func TestPythonPauseReading(t *testing.T) {
	for _, writing := range []bool{false, true} {
		name, after := "idle", "0"
		if writing {
			name, after = "writing", "20"
		}
		t.Run(name, func(t *testing.T) {
			w, c := pyScenario(t, writing, "/pause?after="+after, "/echo")
			ev := w.waitDisconnect(t, 0, waitTimeout)
			d := ev.d
			if d.Code != 1006 || !isHeartbeat(d) || d.Decision != wsreconnect.Retry {
				t.Errorf("disconnect %v: want 1006 with ErrHeartbeatTimeout, retried", d)
			}
			w.mu.Lock()
			up := w.connects[0]
			w.mu.Unlock()
			// The writer's 20 echoes take about 100 ms.
			if found, bound := ev.at.Sub(up), 100*time.Millisecond+pyInterval+pyTimeout+slack; found > bound {
				t.Errorf("dead peer found %v after the connection came up, want within %v", found, bound)
			}
			w.waitConnect(t, 1, waitTimeout)
			if writing {
				waitEchoes(t, w, 20)
			}
			pyFinish(t, w, c, pyMaxDelay)
		})
	}
	// Without a heartbeat, 64 KiB writes fill the socket buffers of a peer
	// that stopped reading: a Write stuck in TCP returns an error when its
	// ctx ends (never later: the client checks every Write's duration), and
	// coder/websocket closes the connection it left half-written: 1006, and
	// a reconnect. (coder/websocket reports that Write's error as the ctx's
	// or, when its own close wins the race, as a closed connection.)
	t.Run("writing, heartbeat off", func(t *testing.T) {
		w := newWorld()
		noLeaks(t, w)
		base := startPython(t)
		c := dialClient(t, w, w.dialer(t, scriptURL(base, "/pause?after=20", "/echo"), nil),
			append(pyOptions(), wsreconnect.WithHeartbeat(0, 0))...)
		c.writeTimeout = 500 * time.Millisecond
		c.startWriter(2*time.Millisecond, func(*rand.Rand) int { return 64 << 10 })
		ev := w.waitDisconnect(t, 0, waitTimeout)
		if d := ev.d; d.Code != 1006 || isHeartbeat(d) || d.Decision != wsreconnect.Retry {
			t.Errorf("disconnect %v: want 1006 from the stuck write, retried", d)
		}
		// The Write that failed may still be on its way back to the writer.
		c.stopWriter()
		var failed, timedOut int
		w.mu.Lock()
		for i, m := range w.cmsgs {
			if m.state != wroteErr {
				continue
			}
			failed++
			if errors.Is(m.writeErr, context.DeadlineExceeded) {
				timedOut++
			}
			t.Logf("Write %d: %v", i+1, m.writeErr)
		}
		w.mu.Unlock()
		if failed == 0 {
			t.Errorf("no Write failed against a peer that stopped reading")
		}
		w.waitConnect(t, 1, waitTimeout)
		c.startWriter(5*time.Millisecond, sizeSmall)
		waitEchoes(t, w, 20)
		t.Logf("%d Writes failed (%d with the ctx's error); then %v", failed, timedOut, ev.d)
		pyFinish(t, w, c, pyMaxDelay)
	})
}
