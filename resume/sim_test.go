//go:build !js

package resume

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

var (
	simSeed  = flag.Uint64("resume.seed", 0, "run TestSimulatedDrops with this seed only")
	simSeeds = flag.Int("resume.seeds", 12, "how many seeds TestSimulatedDrops runs")
)

// simMessage is message i of a side: its type and content follow from
// (side, i) alone, so the receiver checks each one without a copy. Text
// messages carry multi-byte UTF-8; binary ones any byte.
func simMessage(side byte, i int) (websocket.MessageType, []byte) {
	r := rand.New(rand.NewPCG(uint64(side), uint64(i)))
	n := r.IntN(3000)
	if r.IntN(8) == 0 {
		n = 0
	}
	head := fmt.Appendf(nil, "%c%06d|", side, i)
	if r.IntN(2) == 0 {
		b := head
		for len(b) < n {
			b = utf8.AppendRune(b, []rune("aé€😀 z\n")[r.IntN(7)])
		}
		return websocket.MessageText, b
	}
	b := append(head, make([]byte, n)...)
	for j := len(head); j < len(b); j++ {
		b[j] = byte(r.Uint32())
	}
	return websocket.MessageBinary, b
}

// pace spreads the writes over (fake) time, so that the cuts fall among
// them: up to 4 ms before message i, in bursts.
func pace(i int) {
	time.Sleep(time.Duration(i*7%5) * time.Millisecond)
}

// paceRead makes a reader fall behind now and then, so that messages wait
// unread when a connection is cut: the peer resends them, and the reader
// must drop the copies.
func paceRead(i int) {
	if i%50 > 40 {
		time.Sleep(10 * time.Millisecond)
	}
}

// volatileCheck checks that volatile messages ("v" and their writer's
// index) arrive at most once and in order: some may be lost.
type volatileCheck struct {
	last, got int
}

func (v *volatileCheck) isVolatile(p []byte) bool { return len(p) > 0 && p[0] == 'v' }

func (v *volatileCheck) check(p []byte) error {
	var side byte
	var i int
	if _, err := fmt.Sscanf(string(p), "v%c%d", &side, &i); err != nil {
		return fmt.Errorf("volatile %q: %v", p, err)
	}
	if v.got > 0 && i <= v.last {
		return fmt.Errorf("volatile %q after %d: a copy, or out of order", p, v.last)
	}
	v.last = i
	v.got++
	return nil
}

// simCheck checks that got is message want of side.
func simCheck(side byte, want int, typ websocket.MessageType, got []byte) error {
	wtyp, wp := simMessage(side, want)
	if typ != wtyp || !bytes.Equal(got, wp) {
		n := min(len(got), 8)
		return fmt.Errorf("%c: want message %d (%v, %d bytes), got %v, %d bytes starting %q", side, want, wtyp, len(wp), typ, len(got), got[:n])
	}
	return nil
}

// TestSimulatedDrops runs a client and a server writing to each other
// while the connection is cut again and again at random moments, often in
// the middle of a frame, either way, on a fake clock. Whatever the cuts,
// each side must read exactly the other's messages, each once, in order,
// with their type and bytes. A failure prints its seed; rerun it with
// -resume.seed.
func TestSimulatedDrops(t *testing.T) {
	seeds := make([]uint64, 0, *simSeeds)
	if *simSeed != 0 {
		seeds = append(seeds, *simSeed)
	} else {
		for i := range *simSeeds {
			seeds = append(seeds, uint64(i+1))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { simulate(t, seed) })
		})
	}
}

func simulate(t *testing.T, seed uint64) {
	const n = 400 // messages each way
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var mu sync.Mutex
	var failures []error
	fail := func(err error) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
	}

	serverGot := make(chan struct{})
	sessions := 0
	srv := newTestServer(t, func(ctx context.Context, s *Session) {
		mu.Lock()
		sessions++
		first := sessions == 1
		mu.Unlock()
		if !first {
			fail(fmt.Errorf("a second session started (resumed %v)", s.Resumed()))
			return
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the server's writer
			defer wg.Done()
			for i := range n {
				pace(i)
				typ, p := simMessage('s', i)
				if err := s.Write(ctx, typ, p); err != nil {
					fail(fmt.Errorf("server write %d: %w", i, err))
					return
				}
				if i%3 == 0 { // lost while disconnected: never resent
					s.WriteVolatile(ctx, websocket.MessageBinary, fmt.Appendf(nil, "vs%d", i))
				}
			}
		}()
		var vol volatileCheck
		for i := 0; i < n; {
			paceRead(i)
			typ, p, err := s.Read(ctx)
			if err != nil {
				fail(fmt.Errorf("server read %d: %w", i, err))
				break
			}
			if vol.isVolatile(p) {
				if err := vol.check(p); err != nil {
					fail(err)
				}
				continue
			}
			if err := simCheck('c', i, typ, p); err != nil {
				fail(err)
				break
			}
			i++
		}
		close(serverGot)
		wg.Wait()
		<-ctx.Done() // keep the session until the test closes the server
	}, WithOutbox(16, 24<<10), WithAck(4, 20*time.Millisecond))

	w := newWorld(t, srv, WithOutbox(16, 24<<10), WithAck(4, 20*time.Millisecond))
	ctx := timeout(t, time.Hour)

	// The chaos: cut the newest connection at a random moment, either at
	// once or after a random number of bytes either way (a frame cut
	// short), until both sides have read everything.
	stop := make(chan struct{})
	chaosDone := make(chan struct{})
	cuts := 0
	go func() {
		defer close(chaosDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rng.IntN(40)) * time.Millisecond):
			}
			c := w.net.last()
			if c == nil {
				continue
			}
			cuts++
			switch rng.IntN(3) {
			case 0:
				c.cut()
			case 1:
				c.cutAfter(-1, rng.IntN(4000))
			case 2:
				c.cutAfter(rng.IntN(4000), -1)
			}
		}
	}()

	clientDone := make(chan struct{})
	volatiles := 0
	go func() { // the client's writer
		for i := range n {
			pace(i)
			typ, p := simMessage('c', i)
			if err := w.c.Write(ctx, typ, p); err != nil {
				fail(fmt.Errorf("client write %d: %w", i, err))
				return
			}
			if i%3 == 0 {
				w.c.WriteVolatile(ctx, websocket.MessageText, fmt.Appendf(nil, "vc%d", i))
			}
		}
	}()
	go func() { // the client's reader
		defer close(clientDone)
		var vol volatileCheck
		for i := 0; i < n; {
			paceRead(i)
			typ, p, err := w.c.Read(ctx)
			if err != nil {
				fail(fmt.Errorf("client read %d: %w", i, err))
				return
			}
			if vol.isVolatile(p) {
				if err := vol.check(p); err != nil {
					fail(err)
				}
				continue
			}
			if err := simCheck('s', i, typ, p); err != nil {
				fail(err)
				return
			}
			i++
		}
		volatiles = vol.got
	}()
	<-clientDone
	<-serverGot
	close(stop)
	<-chaosDone
	if err := w.c.Flush(ctx); err != nil {
		fail(fmt.Errorf("flush: %w", err))
	}
	st := w.c.Stats()
	w.close()

	for _, err := range failures {
		t.Errorf("seed %d: %v", seed, err)
	}
	if st.Sessions != 1 {
		t.Errorf("seed %d: %d sessions, want 1 (%+v)", seed, st.Sessions, st)
	}
	t.Logf("seed %d: %d cuts, %d resumes, %d replayed, %d duplicates dropped, %d volatile messages of %d read", seed, cuts, st.Resumes, st.Replayed, st.Duplicates, volatiles, (n+2)/3)
	if st.Resumes < 5 {
		t.Errorf("seed %d: only %d resumes: the chaos did not bite", seed, st.Resumes)
	}
}
