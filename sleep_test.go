//go:build !js

package wsreconnect

// Probe, and what the Conn does after the machine slept, on a fake clock
// (testing/synctest over net.Pipe) whose wall clock can jump ahead while
// the monotonic clock stands still, as it does in a suspended machine.

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// stampedRecorder records each Disconnect with the time it was reported,
// and signals each on ch.
type stampedRecorder struct {
	mu sync.Mutex
	ds []Disconnect
	at []time.Time
	ch chan struct{}
}

func newStampedRecorder() *stampedRecorder {
	return &stampedRecorder{ch: make(chan struct{}, 16)}
}

func (r *stampedRecorder) option() Option {
	return WithOnDisconnect(func(d Disconnect) {
		r.mu.Lock()
		r.ds, r.at = append(r.ds, d), append(r.at, time.Now())
		r.mu.Unlock()
		r.ch <- struct{}{}
	})
}

func (r *stampedRecorder) all() ([]Disconnect, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Disconnect(nil), r.ds...), append([]time.Time(nil), r.at...)
}

// sleepyClock is a wall clock that runs with the fake clock, plus the
// time the machine slept: what the wall clock of a machine that woke from
// suspend reads, while its monotonic clock missed the sleep.
type sleepyClock struct{ slept atomic.Int64 }

func (s *sleepyClock) option() Option {
	return optionFunc(func(c *config) {
		c.fake = &fakePlatform{wall: func() time.Time { return time.Now().Round(0).Add(time.Duration(s.slept.Load())) }}
	})
}

// suspend has the machine sleep d: the wall clock jumps, the monotonic
// clock does not move, and no timer fires.
func (s *sleepyClock) suspend(d time.Duration) { s.slept.Add(int64(d)) }

func TestProbeKeepsHealthyConnection(t *testing.T) {
	for _, hb := range []struct {
		name              string
		interval, timeout time.Duration
	}{{"heartbeat on", time.Hour, hbTimeout}, {"heartbeat off", 0, 0}} {
		t.Run(hb.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(wstest.Echo())
				defer srv.Close()
				rec := newStampedRecorder()
				c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(hb.interval, hb.timeout))
				time.Sleep(time.Minute)
				at := time.Now()
				c.Probe()
				time.Sleep(time.Minute)
				if pings := srv.PingTimes(); len(pings) != 1 || !pings[0].Equal(at) {
					t.Fatalf("pings at %v, want one at once (%v)", pings, at)
				}
				if ds, _ := rec.all(); len(ds) != 0 || c.State() != StateConnected || srv.Accepted.Load() != 1 {
					t.Fatalf("disconnects %v, state %v, %d connections: a healthy connection is kept", ds, c.State(), srv.Accepted.Load())
				}
				if got := readEcho(t, c, "still here"); got != "still here" {
					t.Fatalf("echo %q", got)
				}
			})
		})
	}
}

// readEcho writes s and reads the server's echo.
func readEcho(t *testing.T, c *Conn, s string) string {
	t.Helper()
	if err := c.Write(t.Context(), websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return readString(t, c)
}

func TestProbeFindsDeadConnectionAndRedialsAtOnce(t *testing.T) {
	for _, hb := range []struct {
		name              string
		interval, timeout time.Duration
	}{{"heartbeat on", time.Hour, hbTimeout}, {"heartbeat off", 0, hbTimeout}} {
		t.Run(hb.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(deaf(), wstest.Echo())
				defer srv.Close()
				rec := newStampedRecorder()
				c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(hb.interval, hb.timeout), WithInitialDelay(20*time.Second))
				time.Sleep(time.Minute)
				at := time.Now()
				c.Probe()
				<-rec.ch
				if err := c.WaitConnected(t.Context()); err != nil {
					t.Fatal(err)
				}
				ds, when := rec.all()
				d := ds[0]
				if d.Code != websocket.StatusAbnormalClosure || !errors.Is(d.Err, ErrHeartbeatTimeout) || d.Delay != 0 {
					t.Fatalf("disconnect %v, want 1006 with ErrHeartbeatTimeout, redialed without a wait", d)
				}
				if got := when[0].Sub(at); got != hb.timeout {
					t.Fatalf("found dead %v after Probe, want the timeout, %v", got, hb.timeout)
				}
				if times := srv.AttemptTimes(); len(times) != 2 || !times[1].Equal(when[0]) {
					t.Fatalf("attempts at %v, want the second at once, at %v", times, when[0])
				}
			})
		})
	}
}

func TestProbeWhileWaitingDialsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo(), wstest.Reject(503, "300"), wstest.Echo())
		defer srv.Close()
		rec := newStampedRecorder()
		c := mustDial(t, srv.PipeDial(), rec.option())
		c.Reconnect()
		<-rec.ch // requested
		<-rec.ch // 503: a wait of 300 s
		time.Sleep(time.Second)
		at := time.Now()
		c.Probe()
		if err := c.WaitConnected(t.Context()); err != nil {
			t.Fatal(err)
		}
		if times := srv.AttemptTimes(); len(times) != 3 || !times[2].Equal(at) {
			t.Fatalf("attempts at %v, want the third at once, at %v", times, at)
		}
	})
}

// After the machine slept, a dead connection is found within clockCheck
// and a timeout of the wake, and redialed at once; without that, the
// heartbeat's timer would run its remaining interval first.
func TestMachineSleepProbesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(deaf(), wstest.Echo())
		defer srv.Close()
		rec := newStampedRecorder()
		var clock sleepyClock
		c := mustDial(t, srv.PipeDial(), rec.option(), clock.option(), WithHeartbeat(hbInterval, hbTimeout))
		start := time.Now()
		time.Sleep(time.Second)
		clock.suspend(time.Hour)
		<-rec.ch
		if err := c.WaitConnected(t.Context()); err != nil {
			t.Fatal(err)
		}
		ds, when := rec.all()
		if !errors.Is(ds[0].Err, ErrHeartbeatTimeout) || ds[0].Delay != 0 {
			t.Fatalf("disconnect %v, want a heartbeat timeout, redialed without a wait", ds[0])
		}
		// The heartbeat's timer fires clockCheck after it was armed, sees
		// the jump, probes; the probe's timeout later the peer is dead.
		if got, want := when[0].Sub(start), clockCheck+hbTimeout; got != want {
			t.Fatalf("found dead %v after connecting, want %v (not %v, the interval and timeout)", got, want, hbInterval+hbTimeout)
		}
		if times := srv.AttemptTimes(); len(times) != 2 || !times[1].Equal(when[0]) {
			t.Fatalf("attempts at %v, want the second at once, at %v", times, when[0])
		}
	})
}

func TestMachineSleepKeepsHealthyConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		rec := newStampedRecorder()
		var clock sleepyClock
		c := mustDial(t, srv.PipeDial(), rec.option(), clock.option(), WithHeartbeat(hbInterval, hbTimeout))
		start := time.Now()
		time.Sleep(time.Second)
		clock.suspend(time.Hour)
		time.Sleep(hbInterval + hbTimeout)
		if pings := srv.PingTimes(); len(pings) == 0 || !pings[0].Equal(start.Add(clockCheck)) {
			t.Fatalf("pings at %v, want the first at the first look at the clocks, %v", pings, start.Add(clockCheck))
		}
		if ds, _ := rec.all(); len(ds) != 0 || srv.Accepted.Load() != 1 {
			t.Fatalf("disconnects %v, %d connections: a healthy connection is kept", ds, srv.Accepted.Load())
		}
		if got := readEcho(t, c, "awake"); got != "awake" {
			t.Fatalf("echo %q", got)
		}
	})
}

// A wait before a redial that was to end while the machine slept ends
// within clockCheck of the wake; one that was not waits what is left of
// it, by the wall clock.
func TestMachineSleepEndsWaitItSleptThrough(t *testing.T) {
	for _, tt := range []struct {
		name  string
		sleep time.Duration
		want  time.Duration // from the start of the 300 s wait to the next dial
	}{
		{"slept past its end", 10 * time.Minute, clockCheck},
		{"slept part of it", 100 * time.Second, 300*time.Second - 100*time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(wstest.Echo(), wstest.Reject(503, "300"), wstest.Echo())
				defer srv.Close()
				rec := newStampedRecorder()
				var clock sleepyClock
				c := mustDial(t, srv.PipeDial(), rec.option(), clock.option())
				c.Reconnect()
				<-rec.ch
				<-rec.ch // 503, Retry-After 300
				start := time.Now()
				time.Sleep(time.Second)
				clock.suspend(tt.sleep)
				if err := c.WaitConnected(t.Context()); err != nil {
					t.Fatal(err)
				}
				if times := srv.AttemptTimes(); len(times) != 3 || times[2].Sub(start) != tt.want {
					t.Fatalf("attempts at %v, want the third %v after the wait began", times, tt.want)
				}
			})
		})
	}
}

// A timer that fires late (a paused process: SIGSTOP, a VM's pause, a
// starved runtime) is a clock gap too; so is a wall clock that ran ahead.
// A timer on time, or a wall clock that fell behind (an NTP step back), is
// not.
func TestClockGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var clock sleepyClock
		cfg := defaultConfig()
		clock.option().apply(&cfg)
		c := &Conn{cfg: cfg}
		s := &session{c: c, born: time.Now()}
		s.hb.s = s
		s.hb.timer = time.AfterFunc(time.Hour, func() {})
		defer s.hb.timer.Stop()
		for _, tt := range []struct {
			name  string
			after time.Duration // since the timer was armed
			slept time.Duration
			want  bool
		}{
			{"on time", clockCheck, 0, false},
			{"late within clockGap", clockCheck + clockGap, 0, false},
			{"late", clockCheck + clockGap + time.Millisecond, 0, true},
			{"wall clock ahead", clockCheck, clockGap + time.Millisecond, true},
			{"wall clock behind", clockCheck, -time.Hour, false},
		} {
			clock.slept.Store(0)
			s.hb.arm(time.Now(), time.Minute) // fires at clockCheck
			time.Sleep(tt.after)
			clock.slept.Store(int64(tt.slept))
			if got := s.hb.clockGap(time.Now()); got != tt.want {
				t.Errorf("%s: clockGap %v, want %v", tt.name, got, tt.want)
			}
		}
	})
}

// What the platform says about the network (the browser's online, offline
// and visibilitychange events; see network.go): online ends a wait at
// once; visible and offline only have it looked at again; each probes a
// connection that is up.
func TestNetworkEvents(t *testing.T) {
	for _, tt := range []struct {
		name string
		ev   netEvent
		want time.Duration // from the start of a 300 s wait to the next dial
	}{
		{"online", netOnline, time.Second},
		{"visible", netVisible, 300 * time.Second},
		{"offline", netOffline, 300 * time.Second},
	} {
		t.Run(tt.name+" while waiting", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(wstest.Echo(), wstest.Reject(503, "300"), wstest.Echo())
				defer srv.Close()
				rec := newStampedRecorder()
				c := mustDial(t, srv.PipeDial(), rec.option())
				c.Reconnect()
				<-rec.ch
				<-rec.ch // 503, Retry-After 300
				start := time.Now()
				time.Sleep(time.Second)
				c.networkChanged(tt.ev)
				if err := c.WaitConnected(t.Context()); err != nil {
					t.Fatal(err)
				}
				if times := srv.AttemptTimes(); len(times) != 3 || times[2].Sub(start) != tt.want {
					t.Fatalf("attempts at %v, want the third %v after the wait began", times, tt.want)
				}
			})
		})
		t.Run(tt.name+" while connected", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(wstest.Echo())
				defer srv.Close()
				c := mustDial(t, srv.PipeDial(), WithHeartbeat(hbInterval, hbTimeout))
				time.Sleep(time.Second)
				at := time.Now()
				c.networkChanged(tt.ev)
				time.Sleep(time.Second)
				if pings := srv.PingTimes(); len(pings) != 1 || !pings[0].Equal(at) {
					t.Fatalf("pings at %v, want one at once (%v)", pings, at)
				}
			})
		})
	}
}

// While the platform says the network is gone (the browser's
// navigator.onLine), no dial is made: until it is back (online), or until
// Reconnect or Probe says to dial anyway (a server on localhost answers
// without a network); Close ends the wait at once.
func TestOfflineHoldsTheNextDial(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(c *Conn, net *atomic.Bool)
	}{
		{"until online", func(c *Conn, net *atomic.Bool) { net.Store(true); c.networkChanged(netOnline) }},
		{"until Reconnect", func(c *Conn, _ *atomic.Bool) { c.Reconnect() }},
		{"until Probe", func(c *Conn, _ *atomic.Bool) { c.Probe() }},
		{"until Close", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(wstest.Echo())
				defer srv.Close()
				var net atomic.Bool
				net.Store(true)
				c := mustDial(t, srv.PipeDial(), WithHeartbeat(0, 0),
					optionFunc(func(cfg *config) { cfg.fake = &fakePlatform{online: net.Load} }))
				net.Store(false)
				c.Reconnect()
				time.Sleep(time.Hour)
				if n := srv.Attempts.Load(); n != 1 {
					t.Fatalf("%d dials while offline, want none after the first", n)
				}
				if tt.end == nil {
					start := time.Now()
					if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
						t.Fatalf("Close: %v", err)
					}
					<-c.Done()
					if d := time.Since(start); d != 0 {
						t.Fatalf("Close took %v while offline", d)
					}
					return
				}
				at := time.Now()
				tt.end(c, &net)
				if err := c.WaitConnected(t.Context()); err != nil {
					t.Fatal(err)
				}
				if times := srv.AttemptTimes(); len(times) != 2 || !times[1].Equal(at) {
					t.Fatalf("attempts at %v, want the second at once, at %v", times, at)
				}
			})
		})
	}
}
