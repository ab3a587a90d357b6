//go:build !js

package wsreconnect

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/hooks"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// traceLog records the events a Trace sees, as lines.
type traceLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *traceLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *traceLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *traceLog) trace() *Trace {
	return &Trace{
		DialStart: func(i DialStartInfo) { l.add("dial %d", i.Attempt) },
		DialDone: func(i DialDoneInfo) {
			l.add("dial %d done: status %d, err %v", i.Attempt, i.HTTPStatus, i.Err != nil)
		},
		Connected:    func(i ConnectedInfo) { l.add("connected %d", i.Attempt) },
		Disconnected: func(d Disconnect) { l.add("disconnected %d %d %v", d.Code, d.HTTPStatus, d.Decision) },
		WaitStart:    func(i WaitStartInfo) { l.add("wait %v", i.Delay) },
		PingSent:     func() { l.add("ping") },
		PingAnswered: func(i PingAnsweredInfo) { l.add("pong after %v", i.RTT) },
		QueueChanged: func(i QueueInfo) { l.add("queue %d full %v", i.Depth, i.Full) },
		StateChanged: func(s State) { l.add("state %v", s) },
	}
}

// Every event reaches the hooks, in the order it happened: a refused
// handshake, a connection, its drop, the send queue filling and flushing,
// a heartbeat ping and its answer, the end. Two Traces see the same.
func TestTraceReportsEveryEventInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Reject(503, "2"), wstest.Drop(), wstest.Echo())
		defer srv.Close()
		var app, instr traceLog
		c := mustDial(t, srv.PipeDial(), WithTrace(instr.trace()), WithTrace(app.trace()),
			WithSendQueue(2), WithHeartbeat(10*time.Second, 5*time.Second), WithInitialDelay(time.Second), WithMaxDelay(time.Second))
		synctest.Wait() // dropped; the Conn waits
		for range 3 {
			c.Write(t.Context(), websocket.MessageText, []byte("queued"))
		}
		time.Sleep(5 * time.Second) // reconnected, the queue written, then idle
		time.Sleep(12 * time.Second)
		c.CloseNow()
		synctest.Wait() // the hooks have their last events
		want := []string{
			"state connecting",
			"dial 1",
			"dial 1 done: status 503, err true",
			"disconnected 0 503 retry (overload)",
			"wait 2.",
			"dial 2",
			"dial 2 done: status 0, err false",
			"state connected",
			"connected 2",
			"state connecting",
			"disconnected 1006 0 retry",
			"wait ",
			"queue 1 full false",
			"queue 2 full false",
			"queue 2 full true",
			"dial 3",
			"dial 3 done: status 0, err false",
			"queue 1 full false",
			"queue 0 full false",
			"state connected",
			"connected 3",
			"ping",
			"pong after 0s",
			"state closed",
		}
		for _, log := range []*traceLog{&instr, &app} {
			got := log.all()
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for i := range want {
				if !strings.HasPrefix(got[i], want[i]) {
					t.Fatalf("event %d: %q, want %q; all:\n%s", i, got[i], want[i], strings.Join(got, "\n"))
				}
			}
		}
	})
}

// A hook that blocks never blocks the Conn: it reconnects, reads and
// writes on, and the events past 1,024 waiting are dropped and counted.
// Once the hook returns, delivery goes on.
func TestTraceSlowHookDoesNotBlockConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop()) // seven events a connection
		defer srv.Close()
		release := make(chan struct{})
		var blocked, released sync.Once
		unblock := func() { released.Do(func() { close(release) }) }
		defer unblock()
		var after traceLog
		block := func() { blocked.Do(func() { <-release }) }
		slow := &Trace{StateChanged: func(State) { block() }, DialStart: func(DialStartInfo) { block() }}
		c := mustDial(t, srv.PipeDial(), WithTrace(slow), WithTrace(after.trace()),
			WithHeartbeat(0, 0), WithInitialDelay(time.Millisecond), WithMaxDelay(time.Millisecond))
		time.Sleep(time.Second) // hundreds of connections, each dropped
		srv.SetScript(wstest.Echo())
		time.Sleep(time.Second)
		// The Conn works while the hook blocks.
		if err := c.Write(t.Context(), websocket.MessageText, []byte("echo")); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, c); got != "echo" {
			t.Fatalf("read %q", got)
		}
		if n := c.Stats().TraceDropped; n == 0 {
			t.Fatal("no event dropped while 1,024 waited")
		}
		if n := len(after.all()); n != 0 {
			t.Fatalf("the next Trace saw %d events while the first's hook blocked", n)
		}
		unblock()
		synctest.Wait()
		if n := len(after.all()); n < hooks.Max {
			t.Fatalf("the next Trace saw %d events once the hook returned, want the %d that waited", n, hooks.Max)
		}
	})
}

// The messages a Conn drops unsent as it ends are reported with the last
// queue event, as the UnsentError counts them.
func TestTraceReportsQueueDroppedAtClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Hang())
		defer srv.Close()
		var mu sync.Mutex
		var infos []QueueInfo
		tr := &Trace{QueueChanged: func(i QueueInfo) {
			mu.Lock()
			defer mu.Unlock()
			infos = append(infos, i)
		}}
		c := mustDial(t, srv.PipeDial(), WithTrace(tr), WithSendQueue(8), WithHeartbeat(0, 0))
		synctest.Wait() // dropped; the next handshake hangs
		for range 3 {
			if err := c.Write(t.Context(), websocket.MessageText, []byte("queued")); err != nil {
				t.Fatal(err)
			}
		}
		c.CloseNow()
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if last := infos[len(infos)-1]; last != (QueueInfo{Dropped: 3}) {
			t.Fatalf("queue events %+v, want the last to say 3 dropped", infos)
		}
	})
}
