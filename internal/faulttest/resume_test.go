package faulttest

// The resume layer under real faults (issue 18's proofs): reliable
// messages arrive exactly once and in order through a proxy that keeps
// cutting connections, with the Go server and with testdata/resume_server.py
// (written from PROTOCOL.md alone); servers restarted or switched resume
// their clients from a shared Redis store; a server that forgot the session
// says so, with the exact messages never confirmed.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/resume"
)

// resumeConnOptions are the client's reconnecting options: a heartbeat
// that finds a blackholed connection in 400 ms, and short schedules, so
// that the cuts cost little time.
func resumeConnOptions() resume.Option {
	return resume.WithConnOptions(
		wsreconnect.WithHeartbeat(200*time.Millisecond, 200*time.Millisecond),
		wsreconnect.WithInitialDelay(10*time.Millisecond),
		wsreconnect.WithMaxDelay(100*time.Millisecond),
		wsreconnect.WithStableUptime(100*time.Millisecond),
		wsreconnect.WithDialTimeout(2*time.Second),
	)
}

// dialResume dials a resume client to whatever url returns at each
// attempt; it is closed (CloseNow) when the test ends.
func dialResume(t *testing.T, url func() string, opts ...resume.Option) *resume.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url(), &websocket.DialOptions{HTTPClient: hc})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := resume.Dial(ctx, dial, append([]resume.Option{resumeConnOptions()}, opts...)...)
	if err != nil {
		t.Fatalf("resume.Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// clientMsg is the client's i-th reliable message (i from 1): its number,
// a colon, and up to 39 bytes of filler; every third one is text.
func clientMsg(i int) (websocket.MessageType, []byte) {
	const filler = "abcdefghijklmnopqrstuvwxyz0123456789ABC"
	typ := websocket.MessageBinary
	if i%3 == 0 {
		typ = websocket.MessageText
	}
	return typ, fmt.Appendf(nil, "%d:%s", i, filler[:i%40])
}

// echoServe is the Go server's application in the interoperability tests,
// the same as resume_server.py's: it writes back each reliable message,
// and records the order it read them in (a message out of order, or
// twice, is a violation even before its echo reaches the client).
func echoServe(errs chan<- error) func(context.Context, *resume.Session) {
	return func(ctx context.Context, s *resume.Session) {
		next := 1
		for {
			typ, p, err := s.Read(ctx)
			if err != nil {
				return
			}
			if wt, wp := clientMsg(next); typ != wt || string(p) != string(wp) {
				select {
				case errs <- fmt.Errorf("the Go server read %q (type %v), want message %d", p, typ, next):
				default:
				}
			}
			next++
			if s.Write(ctx, typ, p) != nil {
				return
			}
		}
	}
}

// serverKinds are the two implementations every interoperability test
// runs against.
var serverKinds = []string{"go", "python"}

// startKind starts a server of kind with its echo application.
func startKind(t *testing.T, kind string, errs chan error) resumeServer {
	if kind == "python" {
		return startPyServer(t)
	}
	return startGoServer(t, 0, echoServe(errs))
}

func checkServerErrs(t *testing.T, errs chan error) {
	t.Helper()
	select {
	case err := <-errs:
		t.Error(err)
	default:
	}
}

// TestResumeExactlyOnceUnderCuts: 100,000 reliable messages each way (the
// client's, and the server's echoes of them) through toxiproxy cutting
// the connections every few hundred milliseconds: resets, timeouts that
// close the connection, blackholes that only the heartbeat finds, and
// connections cut after a random number of bytes, mid-frame. Every
// message arrives once, in order, intact; no session is lost.
func TestResumeExactlyOnceUnderCuts(t *testing.T) {
	n := 100_000
	if s := os.Getenv("WSRECONNECT_RESUME_MESSAGES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, kind := range serverKinds {
		t.Run(kind, func(t *testing.T) {
			noLeaks(t)
			errs := make(chan error, 1)
			srv := startKind(t, kind, errs)
			p := newResumeProxy(t, srv.addr())
			c := dialResume(t, p.url)
			seed := rand.Uint64()
			t.Logf("chaos seed %d (WSRECONNECT_CHAOS_SEED replays the schedule of faults, not the timing)", seed)
			if s := os.Getenv("WSRECONNECT_CHAOS_SEED"); s != "" {
				seed, _ = strconv.ParseUint(s, 10, 64)
			}
			start := time.Now()
			stopChaos := p.chaos(seed)
			echoed := exchange(t, c, 1, n)
			faults := stopChaos()
			checkServerErrs(t, errs)
			if echoed != n {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := c.Flush(ctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			st := c.Stats()
			if st.Sessions != 1 {
				t.Errorf("%d sessions, want 1: the session was lost", st.Sessions)
			}
			if faults.total() < 10 || st.Resumes < 5 {
				t.Errorf("only %v, and %d resumes: the proxy did not cut enough to prove anything", faults, st.Resumes)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close after Flush: %v", err)
			}
			t.Logf("%d messages each way in %v; %v; %d resumes, %d messages replayed, %d duplicates dropped",
				n, time.Since(start).Round(time.Millisecond), faults, st.Resumes, st.Replayed, st.Duplicates)
		})
	}
}

// exchange writes the client's messages from..to on one goroutine and
// reads their echoes on this one, checking each: the next one, intact.
// It returns how many echoes arrived (to-from+1 unless the test failed).
func exchange(t *testing.T, c *resume.Client, from, to int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := from; i <= to; i++ {
			typ, p := clientMsg(i)
			if err := c.Write(ctx, typ, p); err != nil {
				werr = fmt.Errorf("Write %d: %w", i, err)
				cancel()
				return
			}
		}
	}()
	got := 0
	for i := from; i <= to; i++ {
		typ, p, err := c.Read(ctx)
		if err != nil {
			t.Errorf("Read of echo %d: %v", i, err)
			break
		}
		if wt, wp := clientMsg(i); typ != wt || string(p) != string(wp) {
			t.Errorf("echo %d: got %q (type %v), want %q (type %v)", i, p, typ, wp, wt)
			break
		}
		got++
	}
	cancel()
	wg.Wait()
	if werr != nil && got != to-from+1 {
		t.Error(werr)
	}
	return got
}

// faultCounts counts the faults the chaos applied, by kind.
type faultCounts struct{ resets, timeouts, blackholes, cuts int }

func (f faultCounts) total() int { return f.resets + f.timeouts + f.blackholes + f.cuts }

func (f faultCounts) String() string {
	return fmt.Sprintf("%d faults (%d resets, %d timeouts, %d blackholes, %d cut mid-stream)",
		f.total(), f.resets, f.timeouts, f.blackholes, f.cuts)
}

// chaos applies a fault every 100-400 ms, drawn from seed, until the
// returned stop is called, which removes the last one and returns the
// counts. One goroutine, which stop waits for.
func (p *resumeProxy) chaos(seed uint64) (stop func() faultCounts) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	quit := make(chan struct{})
	done := make(chan struct{})
	var counts faultCounts
	var errs []error
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-quit:
			return false
		}
	}
	stream := func() string {
		if rng.IntN(2) == 0 {
			return "upstream"
		}
		return "downstream"
	}
	go func() {
		defer close(done)
		for wait(time.Duration(100+rng.IntN(300)) * time.Millisecond) {
			var hold time.Duration
			var err error
			switch rng.IntN(4) {
			case 0: // a reset (RST) when the next data passes
				counts.resets++
				err = p.add("fault", "reset_peer", stream(), map[string]any{"timeout": rng.IntN(50)})
				hold = 100 * time.Millisecond
			case 1: // data dropped, then the connection closed
				counts.timeouts++
				ms := 20 + rng.IntN(200)
				err = p.add("fault", "timeout", stream(), map[string]any{"timeout": ms})
				hold = time.Duration(ms+20) * time.Millisecond
			case 2: // data dropped, the sockets open: for the heartbeat
				counts.blackholes++
				err = p.add("fault", "timeout", stream(), map[string]any{"timeout": 0})
				hold = 500 * time.Millisecond
			case 3: // the connection cut after a few bytes more, mid-frame
				counts.cuts++
				err = p.add("fault", "limit_data", stream(), map[string]any{"bytes": 1 + rng.IntN(16<<10)})
				hold = 300 * time.Millisecond
			}
			if err != nil {
				errs = append(errs, err)
			}
			ok := wait(hold)
			if err := p.remove("fault"); err != nil {
				errs = append(errs, err)
			}
			if !ok {
				return
			}
		}
	}()
	return func() faultCounts {
		close(quit)
		<-done
		if err := errors.Join(errs...); err != nil {
			p.t.Errorf("toxiproxy: %v", err)
		}
		return counts
	}
}

// TestResumeNotRecoveredAfterRestart: with sessions in memory, a
// restarted server has forgotten the session. The client is told so by
// Read, where the old session's messages end, with exactly the messages
// it wrote that the server never confirmed, in order; it does not send
// them again on its own, and the new session works.
func TestResumeNotRecoveredAfterRestart(t *testing.T) {
	for _, kind := range serverKinds {
		t.Run(kind, func(t *testing.T) {
			noLeaks(t)
			errs := make(chan error, 1)
			srv := startKind(t, kind, errs)
			p := newResumeProxy(t, srv.addr())
			c := dialResume(t, p.url)
			const confirmed, unconfirmed = 50, 20
			if exchange(t, c, 1, confirmed) != confirmed {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			old := c.Stats().Session
			srv.stop()
			for i := confirmed + 1; i <= confirmed+unconfirmed; i++ {
				typ, m := clientMsg(i)
				if err := c.Write(ctx, typ, m); err != nil {
					t.Fatal(err)
				}
			}
			srv.restart(t)
			_, _, err := c.Read(ctx)
			var nr *resume.NotRecoveredError
			if !errors.As(err, &nr) {
				t.Fatalf("Read: %v, want a *NotRecoveredError", err)
			}
			if nr.OldSession != old || nr.NewSession == old || nr.NewSession == "" {
				t.Errorf("NotRecoveredError sessions %q → %q, the old one was %q", nr.OldSession, nr.NewSession, old)
			}
			if len(nr.Unconfirmed) != unconfirmed {
				t.Errorf("%d unconfirmed messages, want %d", len(nr.Unconfirmed), unconfirmed)
			}
			for k, m := range nr.Unconfirmed {
				i := confirmed + 1 + k
				typ, want := clientMsg(i)
				if m.Seq != uint64(i) || m.Type != typ || string(m.Data) != string(want) {
					t.Errorf("unconfirmed[%d] = %d %v %q, want %d %v %q", k, m.Seq, m.Type, m.Data, i, typ, want)
				}
			}
			// The new session numbers from 1 again, and resends nothing of
			// the old one: the next echo is of the next message written.
			if st := c.Stats(); st.Sessions != 2 || st.Unacked != 0 {
				t.Errorf("after the notice: %d sessions, %d unacknowledged; want 2 and 0", st.Sessions, st.Unacked)
			}
			if exchange(t, c, 1, 10) != 10 {
				return
			}
			checkServerErrs(t, errs)
		})
	}
}
