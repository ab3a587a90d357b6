package faulttest

// Hostile input: what a broken or malicious server can send. The client must
// never panic, spin or wait without bound: every attempt is checked against
// the schedule (no redial before its delay, none long after it).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

const (
	hostileInitial  = 20 * time.Millisecond
	hostileMaxDelay = 100 * time.Millisecond
)

func hostileOptions() []wsreconnect.Option {
	return []wsreconnect.Option{
		wsreconnect.WithInitialDelay(hostileInitial),
		wsreconnect.WithMaxDelay(hostileMaxDelay),
		wsreconnect.WithStableUptime(time.Second),
		wsreconnect.WithDialTimeout(2 * time.Second),
	}
}

// Close frames that must never be on the wire (RFC 6455 §7.4: 1004, 1005,
// 1006 and 1015 are reserved or for local use only; below 1000 and
// 2000-2999 are unassigned; above 4999 out of range), and malformed ones.
// coder/websocket rejects them as a protocol error and answers 1002: the
// client reports the 1002 it sent, and stops as on any protocol violation,
// never passing the bogus code on as if the server had said it.
func TestHostileCloseFrames(t *testing.T) {
	long := strings.Repeat("x", 124)
	for _, tc := range []struct {
		name    string
		payload []byte
		code    int // what the client must report
		stop    bool
	}{
		{"code 999", closePayload(999, "bad"), 1002, true},
		{"code 1004", closePayload(1004, "bad"), 1002, true},
		{"code 1005", closePayload(1005, "bad"), 1002, true},
		{"code 1006", closePayload(1006, "bad"), 1002, true},
		{"code 1015", closePayload(1015, "bad"), 1002, true},
		{"code 2999", closePayload(2999, "bad"), 1002, true},
		{"code 5000", closePayload(5000, "bad"), 1002, true},
		{"code 65535", closePayload(65535, "bad"), 1002, true},
		{"one-byte payload", []byte{0x03}, 1002, true},
		{"reason of 124 bytes (control frame of 126)", closePayload(1001, long), 1002, true},
		// An empty close payload is legal and means "no status" (1005): it
		// says nothing of the server's intent, and is retried.
		{"empty payload", nil, 1005, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			noLeaks(t, w)
			replies := make(chan int, 16)
			srv := startRaw(t, func(n int64, c net.Conn, br *bufio.Reader) {
				if acceptHandshake(c, br) != nil {
					return
				}
				if writeFrame(c, true, opClose, tc.payload) != nil {
					return
				}
				code, _, err := readClientClose(c, br, 2*time.Second)
				if err != nil {
					code = 0
				}
				select {
				case replies <- code:
				default:
				}
			})
			c := dialClient(t, w, w.dialer(t, fixedURL(srv.url()), nil), hostileOptions()...)
			want := 4
			if tc.stop {
				want = 1
			}
			w.waitFor(t, waitTimeout, fmt.Sprintf("%d disconnects", want), func() bool { return len(w.disconnects) >= want })
			for _, ev := range w.disconnectsSince(0)[:want] {
				d := ev.d
				if int(d.Code) != tc.code || d.Reconnect == tc.stop {
					t.Errorf("disconnect %v: want code %d, stop %v", d, tc.code, tc.stop)
				}
			}
			if tc.stop {
				w.waitFor(t, waitTimeout, "Read to return the stop", func() bool { return w.readEnd != nil })
				err := c.readError()
				if got := websocket.CloseStatus(err); !isStop(err) || int(got) != tc.code {
					t.Errorf("Read: %v (CloseStatus %d), want a *StopError with CloseStatus %d", err, got, tc.code)
				}
			}
			a := w.check(t, checkOpts{maxDelay: hostileMaxDelay, slack: slack})
			c.close(false)
			reply := "nothing"
			select {
			case code := <-replies:
				reply = fmt.Sprintf("close code %d", code)
			default:
			}
			t.Logf("client answered with %s; %v", reply, a)
		})
	}
}

// Close reasons of the maximum 123 bytes arrive intact, in ASCII and in
// multi-byte UTF-8, both for a code that retries and one that stops; the
// client's own Close carries 123 bytes and refuses 124 without panicking.
func TestHostileCloseReason123(t *testing.T) {
	ascii := strings.Repeat("r", 123)
	utf := strings.Repeat("€", 41) // 41 × 3 bytes
	if len(ascii) != 123 || len(utf) != 123 {
		t.Fatal("bad reasons")
	}
	t.Run("from the server", func(t *testing.T) {
		w := newWorld()
		noLeaks(t, w)
		srv := startRaw(t, func(n int64, c net.Conn, br *bufio.Reader) {
			if acceptHandshake(c, br) != nil {
				return
			}
			if n == 1 {
				_ = writeFrame(c, true, opClose, closePayload(1001, ascii))
			} else {
				_ = writeFrame(c, true, opClose, closePayload(1008, utf))
			}
			_, _, _ = readClientClose(c, br, 2*time.Second)
		})
		c := dialClient(t, w, w.dialer(t, fixedURL(srv.url()), nil), hostileOptions()...)
		w.waitFor(t, waitTimeout, "the stop", func() bool { return w.readEnd != nil })
		ds := w.disconnectsSince(0)
		if len(ds) != 2 {
			t.Fatalf("%d disconnects, want 2\n%s", len(ds), w.summary())
		}
		if d := ds[0].d; d.Code != 1001 || d.Reason != ascii || !d.Reconnect {
			t.Errorf("first disconnect: code %d, reason of %d bytes, reconnect %v; want 1001 with the 123-byte reason, retried", d.Code, len(d.Reason), d.Reconnect)
		}
		if d := ds[1].d; d.Code != 1008 || d.Reason != utf || d.Reconnect {
			t.Errorf("second disconnect: code %d, reason %q, reconnect %v; want 1008 with the 123-byte reason, stopped", d.Code, d.Reason, d.Reconnect)
		}
		err := c.readError()
		var ce websocket.CloseError
		if !isStop(err) || !errors.As(err, &ce) || ce.Code != 1008 || ce.Reason != utf {
			t.Errorf("Read: %v; want a *StopError wrapping CloseError{1008, the 123-byte reason}", err)
		}
		w.check(t, checkOpts{maxDelay: hostileMaxDelay, slack: slack})
		c.close(false)
	})
	for _, tc := range []struct {
		reason string
		ok     bool
	}{{utf, true}, {ascii + "!", false}} {
		t.Run(fmt.Sprintf("client Close with %d bytes", len(tc.reason)), func(t *testing.T) {
			w := newWorld()
			noLeaks(t, w)
			type closeFrame struct {
				code   int
				reason string
				err    error
			}
			got := make(chan closeFrame, 1)
			srv := startRaw(t, func(n int64, c net.Conn, br *bufio.Reader) {
				if acceptHandshake(c, br) != nil {
					return
				}
				code, reason, err := readClientClose(c, br, waitTimeout)
				if err == nil {
					_ = writeFrame(c, true, opClose, closePayload(code, ""))
				}
				got <- closeFrame{code, reason, err}
			})
			c := newClient(t, w)
			conn, err := c.dial(w.dialer(t, fixedURL(srv.url()), nil), waitTimeout, hostileOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			c.start(conn)
			err = conn.Close(websocket.StatusNormalClosure, tc.reason)
			c.closed.Store(true)
			if tc.ok != (err == nil) {
				t.Errorf("Close with a reason of %d bytes: %v", len(tc.reason), err)
			}
			f := <-got
			switch {
			case tc.ok && (f.err != nil || f.code != 1000 || f.reason != tc.reason):
				t.Errorf("server got close %d %q (%v), want 1000 and the 123-byte reason", f.code, f.reason, f.err)
			case !tc.ok && f.err == nil:
				t.Errorf("server got a close frame %d %q after a refused Close; want the connection dropped", f.code, f.reason)
			}
			<-c.readerDone
			if s := conn.State(); s != wsreconnect.StateClosed {
				t.Errorf("State = %v after Close", s)
			}
		})
	}
}

// Retry-After on a 503 that is negative, not a number, absurdly large, or a
// date in the past never causes a panic or an unbounded wait: malformed and
// past values count as absent (the overload schedule alone, 1 s to 2 s here),
// huge ones are clamped to WithMaxRetryAfter.
func TestHostileRetryAfter(t *testing.T) {
	const maxRA = 2500 * time.Millisecond
	cases := []struct {
		value  string
		ra     time.Duration // Disconnect.RetryAfter
		lo, hi time.Duration // the window of the delay
	}{
		{"-1", 0, time.Second, 2 * time.Second},
		{"1e12", 0, time.Second, 2 * time.Second},
		{"garbage", 0, time.Second, 2 * time.Second},
		{"", 0, time.Second, 2 * time.Second},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0, time.Second, 2 * time.Second},
		{"1000000000000", maxRA, maxRA, maxRA},
		{"99999999999999999999999", maxRA, maxRA, maxRA},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxRA, maxRA, maxRA},
		{"2", 2 * time.Second, 2 * time.Second, 2200 * time.Millisecond},
	}
	worlds := make([]*world, len(cases))
	for i := range worlds {
		worlds[i] = newWorld()
	}
	noLeaks(t, worlds...) // the parallel subtests end first
	for i, tc := range cases {
		w := worlds[i]
		t.Run(fmt.Sprintf("%q", tc.value), func(t *testing.T) {
			t.Parallel()
			srv := newServer(w)
			srv.reject = func(n int64) (int, http.Header) {
				if n == 1 {
					return http.StatusServiceUnavailable, http.Header{"Retry-After": {tc.value}}
				}
				return 0, nil
			}
			srv.start(t)
			c := dialClient(t, w, w.dialer(t, fixedURL(srv.url), nil),
				wsreconnect.WithInitialDelay(50*time.Millisecond),
				// Max delay 2 s: the first overload window is then
				// [1 s, 2 s], whatever the floor's handling below 2 s.
				wsreconnect.WithMaxDelay(2*time.Second),
				wsreconnect.WithMaxRetryAfter(maxRA))
			ds := w.disconnectsSince(0)
			if len(ds) != 1 {
				t.Fatalf("%d disconnects before the first connection, want 1\n%s", len(ds), w.summary())
			}
			d := ds[0].d
			if d.HTTPStatus != 503 || d.RetryAfter != tc.ra || d.Decision != wsreconnect.RetryOverload {
				t.Errorf("disconnect %v: RetryAfter %v, want 503 with RetryAfter %v on the overload schedule", d, d.RetryAfter, tc.ra)
			}
			if d.Delay < tc.lo || d.Delay > tc.hi {
				t.Errorf("disconnect %v: delay %v outside [%v, %v]", d, d.Delay, tc.lo, tc.hi)
			}
			a := w.check(t, checkOpts{maxDelay: maxRA, slack: slack})
			c.close(false)
			t.Logf("delay %v; %v", d.Delay, a)
		})
	}
}

// A handshake that never completes is bounded by WithDialTimeout: each
// attempt fails after it, the attempts follow the schedule, and Close during
// a hanging attempt returns at once. Three ways to hang: say nothing; send
// the status line only; send every header but never the blank line.
func TestHostileHandshakeNeverCompletes(t *testing.T) {
	const dialTimeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		say  string
	}{
		{"silent", ""},
		{"status line only", "HTTP/1.1 101 Switching Protocols\r\n"},
		{"no end of headers", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			noLeaks(t, w)
			var srv *rawServer
			srv = startRaw(t, func(n int64, c net.Conn, br *bufio.Reader) {
				if n == 1 {
					// The first connection comes up, then drops.
					if acceptHandshake(c, br) == nil {
						srv.hold(100 * time.Millisecond)
					}
					return
				}
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = c.Write([]byte(tc.say))
				srv.hold(time.Minute)
			})
			c := dialClient(t, w, w.dialer(t, fixedURL(srv.url()), nil),
				wsreconnect.WithInitialDelay(hostileInitial),
				wsreconnect.WithMaxDelay(hostileMaxDelay),
				wsreconnect.WithDialTimeout(dialTimeout))
			// The drop, then three timed-out handshakes.
			w.waitFor(t, waitTimeout, "3 timed-out handshakes", func() bool { return len(w.disconnects) >= 4 })
			for _, ev := range w.disconnectsSince(1)[:3] {
				if d := ev.d; d.Code != 0 || d.HTTPStatus != 0 || !d.Reconnect || !errors.Is(d.Err, context.DeadlineExceeded) {
					t.Errorf("disconnect %v: want a failed dial (code 0) that timed out, retried", d)
				}
			}
			// Close while an attempt hangs.
			w.waitFor(t, waitTimeout, "a hanging attempt", func() bool {
				return len(w.dials) >= 5 && w.dials[len(w.dials)-1].end.IsZero()
			})
			took := c.close(false)
			if took > slack {
				t.Errorf("CloseNow during a hanging handshake took %v", took)
			}
			w.mu.Lock()
			for i, d := range w.dials[1:] {
				if !d.end.IsZero() && d.end.Sub(d.start) > dialTimeout+slack {
					t.Errorf("dial %d took %v with a dial timeout of %v", i+2, d.end.Sub(d.start), dialTimeout)
				}
			}
			w.mu.Unlock()
			a := w.check(t, checkOpts{maxDelay: hostileMaxDelay, slack: slack})
			t.Logf("CloseNow took %v; %v", took, a)
		})
	}
	t.Run("Dial bounded by its ctx", func(t *testing.T) {
		w := newWorld()
		noLeaks(t, w)
		var srv *rawServer
		srv = startRaw(t, func(n int64, c net.Conn, br *bufio.Reader) {
			_, _ = http.ReadRequest(br)
			srv.hold(time.Minute)
		})
		c := newClient(t, w)
		start := time.Now()
		conn, err := c.dial(w.dialer(t, fixedURL(srv.url()), nil), 700*time.Millisecond,
			wsreconnect.WithDialTimeout(10*time.Second))
		took := time.Since(start)
		c.closed.Store(true)
		if conn != nil {
			_ = conn.CloseNow()
			t.Fatal("Dial connected to a server that never answers")
		}
		if !errors.Is(err, context.DeadlineExceeded) || took > 700*time.Millisecond+slack {
			t.Errorf("Dial returned %v after %v; want the ctx's deadline after about 700ms", err, took)
		}
	})
}

// A message above the read limit (set by the DialFunc with SetReadLimit):
// the client answers 1009 and stops; the messages before it are delivered,
// no part of the big one ever is, and there is no second attempt. Whole
// frame, and a fragmented message that crosses the limit on its third
// fragment.
func TestHostileReadLimit(t *testing.T) {
	for _, fragmented := range []bool{false, true} {
		name := "one frame"
		if fragmented {
			name = "fragmented"
		}
		t.Run(name, func(t *testing.T) {
			w := newWorld()
			noLeaks(t, w)
			reply := make(chan int, 1)
			srv := startRaw(t, func(n int64, c net.Conn, br *bufio.Reader) {
				if acceptHandshake(c, br) != nil {
					return
				}
				for range 3 {
					seq := w.newServerSeq(int32(n))
					if writeFrame(c, true, opBinary, encode(kindServer, seq, 100)) != nil {
						return
					}
					w.serverSent(seq, true)
				}
				big := encode(kindServer, w.newServerSeq(int32(n)), 2048)
				if fragmented {
					_ = writeFrame(c, false, opBinary, big[:700])
					_ = writeFrame(c, false, opContinuation, big[700:1400])
					_ = writeFrame(c, true, opContinuation, big[1400:])
				} else {
					_ = writeFrame(c, true, opBinary, big)
				}
				code, _, err := readClientClose(c, br, 5*time.Second)
				if err != nil {
					code = 0
				}
				reply <- code
			})
			limit := func(ws *websocket.Conn) { ws.SetReadLimit(1024) }
			c := dialClient(t, w, w.dialer(t, fixedURL(srv.url()), limit), hostileOptions()...)
			w.waitFor(t, waitTimeout, "the stop", func() bool { return w.readEnd != nil })
			err := c.readError()
			var se *wsreconnect.StopError
			if !errors.As(err, &se) || se.Disconnect.Code != websocket.StatusMessageTooBig || se.Disconnect.Reconnect {
				t.Errorf("Read: %v; want a *StopError with code 1009", err)
			}
			if !errors.Is(err, websocket.ErrMessageTooBig) {
				t.Errorf("Read: %v; want it to wrap websocket.ErrMessageTooBig", err)
			}
			t.Logf("Read: %v (CloseStatus %d)", err, websocket.CloseStatus(err))
			if code := <-reply; code != 1009 {
				t.Errorf("server got close code %d from the client, want 1009", code)
			}
			w.mu.Lock()
			got, dials := w.streamGot, len(w.dials)
			w.mu.Unlock()
			if got != 3 || dials != 1 {
				t.Errorf("client read %d messages in %d dials; want the 3 small ones, in 1 dial", got, dials)
			}
			w.check(t, checkOpts{maxDelay: hostileMaxDelay, slack: slack})
			c.close(false)
		})
	}
}
