//go:build !js

package browsertest

import (
	"bufio"
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
	"github.com/wsreconnect/wsreconnect/internal/browsertest/report"
)

// TestExamplePage runs examples/browser as a user would (its binary, on
// 127.0.0.1:0), opens its page in headless Chromium, waits until the page
// shows three Disconnects (1006, 1013, a refused handshake) and a
// connection again, and checks what the page says; then it takes the
// page's network away (the client waits for it) and gives it back (the
// client connects again). If the page never gets there, a screenshot goes
// to the test's temporary directory; with UPDATE_SCREENSHOT=1 the final
// page's goes to docs/browser.png.
func TestExamplePage(t *testing.T) {
	chromium := requireChromium(t)
	verifyNoLeaks(t)
	pageURL := startExample(t)
	b := startBrowser(t, chromium) // stopped before the example is interrupted

	tb, err := b.newTab()
	if err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1000, 800), chromedp.Navigate(pageURL)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	raw, err := chromedp.Run(ctx, chromedp.Poll[string](examplePageState,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
	if err != nil {
		shot, _ := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		writeScreenshot(t, shot, false)
		t.Fatalf("waiting for three disconnects and a connection: %v\nconsole:\n  %s", err, strings.Join(tb.consoleLines(), "\n  "))
	}
	t.Logf("the page reached three disconnects and a connection after %v", time.Since(start).Round(time.Millisecond))
	var got struct {
		State, Summary string
		Connects       string
		Rows           [][]string // newest first: time, what, attempt, decision, next attempt in, error
		Messages       []string
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	t.Logf("state %s (%s), %s connections", got.State, got.Summary, got.Connects)
	for i := len(got.Rows) - 1; i >= 0; i-- {
		t.Logf("disconnect row: %q", got.Rows[i])
	}
	for _, m := range got.Messages {
		t.Logf("message: %s", m)
	}

	// The first three steps of the server's script, oldest first.
	want := []struct{ what, decision string }{
		{"1006: dropped without a close frame", "retry"},
		{`1013 "try again later"`, "retry (overload)"},
		{"dial failed (refused or unreachable)", "retry"}, // the 503: a page cannot see the status
	}
	if len(got.Rows) < len(want) {
		t.Fatalf("%d rows in the table of disconnects, want at least %d", len(got.Rows), len(want))
	}
	for i, w := range want {
		row := got.Rows[len(got.Rows)-1-i]
		if len(row) != 6 || row[1] != w.what || row[3] != w.decision {
			t.Errorf("disconnect %d: row %q, want %q, decision %q", i+1, row, w.what, w.decision)
			continue
		}
		if d, err := time.ParseDuration(row[4]); err != nil || w.decision == "retry (overload)" && d < time.Second {
			t.Errorf("disconnect %d: next attempt in %q, want a duration (≥ 1 s after 1013)", i+1, row[4])
		}
	}
	if got.State != "connected" {
		t.Errorf("state %q, want connected", got.State)
	}
	ticks := 0
	for _, m := range got.Messages {
		if strings.Contains(m, "tick ") {
			ticks++
		}
	}
	if ticks == 0 {
		t.Errorf("no tick among the messages shown: %q", got.Messages)
	}
	exampleOffline(ctx, t, tb)

	if os.Getenv("UPDATE_SCREENSHOT") != "1" {
		return
	}
	time.Sleep(1200 * time.Millisecond) // a few ticks on the new connection, for the picture
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	writeScreenshot(t, shot, true)
}

// examplePageState is polled until the example's page shows a connection
// after three disconnects; it then returns what the page shows.
const examplePageState = `(() => {
	const d = document.body.dataset;
	if (d.state !== "connected" || !(Number(d.disconnects) >= 3)) return false;
	return JSON.stringify({
		state: d.state,
		connects: d.connects,
		summary: document.getElementById("summary").textContent,
		rows: [...document.querySelectorAll("#disconnects tr")].map((tr) => [...tr.cells].map((td) => td.textContent)),
		messages: [...document.querySelectorAll("#messages li")].map((li) => li.textContent),
	});
})()`

// exampleOffline takes the example page's network away and gives it back
// (DevTools' network emulation, as in the network scenarios of
// TestBrowser): the page must say offline, and the client that it waits
// for the network; back online, it must be connected again, at once.
func exampleOffline(ctx context.Context, t *testing.T, tb *tab) {
	t.Helper()
	poll := func(what, cond string) (string, bool) {
		t.Helper()
		raw, err := chromedp.Run(ctx, chromedp.Poll[string](cond,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
		if err != nil {
			t.Errorf("waiting for %s: %v\nconsole:\n  %s", what, err, strings.Join(tb.consoleLines(), "\n  "))
			return "", false
		}
		return raw, true
	}
	connects, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.connects`))
	if err != nil {
		t.Fatal(err)
	}
	if err := hostAction(ctx, report.HostOffline); err != nil {
		t.Fatalf("going offline: %v", err)
	}
	off := time.Now()
	if _, ok := poll("the page to show the client waiting for the network", `(() => {
		const d = document.body.dataset;
		const events = [...document.querySelectorAll("#events li")].map((li) => li.textContent);
		return d.network === "offline" && d.state === "connecting" &&
			events.some((e) => e.includes("offline: waiting for the network")) ? "yes" : false;
	})()`); !ok {
		return
	}
	t.Logf("the page showed the client waiting for the network %v after the network went", time.Since(off).Round(time.Millisecond))
	if err := hostAction(ctx, report.HostOnline); err != nil {
		t.Fatalf("going online: %v", err)
	}
	on := time.Now()
	raw, ok := poll("a new connection once online", fmt.Sprintf(`(() => {
		const d = document.body.dataset;
		if (d.network !== "online" || d.state !== "connected" || !(Number(d.connects) > %s)) return false;
		return [...document.querySelectorAll("#events li")].map((li) => li.textContent).reverse().join("\n");
	})()`, connects))
	if !ok {
		return
	}
	t.Logf("connected again %v after the network came back (the page polled every 50 ms); its events, oldest first:\n%s",
		time.Since(on).Round(time.Millisecond), raw)
	for _, want := range []string{"browser: offline", "offline: waiting for the network", "browser: online"} {
		if !strings.Contains(raw, want) {
			t.Errorf("the page's events lack %q", want)
		}
	}
}

// writeScreenshot writes the page's screenshot into the test's temporary
// directory and, when docs is set, to docs/browser.png.
func writeScreenshot(t *testing.T, png []byte, docs bool) {
	t.Helper()
	if len(png) == 0 {
		return
	}
	paths := []string{filepath.Join(t.TempDir(), "browser.png")}
	if docs {
		paths = append(paths, filepath.Join("..", "..", "docs", "browser.png"))
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Error(err)
			continue
		}
		t.Logf("wrote %s (%d bytes)", p, len(png))
	}
}

// startExample builds examples/browser, starts it on 127.0.0.1:0 and
// returns its page's URL. A cleanup interrupts it and checks that it
// stopped cleanly.
func startExample(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "browser-example")
	build := exec.Command("go", "build", "-o", bin, "./examples/browser")
	build.Dir = filepath.Join("..", "..") // the repository's root module, as go run ./examples/browser
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/browser: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	var (
		mu  sync.Mutex
		log strings.Builder // what it printed
	)
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return log.Write(p)
	})
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			log.WriteString(line + "\n")
			mu.Unlock()
			if rest, ok := strings.CutPrefix(line, "serving "); ok {
				urls <- strings.Fields(rest)[0]
			}
		}
	}()
	t.Cleanup(func() {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Errorf("interrupting the example: %v", err)
		}
		exited := make(chan error, 1)
		go func() {
			<-readDone // all of stdout read before Wait closes the pipe
			exited <- cmd.Wait()
		}()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the example ended with %v", err)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("the example did not stop within 15 s of an interrupt; killed: %v", <-exited)
		}
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() || testing.Verbose() {
			t.Logf("the example's output:\n%s", log.String())
		}
	})
	select {
	case u := <-urls:
		t.Logf("the example serves %s", u)
		return u
	case <-readDone:
		t.Fatal(errors.New("the example ended before it served"))
	case <-time.After(2 * time.Minute): // it builds its client first
		t.Fatal("the example did not print its URL within 2 minutes")
	}
	return ""
}
