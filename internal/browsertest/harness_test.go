//go:build !js

package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"
)

// inCI reports whether the tests run under CI (CI=true): there the browser
// tests must run, and a missing Chromium fails them instead of skipping.
func inCI() bool { return os.Getenv("CI") == "true" }

// chromiumPath is the browser the tests drive: $CHROMIUM, or Debian's
// /usr/bin/chromium (a shell wrapper that execs /usr/lib/chromium/chromium
// with the flags in /etc/chromium.d).
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// requireChromium returns the browser's path, or skips the test when it
// is missing; under CI=true a missing browser fails the test.
func requireChromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath(chromiumPath())
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("no Chromium at %s (%v): install Debian's chromium package (apt-get install chromium), or set CHROMIUM to a Chromium or Chrome binary", chromiumPath(), err)
	if inCI() {
		t.Fatal(msg + "; CI=true, so the browser tests may not be skipped")
	}
	t.Skip(msg)
	return ""
}

// verifyNoLeaks checks, when the test ends, that no goroutine of the test
// process is left. It must be the test's first cleanup, so that it runs
// last: after the browser has stopped and the server has closed and waited
// for its WebSocket handlers.
func verifyNoLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// goEnv runs go env key.
func goEnv(key string) (string, error) {
	out, err := exec.Command("go", "env", key).Output()
	return strings.TrimSpace(string(out)), err
}

// wasmExecJS is Go's JavaScript support for js/wasm programs: in
// $GOROOT/lib/wasm since Go 1.24.
func wasmExecJS(t *testing.T) string {
	t.Helper()
	goroot, err := goEnv("GOROOT")
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	p := filepath.Join(goroot, "lib", "wasm", "wasm_exec.js")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// The browser program, built once per test binary (TestMain removes it).
var (
	wasmOnce  sync.Once
	wasmDir   string
	wasmErr   error
	wasmBuild time.Duration
)

// buildWasm compiles ./wasm with GOOS=js GOARCH=wasm, once per test binary,
// and returns the path of the binary.
func buildWasm(t *testing.T) string {
	t.Helper()
	wasmOnce.Do(func() {
		wasmDir, wasmErr = os.MkdirTemp("", "browsertest-wasm")
		if wasmErr != nil {
			return
		}
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", filepath.Join(wasmDir, "main.wasm"), "./wasm")
		cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			wasmErr = fmt.Errorf("GOOS=js GOARCH=wasm go build ./wasm: %v\n%s", err, out)
		}
		wasmBuild = time.Since(start)
	})
	if wasmErr != nil {
		t.Fatal(wasmErr)
	}
	return filepath.Join(wasmDir, "main.wasm")
}

// browser is one headless Chromium; its pages run in tabs.
type browser struct {
	ctx     context.Context // the first tab's; a child context is a new tab
	pid     int
	profile string // its --user-data-dir, chromedp's temporary directory
	version string

	outMu sync.Mutex
	out   strings.Builder // Chromium's stdout and stderr
}

// startBrowser starts a headless Chromium for the test and stops it in a
// cleanup: registered after the server's, so the browser stops first (its
// WebSockets end), then the server closes, then the leak check runs.
func startBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	b := &browser{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // chromedp adds it as root anyway
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1000, 800),
		// No UserDataDir: chromedp makes a fresh temporary profile, kills
		// what is left of the browser's children at the end and removes it.
		chromedp.CombinedOutput(writerFunc(func(p []byte) (int, error) {
			b.outMu.Lock()
			defer b.outMu.Unlock()
			return b.out.Write(p)
		})),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b.ctx = ctx
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing Chromium: %v", err)
		}
		ccancel()
		cancelCtx()
		cancelAlloc() // waits for the process and removes the profile
		b.outMu.Lock()
		if s := strings.TrimSpace(b.out.String()); s != "" && (t.Failed() || os.Getenv("CHROME_LOG") != "") {
			t.Logf("Chromium's output:\n%s", s)
		}
		b.outMu.Unlock()
		b.checkGone(t)
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil { // starts the browser; no timeout on this first call
		t.Fatalf("starting %s: %v", chromium, err)
	}
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		b.pid = p.Pid
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid))
		for _, a := range strings.Split(string(cmdline), "\x00") {
			if v, ok := strings.CutPrefix(a, "--user-data-dir="); ok {
				b.profile = v
			}
		}
	}
	b.version, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	t.Logf("Chromium started in %v (pid %d): %s", time.Since(start).Round(time.Millisecond), b.pid, b.version)
	return b
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// checkGone reports the browser's process, one of its children or its
// temporary profile if still there once the browser was stopped.
func (b *browser) checkGone(t *testing.T) {
	if b.pid == 0 || b.profile == "" {
		return
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 { // not a process, or a zombie
			continue
		}
		if strings.Contains(string(cmdline), "--user-data-dir="+b.profile) {
			t.Errorf("Chromium process %s still runs", e.Name())
		}
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.pid)); err == nil {
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] != "Z" { // a zombie has exited
			t.Errorf("Chromium (pid %d) still runs", b.pid)
		}
	}
	if _, err := os.Stat(b.profile); !os.IsNotExist(err) {
		t.Errorf("Chromium's profile %s is still there", b.profile)
	}
}

// tab is one page of the browser.
type tab struct {
	ctx    context.Context
	cancel context.CancelFunc

	consoleDone chan struct{}
	mu          sync.Mutex
	console     []string
	closeOnce   sync.Once
}

// newTab opens a tab and starts collecting its console. It is safe to call
// from any goroutine; close it with close.
func (b *browser) newTab() (*tab, error) {
	ctx, cancel := chromedp.NewContext(b.ctx)
	tb := &tab{ctx: ctx, cancel: cancel, consoleDone: make(chan struct{})}
	if err := chromedp.Do(ctx); err != nil { // creates the tab
		cancel()
		return nil, fmt.Errorf("new tab: %w", err)
	}
	messages := chromedp.Console(ctx) // subscribed now; the loop ends with ctx
	go func() {
		defer close(tb.consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m.String())
			tb.mu.Unlock()
		}
	}()
	return tb, nil
}

// close closes the tab and waits for its console collector.
func (tb *tab) close() {
	tb.closeOnce.Do(func() {
		cctx, ccancel := context.WithTimeout(tb.ctx, 10*time.Second)
		_ = chromedp.Cancel(cctx) // closes the tab
		ccancel()
		tb.cancel()
		<-tb.consoleDone
	})
}

// consoleLines returns what the page has logged so far.
func (tb *tab) consoleLines() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.console...)
}

// outcome is how the Go program in a page ended up.
type outcome struct {
	ExitCode int    `json:"exitCode"` // -1 while it runs
	Result   string `json:"result"`   // globalThis.__wsResult
	Error    string `json:"error"`    // a JavaScript error while loading or running it
}

// programDone is polled until the Go program has reported, or has ended
// without reporting (a panic, a load error).
const programDone = `(globalThis.__wsResult !== undefined || globalThis.__goDone) ? JSON.stringify({
	exitCode: globalThis.__goExitCode ?? -1,
	result: globalThis.__wsResult ?? "",
	error: globalThis.__goError ?? ""}) : false`

// runProgram opens pageURL in the tab and waits, up to timeout, until the
// Go program in it has reported.
func (tb *tab) runProgram(pageURL string, timeout time.Duration) (outcome, error) {
	var o outcome
	tctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(pageURL)); err != nil {
		return o, fmt.Errorf("navigate to %s: %w", pageURL, err)
	}
	raw, err := chromedp.Run(tctx, chromedp.Poll[string](programDone,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		return o, fmt.Errorf("waiting for the Go program in %s: %w", pageURL, err)
	}
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		return o, fmt.Errorf("decoding %q: %w", raw, err)
	}
	if o.Result == "" {
		return o, fmt.Errorf("the Go program ended without a report: exit code %d, error %q", o.ExitCode, o.Error)
	}
	return o, nil
}
