//go:build !js

package wsreconnect

// Busy is not dead. coder/websocket writes a message as one frame under a
// write lock held for the whole frame, so a ping waits behind a large
// Write; the heartbeat must not take a peer that is still consuming what
// we write for a dead one, neither during the Write nor after it returns
// while the kernel's buffers drain, and must still find a peer that stops
// consuming within interval + timeout of its last progress.
//
// The peer here reads one large binary message at a fixed rate, as a slow
// link or a slow server would. On real loopback sockets (127.0.0.1) both
// with 64 KiB socket buffers (the Write itself is slow: the peer paces it)
// and with the kernel's defaults (megabytes are queued in the kernel when
// the Write returns, and the peer is still reading them); and on a fake
// clock over net.Pipe, which has no buffer at all, for exact times.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

const (
	// The heartbeat of the reproduction: a 6 MiB Write to a peer
	// reading 3 MiB/s takes seconds, many times interval + timeout.
	busyInterval = 200 * time.Millisecond
	busyTimeout  = 200 * time.Millisecond
	// busyStep is the heartbeat's check step, min(interval, timeout)/8: the
	// heartbeat knows when evidence came to within a step.
	busyStep = busyInterval / 8

	busyMessage = 6 << 20  // the large message
	busyRate    = 3 << 20  // bytes per second the paced peer reads
	busyChunk   = 32 << 10 // bytes per read of the paced peer
	busySmall   = 64 << 10 // SO_SNDBUF (client) and SO_RCVBUF (server) when small
	// busyStopAfter is how much a peer that stops consuming reads first:
	// at busyRate that takes longer than interval + timeout, so a heartbeat
	// that mistook the busy writer for a dead peer would kill it before.
	busyStopAfter = 2 << 20
	// busyStalledMessage is the message written to a peer that stops: more
	// than the kernel's default buffers on loopback can hold (they took
	// about 4 MiB beyond what the peer read, on Linux with tcp_wmem max
	// 4 MiB), so the Write is still pending when the heartbeat finds the
	// peer dead.
	busyStalledMessage = 16 << 20
)

// busyPeer is a server step that reads one large binary message in chunks,
// sleeping between them to hold rate. Pings that arrive among the data are
// answered from inside its reads (coder/websocket handles control frames
// there). With stopAfter > 0 it stops reading for good once it has read
// that many bytes, and keeps the connection open until the test ends;
// otherwise it reads the whole message, answers "ack", and echoes. Before
// that message it reads warmups messages as fast as it can, answering
// "ok" to each.
type busyPeer struct {
	rate, chunk, stopAfter int
	warmups                int

	mu       sync.Mutex
	n        int        // bytes of the message read
	sum      uint32     // their CRC-32
	first    time.Time  // when the message began (its first frame header read)
	lastRead time.Time  // when the last successful read of data returned
	finished time.Time  // when the whole message had been read
	err      error      // what ended reading early
	reads    []busyRead // after each read

	done chan struct{} // closed when the message was read, it stopped, or failed
}

func newBusyPeer(rate, chunk, stopAfter int) *busyPeer {
	return &busyPeer{rate: rate, chunk: chunk, stopAfter: stopAfter, done: make(chan struct{})}
}

func (p *busyPeer) step() wstest.Step {
	return wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
		ws.SetReadLimit(-1)
		for range p.warmups {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
			if ws.Write(ctx, websocket.MessageText, []byte("ok")) != nil {
				return
			}
		}
		err := p.consume(ctx, ws)
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
		switch {
		case err != nil:
			return
		case p.stopAfter > 0:
			<-ctx.Done() // the socket stays open; nothing reads it again
			return
		}
		if ws.Write(ctx, websocket.MessageText, []byte("ack")) != nil {
			return
		}
		wstest.Echo().Serve(ctx, ws)
	}}
}

func (p *busyPeer) consume(ctx context.Context, ws *websocket.Conn) error {
	typ, r, err := ws.Reader(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageBinary {
		return fmt.Errorf("message type %v", typ)
	}
	start := time.Now()
	p.mu.Lock()
	p.first = start
	p.mu.Unlock()
	buf := make([]byte, p.chunk)
	for total := 0; ; {
		n, err := io.ReadFull(r, buf)
		now := time.Now()
		total += n
		p.mu.Lock()
		if n > 0 {
			p.n, p.lastRead = total, now
			p.reads = append(p.reads, busyRead{now, total})
			p.sum = crc32.Update(p.sum, crc32.IEEETable, buf[:n])
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			p.finished = now
			err = nil
		}
		p.mu.Unlock()
		switch {
		case err != nil:
			return err
		case !p.finished.IsZero():
			return nil
		case p.stopAfter > 0 && total >= p.stopAfter:
			return nil
		}
		time.Sleep(time.Until(start.Add(time.Duration(total) * time.Second / time.Duration(p.rate))))
	}
}

// busyRead is how much of the message the peer had read at a time.
type busyRead struct {
	at time.Time
	n  int
}

// pingsInStream says where in the message the pings the peer met (given
// by when they arrived) were: what it had read by then. For a failing
// test: markers far apart leave a live peer silent.
func (p *busyPeer) pingsInStream(pings []time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	b.WriteString("pings the peer met during the message, by KiB of it read before them:")
	met := 0
	for _, at := range pings {
		if p.first.IsZero() || at.Before(p.first) {
			continue // before the message (the warm-up's)
		}
		met++
		n := 0
		for _, r := range p.reads {
			if r.at.After(at) {
				break
			}
			n = r.n
		}
		fmt.Fprintf(&b, " %d", n>>10)
	}
	if met == 0 {
		b.WriteString(" none")
	}
	return b.String()
}

type busyPeerState struct {
	n                       int
	sum                     uint32
	first, lastRead, finish time.Time
	err                     error
}

func (p *busyPeer) state() busyPeerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return busyPeerState{p.n, p.sum, p.first, p.lastRead, p.finished, p.err}
}

// busyServer is the loopback tests' WebSocket server: each connection
// plays the next step's Serve (the last one repeats), and every ping that
// arrives is timed. Unlike wstest.Server, it never holds its lock while it
// closes a connection: wstest.Server.Close does, and a ping the
// connection's reader is handling at that moment waits for that lock
// while Close waits for the reader (coder/websocket's CloseNow takes the
// read lock), which hangs the test.
type busyServer struct {
	steps    []wstest.Step
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	accepted atomic.Int64

	mu    sync.Mutex
	pings []time.Time
}

func newBusyServer(steps ...wstest.Step) *busyServer {
	s := &busyServer{steps: steps}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

func (s *busyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Counted before the connection is hijacked, while httptest.Server's
	// Close still waits for it: none is added once close waits.
	s.wg.Add(1)
	defer s.wg.Done()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool {
			s.mu.Lock()
			s.pings = append(s.pings, time.Now())
			s.mu.Unlock()
			return true
		},
	})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	n := int(s.accepted.Add(1))
	s.steps[min(n, len(s.steps))-1].Serve(s.ctx, ws)
}

// pingTimes returns when each ping arrived.
func (s *busyServer) pingTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.pings...)
}

// busyListen serves srv on a real loopback listener and returns a DialFunc
// for it with its own http.Transport. With small, each dialled socket gets
// a busySmall send buffer and each accepted one a busySmall receive
// buffer (Linux doubles both for its bookkeeping). Call it after noLeaks
// and before mustDial, so that the client is closed before the server.
func busyListen(t *testing.T, srv *busyServer, small bool) DialFunc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener = l
	if small {
		hs.Listener = recvBufListener{l, busySmall}
	}
	hs.Start()
	url := "ws://" + l.Addr().String() + "/"
	var dialer net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil || !small {
			return c, err
		}
		if err := c.(*net.TCPConn).SetWriteBuffer(busySmall); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	client := &http.Client{Transport: tr}
	t.Cleanup(func() {
		srv.cancel() // every step returns, and closes its connection
		hs.Close()
		srv.wg.Wait()
		tr.CloseIdleConnections()
	})
	return func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	}
}

// recvBufListener gives each accepted socket a receive buffer of size
// bytes.
type recvBufListener struct {
	net.Listener
	size int
}

func (l recvBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := c.(*net.TCPConn).SetReadBuffer(l.size); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// busyHandedOver returns a function that reports how many bytes of
// messages the Conn's current connection has handed to coder/websocket,
// and so to the kernel: a figure for the logs.
func busyHandedOver(c *Conn) func() int64 {
	s := c.cur.Load()
	if s == nil {
		return func() int64 { return -1 }
	}
	return s.out.Load
}

func busyBuffers(small bool) string {
	if small {
		return "small socket buffers"
	}
	return "default socket buffers"
}

// busyPayload is n bytes that are not all alike, and their CRC-32.
func busyPayload(n int) ([]byte, uint32) {
	p := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		p[i] = byte(i / 4096)
	}
	return p, crc32.ChecksumIEEE(p)
}

// A 6 MiB Write to a live peer that reads it at 3 MiB/s, with
// WithHeartbeat(200ms, 200ms): the peer is busy, not dead. The Write
// returns nil, the peer gets the whole message intact and answers, no
// Disconnect is reported, and the Conn is still on its first connection.
// With small socket buffers the Write itself lasts as long as the peer's
// reading; with the default ones it returns early, while the kernel still
// holds megabytes the peer is reading: both are proof of life.
func TestHeartbeatKeepsBusyWriterAlive(t *testing.T) {
	for _, small := range []bool{true, false} {
		t.Run(busyBuffers(small), func(t *testing.T) {
			busyWriteToPacedPeer(t, small, 0)
		})
	}
}

// The same after 8 MiB that the peer consumed as fast as they came (8
// messages of 1 MiB, each answered before the next): a peer that kept up
// and then slows down is still busy, not dead, and the data queued in the
// kernel ahead of a ping is no reason to judge it, however the heartbeat
// spaced its markers while the peer kept up.
func TestHeartbeatKeepsBusyWriterAliveAfterFastTraffic(t *testing.T) {
	for _, small := range []bool{true, false} {
		t.Run(busyBuffers(small), func(t *testing.T) {
			busyWriteToPacedPeer(t, small, 8)
		})
	}
}

// busyWriteToPacedPeer writes warmups messages of 1 MiB, each answered by
// the peer at once, then busyMessage bytes that the peer reads at busyRate,
// and checks that the peer was never taken for dead.
func busyWriteToPacedPeer(t *testing.T, small bool, warmups int) {
	noLeaks(t)
	peer := newBusyPeer(busyRate, busyChunk, 0)
	peer.warmups = warmups
	srv := newBusyServer(peer.step(), wstest.Echo())
	dial := busyListen(t, srv, small)
	w := newNetWatcher()
	c := mustDial(t, dial, w.option(), WithHeartbeat(busyInterval, busyTimeout))

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if warmups > 0 {
		warm := make([]byte, 1<<20)
		start := time.Now()
		for i := range warmups {
			if err := c.Write(ctx, websocket.MessageBinary, warm); err != nil {
				var d any = "none reported"
				select {
				case got := <-w.ch:
					d = got.d
				case <-time.After(netPromptly):
				}
				t.Fatalf("warm-up Write %d to a peer that consumes at once: %v after %v (disconnect: %v)", i, err, time.Since(start), d)
			}
			if got := netRead(t, c, 10*time.Second); got != "ok" {
				t.Fatalf("warm-up %d: read %q, want ok", i, got)
			}
		}
		t.Logf("warm-up: %d MiB consumed in %v", warmups, time.Since(start))
	}

	msg, sum := busyPayload(busyMessage)
	start := time.Now()
	err := c.Write(ctx, websocket.MessageBinary, msg)
	returned := time.Now()
	if err != nil {
		t.Fatalf("Write to a busy live peer: %v after %v (disconnects: %v; %s)",
			err, returned.Sub(start), w.all(), peer.pingsInStream(srv.pingTimes()))
	}
	// The ack takes as long as the peer still reads; a Disconnect means it
	// will never come.
	rctx, rcancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer rcancel()
	go func() {
		select {
		case <-w.ch:
			rcancel()
		case <-rctx.Done():
		}
	}()
	if _, p, err := c.Read(rctx); err != nil || string(p) != "ack" {
		t.Fatalf("read %q, %v; want the peer's ack (disconnects: %v; %s)",
			p, err, w.all(), peer.pingsInStream(srv.pingTimes()))
	}
	<-peer.done
	st := peer.state()
	drain := st.finish.Sub(returned)
	t.Logf("%s: Write took %v; the peer read %d bytes in %v (%.1f MiB/s) and finished %v after Write returned",
		busyBuffers(small), returned.Sub(start), st.n, st.finish.Sub(st.first),
		float64(st.n)/(1<<20)/st.finish.Sub(st.first).Seconds(), drain)
	var gap time.Duration // the longest the peer read without meeting a ping
	pings, prev := 0, st.first
	for _, p := range srv.pingTimes() {
		if p.Before(st.first) {
			continue // the warm-up's
		}
		if p.After(st.finish) {
			break
		}
		pings++
		gap, prev = max(gap, p.Sub(prev)), p
	}
	t.Logf("%d pings reached the peer while it read; the longest it read without meeting one: %v (to the end: %v)",
		pings, gap, st.finish.Sub(prev))
	if !small && drain < busyInterval+busyTimeout {
		t.Logf("note: only %v was still queued when Write returned (< interval + timeout): "+
			"the kernel's buffers here do not exercise the drain after the Write", drain)
	}
	if st.err != nil || st.n != busyMessage || st.sum != sum {
		t.Fatalf("the peer read %d bytes (crc %08x, error %v), want %d (crc %08x)", st.n, st.sum, st.err, busyMessage, sum)
	}
	if ds := w.all(); len(ds) != 0 {
		t.Fatalf("disconnects while the peer was consuming: %v", ds)
	}
	netEcho(t, c, "still the first connection")
	if n, st := srv.accepted.Load(), c.Stats(); n != 1 || st.Connects != 1 || st.State != StateConnected {
		t.Fatalf("%d connections accepted, %d connects, state %v; want 1, 1, connected", n, st.Connects, st.State)
	}
}

// A peer that reads 2 MiB of a large message at 3 MiB/s and then stops
// reading for good, its socket open. While it reads it is alive; once it
// stops, the heartbeat finds it dead: a Disconnect with code 1006 and
// ErrHeartbeatTimeout, after the peer stopped and within interval +
// timeout (+ slack) of its last read, and no sooner than step + timeout
// after the last ping the peer answered (the client's last evidence of
// life). The pending Write then returns an error. With
// the default socket buffers the kernel goes on accepting our data after
// the peer stopped, which is no evidence: only what the peer consumed is.
func TestHeartbeatFindsPeerThatStopsConsuming(t *testing.T) {
	for _, small := range []bool{true, false} {
		t.Run(busyBuffers(small), func(t *testing.T) {
			noLeaks(t)
			peer := newBusyPeer(busyRate, busyChunk, busyStopAfter)
			srv := newBusyServer(peer.step(), wstest.Echo())
			dial := busyListen(t, srv, small)
			w := newNetWatcher()
			c := mustDial(t, dial, w.option(), WithHeartbeat(busyInterval, busyTimeout), WithInitialDelay(100*time.Millisecond))
			msg, _ := busyPayload(busyStalledMessage)
			handedOver := busyHandedOver(c)

			type result struct {
				err error
				at  time.Time
			}
			wrote := make(chan result, 1)
			start := time.Now()
			go func() {
				// No deadline: a ctx that ended mid-frame would close the
				// connection itself. The heartbeat must end this Write.
				err := c.Write(context.Background(), websocket.MessageBinary, msg)
				wrote <- result{err, time.Now()}
			}()

			got := w.next(t, 15*time.Second)
			var res result
			select {
			case res = <-wrote:
			case <-time.After(netPromptly):
				t.Fatalf("the Write was still pending %v after the Disconnect %v", netPromptly, got.d)
			}
			st := peer.state()
			out := handedOver()
			pings := srv.pingTimes()
			var answered []time.Time // pings the peer read, and answered, before it stopped
			for _, p := range pings {
				if !p.After(st.lastRead) {
					answered = append(answered, p)
				}
			}
			var lastPing time.Time
			if len(answered) > 0 {
				lastPing = answered[len(answered)-1]
			}
			sinceLastPing := "no ping answered"
			if !lastPing.IsZero() {
				sinceLastPing = got.at.Sub(lastPing).String() + " after its last answered ping"
			}
			t.Logf("%s: the peer read %d bytes in %v and stopped %v after the Write began; %d pings answered before it stopped",
				busyBuffers(small), st.n, st.lastRead.Sub(st.first), st.lastRead.Sub(start), len(answered))
			if out >= 0 {
				t.Logf("the client had handed %.1f MiB to the connection, %.1f MiB more than the peer read",
					float64(out)/(1<<20), float64(out-int64(st.n))/(1<<20))
			}
			t.Logf("found dead %v after the peer's last read, %s (interval %v + timeout %v); Write returned %v after the Disconnect: %v",
				got.at.Sub(st.lastRead), sinceLastPing, busyInterval, busyTimeout, res.at.Sub(got.at), res.err)

			d := got.d
			if d.Code != websocket.StatusAbnormalClosure || !errors.Is(d.Err, ErrHeartbeatTimeout) {
				t.Fatalf("disconnect %v, want 1006 with ErrHeartbeatTimeout", d)
			}
			if res.err == nil {
				t.Fatal("the Write to the dead connection returned nil")
			}
			select {
			case <-peer.done:
			default:
				t.Fatalf("found dead while the peer was still reading (%d of %d bytes)", st.n, busyStopAfter)
			}
			if st.err != nil || st.n != busyStopAfter || !got.at.After(st.lastRead) {
				t.Fatalf("the peer read %d bytes (error %v), its last read %v after the Disconnect; want %d bytes read before it",
					st.n, st.err, st.lastRead.Sub(got.at), busyStopAfter)
			}
			if len(answered) == 0 {
				t.Fatal("no ping got through to the peer while it read: the writer gave no evidence a chance")
			}
			// The probe follows the client's last evidence (the pong of the
			// last ping the peer answered) by at least the step after the
			// check that saw it, and its verdict waits timeout: that much
			// holds however late the timers fire. Unloaded, it is interval
			// + timeout, less up to a step (the logs above).
			if took := got.at.Sub(lastPing); took < busyStep+busyTimeout {
				t.Errorf("found dead %v after the last answered ping, want no sooner than step + timeout = %v",
					took, busyStep+busyTimeout)
			}
			if took := got.at.Sub(st.lastRead); took > busyInterval+busyTimeout+netHBSlack {
				t.Errorf("found dead %v after the peer's last read, want within %v + %v slack",
					took, busyInterval+busyTimeout, netHBSlack)
			}
			// The Conn goes on, on a new connection.
			netEcho(t, c, "after the stalled peer")
			if n := srv.accepted.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
			if n := w.count(); n != 1 {
				t.Fatalf("%d disconnects, want 1: %v", n, w.all())
			}
		})
	}
}

// The same on a fake clock, over net.Pipe, which buffers nothing: the peer
// reads 64 KiB every 20 ms, so the Write's pace is exactly the peer's.
// A 6 MiB Write lasts 1.92 s, nearly five times interval + timeout: no
// Disconnect, the peer answers, one connection.
func TestHeartbeatKeepsBusyWriterAliveFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const chunk, every = 64 << 10, 20 * time.Millisecond
		peer := newBusyPeer(int(chunk*(time.Second/every)), chunk, 0)
		srv := wstest.NewServer(peer.step(), wstest.Echo())
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithHeartbeat(busyInterval, busyTimeout))
		defer busySettle(c)
		msg, sum := busyPayload(busyMessage)

		start := time.Now()
		if err := c.Write(t.Context(), websocket.MessageBinary, msg); err != nil {
			t.Fatalf("Write to a busy live peer: %v after %v (disconnects: %v)", err, time.Since(start), rec.all())
		}
		took := time.Since(start)
		if got := readString(t, c); got != "ack" {
			t.Fatalf("read %q, want the peer's ack", got)
		}
		st := peer.state()
		t.Logf("Write took %v (fake); %d pings reached the peer", took, srv.Pings.Load())
		if took < 4*(busyInterval+busyTimeout) {
			t.Fatalf("Write took %v: the peer did not pace it (want about %v)", took, time.Duration(busyMessage/chunk)*every)
		}
		if st.err != nil || st.n != busyMessage || st.sum != sum {
			t.Fatalf("the peer read %d bytes (crc %08x, error %v), want %d (crc %08x)", st.n, st.sum, st.err, busyMessage, sum)
		}
		if ds := rec.all(); len(ds) != 0 {
			t.Fatalf("disconnects while the peer was consuming: %v", ds)
		}
		if n, st := srv.Accepted.Load(), c.Stats(); n != 1 || st.Connects != 1 || st.State != StateConnected {
			t.Fatalf("%d connections accepted, %d connects, state %v; want 1, 1, connected", n, st.Connects, st.State)
		}
	})
}

// On the fake clock, a peer that stops reading after 1 MiB: the heartbeat
// finds it dead interval + timeout after the last ping it answered (the
// client's last evidence; to within a step, never later), and at most
// interval + timeout + a step after its last read; the pending Write
// returns an error, not before the verdict.
func TestHeartbeatFindsPeerThatStopsConsumingFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const chunk, every = 64 << 10, 20 * time.Millisecond
		peer := newBusyPeer(int(chunk*(time.Second/every)), chunk, 1<<20)
		srv := wstest.NewServer(peer.step(), wstest.Echo())
		defer srv.Close()
		type event struct {
			d  Disconnect
			at time.Time
		}
		events := make(chan event, 10)
		c := mustDial(t, srv.PipeDial(), WithHeartbeat(busyInterval, busyTimeout),
			WithOnDisconnect(func(d Disconnect) { events <- event{d, time.Now()} }))
		defer busySettle(c)
		msg, _ := busyPayload(busyMessage)

		start := time.Now()
		err := c.Write(context.Background(), websocket.MessageBinary, msg)
		returned := time.Now()
		e := <-events
		st := peer.state()
		var lastPing time.Time
		for _, p := range srv.PingTimes() {
			if !p.After(st.lastRead) {
				lastPing = p
			}
		}
		lastPingAt := "none"
		if !lastPing.IsZero() {
			lastPingAt = lastPing.Sub(start).String()
		}
		t.Logf("the peer read %d bytes, last at %v, its last answered ping at %s; found dead at %v; Write returned at %v: %v",
			st.n, st.lastRead.Sub(start), lastPingAt, e.at.Sub(start), returned.Sub(start), err)
		if e.d.Code != websocket.StatusAbnormalClosure || !errors.Is(e.d.Err, ErrHeartbeatTimeout) {
			t.Fatalf("disconnect %v, want 1006 with ErrHeartbeatTimeout", e.d)
		}
		if err == nil {
			t.Fatal("the Write to the dead connection returned nil")
		}
		if st.err != nil || st.n != 1<<20 || !e.at.After(st.lastRead) {
			t.Fatalf("the peer read %d bytes (error %v), its last read %v after the Disconnect; want 1 MiB read before it",
				st.n, st.err, st.lastRead.Sub(e.at))
		}
		if lastPing.IsZero() {
			t.Fatal("no ping got through to the peer while it read")
		}
		if got, want := e.at.Sub(lastPing), busyInterval+busyTimeout; got < want-busyStep || got > want {
			t.Errorf("found dead %v after the last answered ping, want %v (to within a step, never later)", got, want)
		}
		if got, limit := e.at.Sub(st.lastRead), busyInterval+busyTimeout+busyStep; got > limit {
			t.Errorf("found dead %v after the peer's last read, want at most interval + timeout + step = %v", got, limit)
		}
		if returned.Before(e.at.Add(-busyStep)) {
			t.Errorf("the Write returned at %v, before the heartbeat's verdict at %v", returned.Sub(start), e.at.Sub(start))
		}
	})
}

// busySettle closes c and waits until everything in the bubble has
// settled: deferred after the server's Close, it runs first, so that no
// ping is being handled while wstest.Server.Close holds the lock that
// handling a ping needs (see busyServer).
func busySettle(c *Conn) {
	c.CloseNow()
	synctest.Wait()
}

// slowFrame is a raw server step that sends one binary message of size
// bytes as a single frame, its payload in pieces of piece bytes every
// every, stopping after stopAfter bytes of payload if stopAfter > 0 (the
// connection stays open, silent). It reads and discards what the client
// sends and never answers a ping. lastPiece receives when the last piece
// went out.
func slowFrame(size, piece int, every time.Duration, stopAfter int, lastPiece chan<- time.Time) wstest.Step {
	return wstest.Step{Raw: func(ctx context.Context, conn net.Conn) {
		read := make(chan struct{})
		go func() {
			defer close(read)
			io.Copy(io.Discard, conn) // until the client or the server closes
		}()
		defer func() { <-read }()
		defer conn.Close()
		header := []byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0, 0} // FIN, binary, 64-bit length
		for i := range 8 {
			header[9-i] = byte(uint64(size) >> (8 * i))
		}
		if _, err := conn.Write(header); err != nil {
			return
		}
		payload := strings.Repeat("x", piece)
		for sent := 0; sent < size && (stopAfter <= 0 || sent < stopAfter); sent += piece {
			time.Sleep(every)
			if _, err := conn.Write([]byte(payload[:min(piece, size-sent)])); err != nil {
				return
			}
			lastPiece <- time.Now()
		}
		<-ctx.Done()
	}}
}

// Reading is busy too. A large message that trickles in as one frame (a
// server writing 96 KiB at once on a slow link) takes 1.5 s here, nearly
// four times interval + timeout: each piece that arrives is evidence, so
// the connection stays and the message arrives whole.
func TestHeartbeatKeepsSlowLargeReadAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const size, piece, every = 96 << 10, 1 << 10, 16 * time.Millisecond
		pieces := make(chan time.Time, size/piece)
		srv := wstest.NewServer(slowFrame(size, piece, every, 0, pieces), wstest.Hang())
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, noReadLimit(srv.PipeDial()), rec.option(), WithHeartbeat(busyInterval, busyTimeout))
		defer busySettle(c)

		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		typ, p, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageBinary || len(p) != size {
			t.Fatalf("Read: %v, %d bytes, %v; want the %d-byte message (disconnects: %v)", typ, len(p), err, size, rec.all())
		}
		if took := time.Since(start); took < 3*(busyInterval+busyTimeout) {
			t.Fatalf("the message took %v: not slow enough to test anything", took)
		}
		if ds := rec.all(); len(ds) != 0 {
			t.Fatalf("disconnects while the message was arriving: %v", ds)
		}
		if st := c.Stats(); st.Connects != 1 || st.State != StateConnected {
			t.Fatalf("%d connects, state %v; want 1, connected", st.Connects, st.State)
		}
	})
}

// A peer that stops in the middle of a large frame and answers no ping is
// found dead within interval + timeout (plus a step) of the last piece
// that arrived, not only once the frame would have been complete.
func TestHeartbeatFindsPeerThatStopsMidFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const size, piece, every = 96 << 10, 1 << 10, 16 * time.Millisecond
		pieces := make(chan time.Time, size/piece)
		srv := wstest.NewServer(slowFrame(size, piece, every, 32<<10, pieces), wstest.Hang())
		defer srv.Close()
		type event struct {
			d  Disconnect
			at time.Time
		}
		events := make(chan event, 10)
		c := mustDial(t, noReadLimit(srv.PipeDial()), WithHeartbeat(busyInterval, busyTimeout),
			WithOnDisconnect(func(d Disconnect) { events <- event{d, time.Now()} }))
		defer busySettle(c)

		var e event
		select {
		case e = <-events:
		case <-time.After(10 * time.Second):
			t.Fatal("the peer that stopped was not found dead")
		}
		var last time.Time
		for len(pieces) > 0 {
			last = <-pieces
		}
		if e.d.Code != websocket.StatusAbnormalClosure || !errors.Is(e.d.Err, ErrHeartbeatTimeout) {
			t.Fatalf("disconnect %v, want 1006 with ErrHeartbeatTimeout", e.d)
		}
		if got, want := e.at.Sub(last), busyInterval+busyTimeout; got < want-busyStep || got > want+busyStep {
			t.Errorf("found dead %v after the last piece arrived, want %v to within a step", got, want)
		}
	})
}

// noReadLimit lifts coder/websocket's 32 KiB read limit on every
// connection dial makes.
func noReadLimit(dial DialFunc) DialFunc {
	return func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		ws, resp, err := dial(ctx)
		if ws != nil {
			ws.SetReadLimit(-1)
		}
		return ws, resp, err
	}
}

// The heartbeat's markers travel among the data they follow: each ping is
// written once its spacing of data has been handed over (with a fragment
// of slack), however fast the kernel swallows the data. Here it swallows
// all of it: large socket buffers on both ends and a peer that reads only
// once the Write has returned, so the writer never blocks and never
// leaves its goroutine to the markers of its own accord. A ping written
// megabytes late would reach a slow peer long after the heartbeat judged
// it.
func TestHeartbeatMarkersFollowTheirData(t *testing.T) {
	noLeaks(t)
	const (
		size    = 6 << 20 // more than 64 markers' worth
		bufSize = 4 << 20 // SO_SNDBUF and SO_RCVBUF; Linux doubles them
		// The peer is silent until the Write returns: a heartbeat that
		// may probe meanwhile but not judge, with the smallest spacing
		// (interval + timeout ≤ 2 s).
		interval, timeout = time.Second, time.Second
		spacing           = 64 << 10
	)
	written := make(chan struct{})
	pings := make(chan []int, 1) // bytes of the message before each ping
	srv := wstest.NewServer(wstest.Step{Raw: func(ctx context.Context, conn net.Conn) {
		select {
		case <-written:
		case <-ctx.Done():
			return
		}
		var got []int
		defer func() { pings <- got }()
		r := bufio.NewReaderSize(conn, 64<<10)
		data := 0
		for fin := false; !fin; {
			var op byte
			var payload []byte
			var err error
			fin, op, payload, err = readClientFrame(r)
			if err != nil {
				t.Errorf("after %d bytes of the message: %v", data, err)
				return
			}
			switch op {
			case 0x0, 0x2:
				data += len(payload)
				continue
			case 0x9: // ping: answer it
				got = append(got, data)
				pong := append([]byte{0x8A, byte(len(payload))}, payload...)
				if _, err := conn.Write(pong); err != nil {
					return
				}
			}
			fin = false // a control frame: the message goes on
		}
		if data != size {
			t.Errorf("the message ended after %d bytes, want %d", data, size)
		}
	}}, wstest.Hang())
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener = recvBufListener{l, bufSize}
	hs.Start()
	defer hs.Close()
	url := "ws://" + l.Addr().String() + "/"
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := c.(*net.TCPConn).SetWriteBuffer(bufSize); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	defer tr.CloseIdleConnections()
	dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	}
	c := mustDial(t, dial, WithHeartbeat(interval, timeout))
	defer c.CloseNow()

	msg, _ := busyPayload(size)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = c.Write(ctx, websocket.MessageBinary, msg)
	close(written)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := <-pings
	if t.Failed() {
		return
	}
	kib := make([]int, len(got))
	for i, n := range got {
		kib[i] = n >> 10
	}
	t.Logf("pings by KiB of the message before them: %v", kib)
	// A marker is due after each spacing bytes, the last after the last
	// fragment (it may follow the message's end), and the heartbeat's own
	// probes may come too. A marker is met within a fragment of its place
	// unless the runtime holds it inside coder/websocket's Ping (a loaded
	// machine, -race): no stretch of the message may go without a ping
	// for more than maxGap, an eighth of what a peer at 3 MiB/s reads in
	// interval + timeout. A ping that follows its data only once the
	// writer blocks lands megabytes late.
	const maxGap = 8 * spacing
	last := 0
	for _, n := range append(got, size) {
		if n-last > maxGap {
			t.Errorf("no ping from %d KiB to %d KiB of the message (at most %d KiB apart)", last>>10, n>>10, maxGap>>10)
		}
		last = max(last, n)
	}
}

// readClientFrame reads one masked client frame and returns its payload,
// unmasked.
func readClientFrame(r *bufio.Reader) (fin bool, opcode byte, payload []byte, err error) {
	var h [14]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return false, 0, nil, err
	}
	fin, opcode = h[0]&0x80 != 0, h[0]&0x0f
	if h[1]&0x80 == 0 {
		return false, 0, nil, errors.New("an unmasked client frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[2:4]); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(r, h[2:10]); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(h[2:10])
	}
	if n > 1<<30 {
		return false, 0, nil, fmt.Errorf("a frame of %d bytes", n)
	}
	var key [4]byte
	if _, err := io.ReadFull(r, key[:]); err != nil {
		return false, 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return false, 0, nil, err
	}
	unmask(payload, key)
	return fin, opcode, payload, nil
}

// unmask unmasks p with key, eight bytes at a time (cheaper under the race
// detector, which instruments each access).
func unmask(p []byte, key [4]byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k)
	}
	for ; i < len(p); i++ {
		p[i] ^= key[i%4]
	}
}
