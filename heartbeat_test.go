//go:build !js

package wsreconnect

// The heartbeat on a fake clock (testing/synctest over net.Pipe): exact
// ping times, exact detection times, and the slow-application cases.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

const (
	hbInterval = 20 * time.Second
	// coder/websocket gives a ping's write at most 5 s; over net.Pipe a
	// write blocks until the peer reads, so a larger timeout would end early.
	hbTimeout = 4 * time.Second
)

// deaf accepts and never reads again: pings go unanswered while the socket
// stays open, like a peer that hung.
func deaf() wstest.Step {
	return wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) { <-ctx.Done() }}
}

// stream sends "0", "1", … as fast as the client takes them, until n.
func stream(n int) wstest.Step {
	return wstest.Send(n, nil)
}

func TestHeartbeatPingsAfterIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		start := time.Now()
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(hbInterval, hbTimeout))
		time.Sleep(hbInterval - time.Millisecond)
		synctest.Wait()
		if n := srv.Pings.Load(); n != 0 {
			t.Fatalf("%d pings before the interval", n)
		}
		time.Sleep(5 * hbInterval)
		pings := srv.PingTimes()
		if len(pings) != 5 {
			t.Fatalf("%d pings in 5 idle intervals, want 5", len(pings))
		}
		for i, p := range pings {
			if want := start.Add(time.Duration(i+1) * hbInterval); !p.Equal(want) {
				t.Errorf("ping %d at %v, want %v", i, p.Sub(start), want.Sub(start))
			}
		}
		if c.State() != StateConnected || srv.Accepted.Load() != 1 {
			t.Fatalf("state %v, %d connections", c.State(), srv.Accepted.Load())
		}
	})
}

func TestHeartbeatQuietUnderTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The server sends a message every interval/2: the client never
		// idles long enough to ping.
		chatty := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(hbInterval / 2):
				}
				if ws.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(i))) != nil {
					return
				}
			}
		}}
		srv := wstest.NewServer(chatty)
		defer srv.Close()
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(hbInterval, hbTimeout))
		for i := range 20 {
			if got := readString(t, c); got != strconv.Itoa(i) {
				t.Fatalf("message %d: %q", i, got)
			}
		}
		if n := srv.Pings.Load(); n != 0 {
			t.Fatalf("%d pings under traffic", n)
		}
	})
}

func TestHeartbeatClosesDeadPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(deaf(), wstest.Echo())
		defer srv.Close()
		type event struct {
			d  Disconnect
			at time.Time
		}
		events := make(chan event, 10)
		start := time.Now()
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(hbInterval, hbTimeout),
			WithOnDisconnect(func(d Disconnect) { events <- event{d, time.Now()} }))
		e := <-events
		if got := e.at.Sub(start); got != hbInterval+hbTimeout {
			t.Fatalf("dead peer found after %v, want %v", got, hbInterval+hbTimeout)
		}
		if e.d.Code != websocket.StatusAbnormalClosure || !errors.Is(e.d.Err, ErrHeartbeatTimeout) || e.d.Decision != Retry {
			t.Fatalf("disconnect %v: want 1006, ErrHeartbeatTimeout, retry", e.d)
		}
		// The standard schedule reconnects to the echo step.
		if err := c.Write(t.Context(), websocket.MessageText, []byte("back")); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, c); got != "back" {
			t.Fatalf("echo %q", got)
		}
	})
}

// While the application does not call Read, the pump is parked and a pong
// could not be read: the heartbeat must wait, and resume afterwards.
func TestHeartbeatWaitsForSlowApplication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 40
		srv := wstest.NewServer(stream(n))
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(hbInterval, hbTimeout))
		for i := 0; i < n; {
			time.Sleep(5 * (hbInterval + hbTimeout)) // the application is busy
			for range 3 {
				if got := readString(t, c); got != strconv.Itoa(i) {
					t.Fatalf("message %d: %q", i, got)
				}
				i++
				if i == n {
					break
				}
			}
		}
		if ds := rec.all(); len(ds) != 0 {
			t.Fatalf("disconnects while the application was slow: %v", ds)
		}
		// The stream is over and the application is idle in Read: the
		// heartbeat resumes, a full interval after the last read.
		pingsBefore := srv.Pings.Load()
		time.Sleep(hbInterval + time.Second)
		if srv.Pings.Load() == pingsBefore {
			t.Fatal("no ping once the application read again")
		}
		if srv.Accepted.Load() != 1 || len(rec.all()) != 0 {
			t.Fatalf("%d connections, disconnects %v", srv.Accepted.Load(), rec.all())
		}
	})
}

// A write stuck because the peer stopped reading returns when its ctx ends.
// coder/websocket then closes the half-written connection, and the
// Disconnect says why, however late that Write gets to record its error
// (slow record): the connection's end is decided once every Write on it
// has returned. (The pump sees the closed connection at the same moment,
// and its "use of closed network connection" says nothing.)
func TestWriteStuckReturnsAtContext(t *testing.T) {
	for _, slow := range []bool{false, true} {
		t.Run(fmt.Sprintf("slow_record=%v", slow), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				if slow {
					testHookWriteFailed = func() { time.Sleep(time.Second) }
					defer func() { testHookWriteFailed = nil }()
				}
				srv := wstest.NewServer(deaf(), wstest.Echo())
				defer srv.Close()
				rec := &recorder{}
				c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(hbInterval, hbTimeout))
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
				defer cancel()
				start := time.Now()
				err := c.Write(ctx, websocket.MessageBinary, make([]byte, 1<<20))
				if want := 3 * time.Second; !errors.Is(err, context.DeadlineExceeded) || (!slow && time.Since(start) != want) {
					t.Fatalf("Write: %v after %v, want the ctx's deadline after %v", err, time.Since(start), want)
				}
				synctest.Wait()
				ds := rec.all()
				if len(ds) != 1 || ds[0].Code != websocket.StatusAbnormalClosure || !errors.Is(ds[0].Err, context.DeadlineExceeded) {
					t.Fatalf("disconnects %v", ds)
				}
			})
		})
	}
}

// A write with no deadline, stuck because the peer is dead, is ended by the
// heartbeat.
func TestHeartbeatEndsStuckWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(deaf(), wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		start := time.Now()
		c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(hbInterval, hbTimeout))
		err := c.Write(context.Background(), websocket.MessageBinary, make([]byte, 1<<20))
		if err == nil || time.Since(start) != hbInterval+hbTimeout {
			t.Fatalf("Write: %v after %v, want an error after %v", err, time.Since(start), hbInterval+hbTimeout)
		}
		synctest.Wait()
		ds := rec.all()
		if len(ds) != 1 || !errors.Is(ds[0].Err, ErrHeartbeatTimeout) || ds[0].Code != websocket.StatusAbnormalClosure {
			t.Fatalf("disconnects %v", ds)
		}
	})
}

func TestHeartbeatDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(deaf())
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(0, 0))
		time.Sleep(time.Hour)
		if ds := rec.all(); len(ds) != 0 || c.State() != StateConnected {
			t.Fatalf("state %v, disconnects %v", c.State(), ds)
		}
	})
}

// A frame that arrives while a ping is outstanding proves the peer alive
// for now; the next ping is due an interval after that frame, so a peer
// that then dies is found at last frame + interval + timeout.
func TestHeartbeatCountsFromLastFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lastFrame = hbInterval + hbTimeout/2 // while the first ping waits
		srv := wstest.NewServer(wstest.Step{NoPong: true, Serve: func(ctx context.Context, ws *websocket.Conn) {
			ctx = ws.CloseRead(ctx) // reads pings, answers none
			time.Sleep(lastFrame)
			ws.Write(ctx, websocket.MessageText, []byte("late"))
			<-ctx.Done()
		}}, wstest.Echo())
		defer srv.Close()
		found := make(chan time.Duration, 1)
		start := time.Now()
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(hbInterval, hbTimeout),
			WithOnDisconnect(func(d Disconnect) {
				if errors.Is(d.Err, ErrHeartbeatTimeout) {
					found <- time.Since(start)
				}
			}))
		if got := readString(t, c); got != "late" {
			t.Fatalf("got %q", got)
		}
		if got, want := <-found, lastFrame+hbInterval+hbTimeout; got != want {
			t.Fatalf("dead peer found after %v, want %v (last frame + interval + timeout)", got, want)
		}
	})
}

// A peer that never answers our pings but pings us (a heartbeat in one
// direction, which RFC 6455 §5.5.3 allows) is alive: its pings are signs of
// life, as WithHeartbeat says of any frame. (Only data and pongs counted:
// the peer was found dead after interval + timeout.)
func TestHeartbeatCountsPeerPings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pinger := wstest.Step{NoPong: true, Serve: func(ctx context.Context, ws *websocket.Conn) {
			ws.CloseRead(ctx)
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(500 * time.Millisecond):
				}
				pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				ws.Ping(pctx) // the client answers; the answer is not the point
				cancel()
			}
		}}
		srv := wstest.NewServer(pinger)
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(time.Second, time.Second))
		time.Sleep(time.Minute)
		if ds := rec.all(); len(ds) != 0 {
			t.Fatalf("disconnects %v; the peer pinged every 500 ms", ds)
		}
		if s := c.State(); s != StateConnected {
			t.Fatalf("state %v", s)
		}
	})
}
