//go:build !js

package resume

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

// traceLog records what a Trace sees.
type traceLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *traceLog) trace() *Trace {
	add := func(s string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, s)
	}
	return &Trace{
		SessionStarted: func(i SessionInfo) {
			add(fmt.Sprintf("started %s lost %q unconfirmed %d", i.ID, i.Lost, i.Unconfirmed))
		},
		Resumed: func(i ResumedInfo) { add(fmt.Sprintf("resumed %s replayed %d", i.ID, i.Replayed)) },
	}
}

func (l *traceLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// The session's story reaches the hooks: started, resumed after a cut
// (with what was written again), and a new session when the server lost
// the old one, with how many of its messages it never confirmed.
func TestTraceReportsSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan string, 16)
		a := newTestServer(t, readN(2, nil, got, nil))
		b := newTestServer(t, echo)
		var log1, log2 traceLog
		w := newWorld(t, a, WithTrace(log1.trace()), WithTrace(log2.trace()))
		defer w.close()
		defer b.Close()
		ctx := timeout(t, time.Minute)
		first := w.c.Stats().Session
		for i := 1; i <= 3; i++ {
			if err := w.c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "m%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second) // A reads m1 and m2 and acknowledges them
		w.net.last().cut()
		time.Sleep(time.Second) // resumed: m3 written again
		w.net.setHandler(b)     // a new server, which knows no session
		a.Close()
		var nr *NotRecoveredError
		if _, _, err := w.c.Read(ctx); !errors.As(err, &nr) {
			t.Fatalf("Read: %v, want a NotRecoveredError", err)
		}
		second := w.c.Stats().Session
		synctest.Wait()
		want := []string{
			"started " + first + ` lost "" unconfirmed 0`,
			"resumed " + first + " replayed 1",
			"started " + second + ` lost "` + first + `" unconfirmed 1`,
		}
		for _, l := range []*traceLog{&log1, &log2} {
			if got := l.all(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("events\n%q\nwant\n%q", got, want)
			}
		}
		if n := w.c.Stats().TraceDropped; n != 0 {
			t.Fatalf("%d events dropped", n)
		}
	})
}

func TestWithTraceNilIsInvalid(t *testing.T) {
	if _, err := Dial(t.Context(), nil, WithTrace(nil)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("Dial: %v, want ErrInvalidOption", err)
	}
}
