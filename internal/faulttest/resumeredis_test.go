package faulttest

// Servers that share sessions through Redis (resume/redisstore): a server
// restarted (its connections cut first, as in a crash) resumes its
// client; two servers behind a switch resume each other's sessions. And
// with sessions in memory, a server restarted mid-stream yields a session
// not recovered, with nothing lost silently.
//
// The server's application reads the client's stream and writes a stream
// of its own, independently (an echo would lose the answer to a message
// read just before its server went away: the read is recorded, the answer
// never written). Every instance of it records in one ledger what it read
// and which of its Writes returned nil.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/wsreconnect/wsreconnect/internal/redistest"
	"github.com/wsreconnect/wsreconnect/resume"
	"github.com/wsreconnect/wsreconnect/resume/redisstore"
)

// serverMsg is the server's k-th message of its stream.
func serverMsg(k int) (websocket.MessageType, []byte) {
	typ := websocket.MessageText
	if k%2 == 0 {
		typ = websocket.MessageBinary
	}
	return typ, fmt.Appendf(nil, "s%d", k)
}

// changes is a broadcast of "something changed", which a test waits on
// with a condition: no polling, no sleeps.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

func (c *changes) signal() {
	c.mu.Lock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
	c.mu.Unlock()
}

func (c *changes) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if c.ch == nil {
			c.ch = make(chan struct{})
		}
		ch := c.ch
		c.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waiting for %s: timed out", what)
		}
	}
}

// ledger records what the server applications did, across instances.
type ledger struct {
	changes
	mu        sync.Mutex
	instances int
	reads     [][]int // per instance: the client's messages read, in order
	next      int     // the last number handed to a server Write
	wrote     []int   // numbers whose Write returned nil, in the order they returned
	inflight  int     // Writes under way
	stop      bool    // stop writing
	errs      []error
}

func (l *ledger) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

// serve is the application: one instance per serve call.
func (l *ledger) serve(ctx context.Context, s *resume.Session) {
	l.mu.Lock()
	inst := l.instances
	l.instances++
	l.reads = append(l.reads, nil)
	l.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			typ, p, err := s.Read(ctx)
			if err != nil {
				return
			}
			i, _ := strconv.Atoi(strings.SplitN(string(p), ":", 2)[0])
			if wt, wp := clientMsg(i); typ != wt || string(p) != string(wp) {
				l.fail(fmt.Errorf("instance %d read %q (type %v): not a message of the client's", inst, p, typ))
			}
			l.mu.Lock()
			l.reads[inst] = append(l.reads[inst], i)
			l.mu.Unlock()
			l.signal()
		}
	}()
	for {
		l.mu.Lock()
		if l.stop {
			l.mu.Unlock()
			break
		}
		l.next++
		k := l.next
		l.inflight++
		l.mu.Unlock()
		typ, p := serverMsg(k)
		err := s.Write(ctx, typ, p)
		l.mu.Lock()
		l.inflight--
		if err == nil {
			l.wrote = append(l.wrote, k)
		}
		l.mu.Unlock()
		l.signal()
		if err != nil {
			break
		}
	}
	wg.Wait()
}

// readCount is how many of the client's messages the servers read.
func (l *ledger) readCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reads {
		n += len(r)
	}
	return n
}

// stopWriting stops the server streams and waits for the Writes under way.
func (l *ledger) stopWriting(t *testing.T) []int {
	l.mu.Lock()
	l.stop = true
	l.mu.Unlock()
	l.wait(t, "the server Writes under way", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.inflight == 0
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	w := slices.Clone(l.wrote)
	slices.Sort(w)
	return w
}

// check: the servers read the client's messages 1..n, each once, each
// instance in order, every instance after the one before.
func (l *ledger) check(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		t.Error(err)
	}
	want := 1
	for inst, r := range l.reads {
		for _, i := range r {
			if i != want {
				t.Errorf("instance %d read message %d where %d was next: lost, repeated or reordered", inst, i, want)
				return
			}
			want++
		}
	}
	if want != n+1 {
		t.Errorf("the servers read %d of the client's %d messages", want-1, n)
	}
}

// streamClient writes the client's messages 1..n and reads the server's
// stream, checking it is in order and intact.
type streamClient struct {
	changes
	c       *resume.Client
	mu      sync.Mutex
	got     []int // the server's messages read, in order
	err     error
	written atomic.Int64
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

func startStreamClient(c *resume.Client, n int) *streamClient {
	ctx, cancel := context.WithCancel(context.Background())
	sc := &streamClient{c: c, cancel: cancel}
	sc.wg.Add(2)
	go func() {
		defer sc.wg.Done()
		for i := 1; i <= n; i++ {
			typ, p := clientMsg(i)
			if err := c.Write(ctx, typ, p); err != nil {
				sc.fail(fmt.Errorf("Write %d: %w", i, err))
				return
			}
			sc.written.Add(1)
		}
	}()
	go func() {
		defer sc.wg.Done()
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					sc.fail(fmt.Errorf("Read: %w", err))
				}
				return
			}
			k, _ := strconv.Atoi(strings.TrimPrefix(string(p), "s"))
			sc.mu.Lock()
			if wt, wp := serverMsg(k); typ != wt || string(p) != string(wp) {
				sc.failLocked(fmt.Errorf("read %q (type %v): not a message of the server's", p, typ))
			} else if n := len(sc.got); n > 0 && k <= sc.got[n-1] {
				sc.failLocked(fmt.Errorf("read s%d after s%d: repeated or reordered", k, sc.got[n-1]))
			}
			sc.got = append(sc.got, k)
			sc.mu.Unlock()
			sc.signal()
		}
	}()
	return sc
}

func (sc *streamClient) fail(err error) {
	sc.mu.Lock()
	sc.failLocked(err)
	sc.mu.Unlock()
	sc.signal()
}

func (sc *streamClient) failLocked(err error) {
	if sc.err == nil {
		sc.err = err
	}
}

func (sc *streamClient) count() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.got)
}

func (sc *streamClient) stop() {
	sc.cancel()
	sc.wg.Wait()
}

// finish stops the servers' streams, reads the rest, and checks both
// directions: the client read exactly the server messages whose Write
// returned nil, in order, and the servers read the client's 1..n.
func finish(t *testing.T, l *ledger, sc *streamClient, n int) {
	t.Helper()
	wrote := l.stopWriting(t)
	sc.wait(t, "the rest of the server's stream", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.err != nil || len(sc.got) >= len(wrote)
	})
	l.wait(t, "the servers to read the client's messages", func() bool { return l.readCount() >= n })
	sc.stop()
	sc.mu.Lock()
	if sc.err != nil {
		t.Error(sc.err)
	}
	if !slices.Equal(sc.got, wrote) {
		t.Errorf("the client read %d server messages, the servers wrote %d: they differ (first read %v, first written %v)",
			len(sc.got), len(wrote), head(sc.got), head(wrote))
	}
	sc.mu.Unlock()
	l.check(t, n)
}

func head(s []int) []int { return s[:min(len(s), 5)] }

// redisStore starts a redis-server and returns a Store on it.
func redisStore(t *testing.T) resume.Store {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return redisstore.New(rdb, "faulttest:")
}

// TestResumeRedisRestart: a server restarted three times, each time with
// its connections cut first (as in a crash), resumes its client from
// Redis: both streams arrive exactly once, in order, in one session.
func TestResumeRedisRestart(t *testing.T) {
	noLeaks(t)
	const n = 3000
	l := &ledger{}
	srv := startGoServer(t, 0, l.serve, resume.WithStore(redisStore(t)))
	p := newResumeProxy(t, srv.addr())
	c := dialResume(t, p.url)
	sc := startStreamClient(c, n)
	defer sc.stop()
	for r := 1; r <= 3; r++ {
		sc.wait(t, "traffic both ways", func() bool { return sc.count() >= r*n/5 && l.readCount() >= r*n/5 })
		p.proxy.Stop() // every connection cut: nothing more reaches the server
		srv.stop()
		srv.restart(t)
		if err := p.proxy.Start(); err != nil {
			t.Fatal(err)
		}
	}
	finish(t, l, sc, n)
	st := c.Stats()
	if st.Sessions != 1 || st.Resumes < 3 {
		t.Errorf("%d sessions and %d resumes: want 1 session, resumed at least after each of the 3 restarts", st.Sessions, st.Resumes)
	}
	if got := srv.server().Stats().Resumed; got < 1 {
		t.Errorf("the last server resumed %d sessions", got)
	}
	t.Logf("%d messages each way; %d server instances; client: %d resumes, %d replayed, %d duplicates dropped",
		n, l.instances, st.Resumes, st.Replayed, st.Duplicates)
}

// TestResumeRedisSwitch: two servers share Redis; the client is switched
// from one to the other six times (its connection cut, the next dial
// going to the other), and each takes the session over from the other.
func TestResumeRedisSwitch(t *testing.T) {
	noLeaks(t)
	const n = 3000
	l := &ledger{}
	store := redisStore(t)
	srvs := []*goServer{
		startGoServer(t, 0, l.serve, resume.WithStore(store)),
		startGoServer(t, 0, l.serve, resume.WithStore(store)),
	}
	proxies := []*resumeProxy{newResumeProxy(t, srvs[0].addr()), newResumeProxy(t, srvs[1].addr())}
	var current atomic.Int32
	c := dialResume(t, func() string { return proxies[current.Load()].url() })
	sc := startStreamClient(c, n)
	defer sc.stop()
	for r := 1; r <= 6; r++ {
		sc.wait(t, "traffic both ways", func() bool { return sc.count() >= r*n/8 && l.readCount() >= r*n/8 })
		old := current.Load()
		current.Store(1 - old)
		p := proxies[old]
		p.proxy.Stop() // the connection cut; the next dial goes to the other
		if err := p.proxy.Start(); err != nil {
			t.Fatal(err)
		}
	}
	finish(t, l, sc, n)
	st := c.Stats()
	if st.Sessions != 1 || st.Resumes < 6 {
		t.Errorf("%d sessions and %d resumes: want 1 session, resumed after each of the 6 switches", st.Sessions, st.Resumes)
	}
	for i, s := range srvs {
		if s.server().Stats().Resumed < 3 {
			t.Errorf("server %d resumed %d sessions, want at least 3", i, s.server().Stats().Resumed)
		}
	}
	t.Logf("%d messages each way; %d server instances; client: %d resumes, %d replayed, %d duplicates dropped",
		n, l.instances, st.Resumes, st.Replayed, st.Duplicates)
}

// TestResumeMemoryRestartMidStream: sessions in memory, the server
// restarted while both streams flow. The client is told, where the old
// session's messages end; its unconfirmed messages are exactly those it
// wrote after the last one the server read (the server read every one
// before them: none is lost silently), in order.
func TestResumeMemoryRestartMidStream(t *testing.T) {
	noLeaks(t)
	const n = 3000
	l := &ledger{}
	srv := startGoServer(t, 0, l.serve)
	p := newResumeProxy(t, srv.addr())
	c := dialResume(t, p.url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			typ, m := clientMsg(i)
			if c.Write(ctx, typ, m) != nil {
				return
			}
		}
	}()
	l.wait(t, "traffic", func() bool { return l.readCount() >= n/3 })
	p.proxy.Stop()
	srv.stop() // its sessions, in memory, are gone
	srv.restart(t)
	if err := p.proxy.Start(); err != nil {
		t.Fatal(err)
	}
	var nr *resume.NotRecoveredError
	last := 0
	for nr == nil {
		typ, m, err := c.Read(ctx)
		switch {
		case errors.As(err, &nr):
		case err != nil:
			t.Fatalf("Read: %v", err)
		default:
			k, _ := strconv.Atoi(strings.TrimPrefix(string(m), "s"))
			if wt, wm := serverMsg(k); typ != wt || string(m) != string(wm) || k <= last {
				t.Fatalf("read %q after s%d", m, last)
			}
			last = k
		}
	}
	l.mu.Lock()
	read0 := slices.Clone(l.reads[0])
	l.mu.Unlock()
	for k, i := range read0 {
		if i != k+1 {
			t.Fatalf("the server read message %d where %d was next", i, k+1)
		}
	}
	if len(nr.Unconfirmed) == 0 {
		t.Fatalf("no unconfirmed message: the restart came after the last write (%d read)", len(read0))
	}
	first := int(nr.Unconfirmed[0].Seq)
	if first > len(read0)+1 {
		t.Errorf("the first unconfirmed message is %d, but the server read only up to %d: %d to %d lost silently",
			first, len(read0), len(read0)+1, first-1)
	}
	for k, m := range nr.Unconfirmed {
		i := first + k
		typ, want := clientMsg(i)
		if m.Seq != uint64(i) || m.Type != typ || string(m.Data) != string(want) {
			t.Fatalf("unconfirmed[%d] = %d %q, want %d %q", k, m.Seq, m.Data, i, want)
		}
	}
	// The writer goes on in the new session: its first message there
	// follows the last unconfirmed one.
	l.wait(t, "the new session's first message", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.reads) > 1 && len(l.reads[1]) > 0
	})
	l.mu.Lock()
	next := l.reads[1][0]
	l.mu.Unlock()
	if lastUnconfirmed := first + len(nr.Unconfirmed) - 1; next != lastUnconfirmed+1 {
		t.Errorf("unconfirmed up to %d, but the new session began with %d", lastUnconfirmed, next)
	}
	cancel()
	wg.Wait()
	t.Logf("restarted after the server read %d; %d unconfirmed (%d to %d)", len(read0), len(nr.Unconfirmed), first, first+len(nr.Unconfirmed)-1)
}
