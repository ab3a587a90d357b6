//go:build !js

package wsreconnect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Stats in JSON, as expvar and metrics systems ingest it: snake_case
// names, seconds as numbers with the unit in the name, RFC 3339 times
// (null when unset), snake_case decision keys.
func TestStatsJSONGolden(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	st := Stats{
		State:       StateConnecting,
		Connects:    3,
		Disconnects: map[Decision]uint64{Stop: 0, Retry: 2, RetryOverload: 1},
		Attempt:     2,
		LastDisconnect: Disconnect{
			Code: websocket.StatusTryAgainLater, Reason: "busy",
			Err:    errors.New(`failed to get reader: received close frame: status = StatusTryAgainLater and reason = "busy"`),
			Uptime: 1500 * time.Millisecond, Attempt: 2, Decision: RetryOverload, Reconnect: true, Delay: 3250 * time.Millisecond,
		},
		Downtime:       4*time.Second + 250*time.Millisecond,
		ConnectedAt:    at.Add(-90 * time.Second),
		DisconnectedAt: at.Add(-time.Second),
		NextAttempt:    at.Add(2250 * time.Millisecond),
	}
	got, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const golden = "testdata/stats.golden.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Stats JSON:\n%s\nwant (%s; go test -run %s -update to rewrite):\n%s", got, golden, t.Name(), want)
	}
	// Before anything happened: no last disconnect, no times.
	b, _ := json.Marshal(Stats{Disconnects: map[Decision]uint64{}})
	if s := string(b); !strings.Contains(s, `"last_disconnect":null`) || !strings.Contains(s, `"connected_at":null`) {
		t.Fatalf("empty Stats: %s", s)
	}
}

// Downtime adds up the time without a connection; ConnectedAt,
// DisconnectedAt and NextAttempt say when things happened (fake clock).
func TestStatsTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Reject(503, "3"), wstest.Drop(), wstest.Reject(503, "5"), wstest.Echo())
		defer srv.Close()
		start := time.Now()
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(0, 0)) // after the 503's 3 s; then the drop
		connected := c.Stats().ConnectedAt
		if connected.Sub(start) < 3*time.Second {
			t.Fatalf("first connection at %v, want after the first 503's 3 s", connected.Sub(start))
		}
		time.Sleep(3 * time.Second) // the drop, a retry, the second 503 (5 s)
		st := c.Stats()
		if st.State != StateConnecting || st.LastDisconnect.HTTPStatus != 503 || time.Until(st.NextAttempt) < time.Second {
			t.Fatalf("while waiting out the second 503: %+v", st)
		}
		if want := st.DisconnectedAt.Add(st.LastDisconnect.Delay); !st.NextAttempt.Equal(want) {
			t.Fatalf("next attempt at %v, want the last disconnect plus its delay, %v", st.NextAttempt, want)
		}
		time.Sleep(10 * time.Second)
		st = c.Stats()
		if st.State != StateConnected || !st.NextAttempt.IsZero() || !st.ConnectedAt.After(connected) {
			t.Fatalf("reconnected: %+v", st)
		}
		// Without a connection: before the first (≥ 3 s), and between the
		// drop and the echo (≥ 5 s); never longer than Dial's age.
		if st.Downtime < 8*time.Second || st.Downtime > time.Since(start) || st.DisconnectedAt.IsZero() {
			t.Fatalf("downtime %v since Dial %v ago", st.Downtime, time.Since(start))
		}
		c.CloseNow()
	})
}

// The log lines say what an operator asks: on a connect, which attempt it
// took and how long the Conn was without a connection; on a disconnect,
// the uptime that ended, the Retry-After, the decision. A retry is a
// warning, a requested reconnect information, a stop an error.
func TestLogLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Reject(503, "2"), wstest.Drop(), wstest.Echo(), wstest.CloseWith(websocket.StatusPolicyViolation, "no"))
		defer srv.Close()
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, nil))
		c := mustDial(t, srv.PipeDial(), WithLogger(log), WithHeartbeat(0, 0))
		time.Sleep(5 * time.Second)
		c.Reconnect()
		<-c.Done()
		var lines []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			lines = append(lines, m)
		}
		want := []struct{ level, msg, key, value string }{
			{"WARN", "wsreconnect: disconnected", "decision", "retry_overload"}, // the 503
			{"INFO", "wsreconnect: connected", "attempt", "2"},
			{"WARN", "wsreconnect: disconnected", "decision", "retry"}, // the drop
			{"INFO", "wsreconnect: connected", "attempt", "3"},
			{"INFO", "wsreconnect: disconnected", "err", ErrReconnectRequested.Error()},
			{"INFO", "wsreconnect: connected", "attempt", "4"}, // no connection was stable
			{"ERROR", "wsreconnect: disconnected", "decision", "stop"},
		}
		if len(lines) != len(want) {
			t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), buf.String())
		}
		for i, w := range want {
			l := lines[i]
			if l["level"] != w.level || l["msg"] != w.msg || !strings.Contains(toString(l[w.key]), w.value) {
				t.Errorf("line %d: %v; want %s %q with %s %q", i, l, w.level, w.msg, w.key, w.value)
			}
		}
		if d := toString(lines[0]["retry_after"]); d != "2000000000" {
			t.Errorf("the 503's line has retry_after %q, want 2 s", d)
		}
		if d := toString(lines[1]["downtime"]); d == "0" {
			t.Errorf("the first connect's line has downtime %q, want the 503's wait", d)
		}
		if u := toString(lines[4]["uptime"]); u == "0" {
			t.Errorf("the requested reconnect's line has uptime %q", u)
		}
	})
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

// "attempt" means one thing in the "connected" log line, Stats.Attempt and
// Disconnect.Attempt: the number of the dial since Dial or the last stable
// connection. After a stable connection ends (attempt 1, and the count
// starts again), the next connection is attempt 1, as WithLogger's doc
// says. (The log said 2 there, counting the failures before it plus one,
// while Stats said the last Disconnect's.)
func TestAttemptCountsAgreeAfterStableConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		holdThenDrop := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			ws.CloseRead(ctx)
			time.Sleep(DefaultStableUptime + time.Second)
		}}
		srv := wstest.NewServer(wstest.Reject(503, ""), holdThenDrop, wstest.Echo())
		defer srv.Close()
		var buf bytes.Buffer
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))), rec.option(), WithHeartbeat(0, 0))
		if a := c.Stats().Attempt; a != 2 {
			t.Fatalf("Stats.Attempt %d while the second dial's connection is up, want 2", a)
		}
		time.Sleep(time.Minute)
		ds := rec.all()
		st := c.Stats()
		c.CloseNow() // and the log is complete
		var connected []string
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			if m["msg"] == "wsreconnect: connected" {
				connected = append(connected, toString(m["attempt"]))
			}
		}
		if !slices.Equal(connected, []string{"2", "1"}) {
			t.Fatalf("connected lines say attempt %v, want [2 1]", connected)
		}
		if len(ds) != 2 || ds[0].Attempt != 1 || ds[1].Attempt != 1 {
			t.Fatalf("disconnects %v, want the 503 (attempt 1) and the stable connection's end (attempt 1)", ds)
		}
		if a := st.Attempt; a != 1 {
			t.Fatalf("Stats.Attempt %d, want 1, as the log says", a)
		}
	})
}

// Stats and Disconnect render durations without float noise, in JSON and
// as text.
func TestDurationsRenderedWithoutNoise(t *testing.T) {
	st := Stats{Downtime: 5120275291 * time.Nanosecond, LastDisconnect: Disconnect{Code: 1006, Attempt: 1, Reconnect: true,
		Decision: Retry, Delay: 99956464 * time.Nanosecond, Uptime: 1500000001}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"downtime_seconds":5.120275`, `"delay_seconds":0.099956`, `"uptime_seconds":1.5,`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	if got := st.LastDisconnect.String(); !strings.HasSuffix(got, "retry in 100ms") {
		t.Errorf("Disconnect %q, want the delay in milliseconds", got)
	}
}

// WaitConnected waits for a connection that serves Read and Write: after
// Reconnect (State no longer says connected), until the next one is up;
// bounded by its ctx; and says why the Conn ended, once it has.
func TestWaitConnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo(), wstest.Reject(503, "5"), wstest.Echo(), wstest.Reject(401, ""))
		defer srv.Close()
		c := mustDial(t, srv.PipeDial())
		if err := c.WaitConnected(t.Context()); err != nil {
			t.Fatalf("right after Dial: %v", err)
		}
		c.Reconnect() // the next dial is refused: 503, come back in 5 s
		if s := c.State(); s != StateConnecting {
			t.Fatalf("state %v after Reconnect", s)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := c.WaitConnected(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("with a 1 s ctx: %v", err)
		}
		start := time.Now()
		if err := c.WaitConnected(t.Context()); err != nil || c.State() != StateConnected {
			t.Fatalf("WaitConnected: %v, state %v", err, c.State())
		}
		if el := time.Since(start); el < 4*time.Second {
			t.Fatalf("connected %v later, before the Retry-After", el)
		}
		c.Reconnect() // the next dial is refused with 401: the Conn stops
		var se *StopError
		if err := c.WaitConnected(t.Context()); !errors.As(err, &se) {
			t.Fatalf("after the stop: %v", err)
		}
	})
}
