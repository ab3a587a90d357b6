package storm

import (
	"context"
	"testing"
	"time"
)

// The Pacer's queue: the burst is admitted, then each refused client gets
// the next slot, 1/C after the last, and is told the time to it in whole
// seconds, rounded up; on its slot it is admitted on its ticket, without
// taking a token from anyone else.
func TestPacer(t *testing.T) {
	p := NewPacer(10) // burst 1
	if ok, ra := p.admit(0, 0); !ok || ra != 0 {
		t.Fatalf("first: %v, %v", ok, ra)
	}
	var want = []time.Duration{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2} // slots 0.1 s … 1.2 s
	for i, w := range want {
		ok, ra := p.admit(i+1, 0)
		if ok || ra != w*time.Second {
			t.Fatalf("client %d: admitted %v, Retry-After %v, want %v s", i+1, ok, ra, w)
		}
	}
	if p.Backlog() != len(want) {
		t.Fatalf("backlog %d", p.Backlog())
	}
	// Client 5's slot is at 0.5 s: early, it is refused with the time
	// left; on time, admitted. A newcomer at 0.5 s queues behind everyone.
	if ok, ra := p.admit(5, 300*time.Millisecond); ok || ra != time.Second {
		t.Fatalf("early: %v, %v", ok, ra)
	}
	if ok, _ := p.admit(5, 500*time.Millisecond); !ok {
		t.Fatal("on its slot: refused")
	}
	if ok, ra := p.admit(100, 500*time.Millisecond); ok || ra != time.Second {
		t.Fatalf("newcomer at 0.5 s (slot 1.3 s): %v, %v", ok, ra)
	}
	// Every ticket holder coming back late is admitted, and the queue
	// is empty again.
	for i := range want {
		if i+1 == 5 {
			continue
		}
		if ok, _ := p.admit(i+1, 3*time.Second); !ok {
			t.Fatalf("client %d refused at 3 s", i+1)
		}
	}
	if ok, _ := p.admit(100, 3*time.Second); !ok || p.Backlog() != 0 {
		t.Fatalf("backlog %d", p.Backlog())
	}
	if ok, _ := p.admit(200, 3*time.Second); !ok {
		t.Fatal("the bucket refilled by 3 s")
	}
}

func TestBacklogPacer(t *testing.T) {
	p := NewBacklogPacer(10)
	p.admit(0, 0)
	for i := 1; i <= 25; i++ {
		ok, ra := p.admit(i, 0)
		if want := time.Duration((i+9)/10) * time.Second; ok || ra != want {
			t.Fatalf("client %d: %v, %v, want %v", i, ok, ra, want)
		}
	}
	// A client that comes back when its turn is due still needs a token.
	if ok, _ := p.admit(1, 50*time.Millisecond); ok {
		t.Fatal("admitted without a token")
	}
}

// Simulated, the paced server gets everyone back after at most two
// attempts, and no client comes back before its Retry-After.
func TestSimulatePaced(t *testing.T) {
	for _, c := range []Cause{Drop, TryAgainLater} {
		m := Simulate(SimConfig{N: 5000, Cause: c, Capacity: 500, Server: Paced}, Library()).Compute()
		if m.Back != 5000 || m.AttemptsMax > 2 || m.Early != 0 || m.Server != Paced {
			t.Errorf("%s: back %d, attempts max %d, early %d", c, m.Back, m.AttemptsMax, m.Early)
		}
		if m.T99Ratio < 1 || m.T99Ratio > 1.3 {
			t.Errorf("%s: 99 %% back at %.2f× the limit", c, m.T99Ratio)
		}
	}
}

// A small real paced storm: the Conns honour the Retry-After (none comes
// back sooner, none needs a third attempt) and all come back.
func TestRealPacedQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("real sockets")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := RunReal(ctx, RealConfig{N: 40, Cause: Drop, Capacity: 20, Variant: Library(), Server: Paced, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := o.Compute()
	if m.Back != 40 || m.AttemptsMax > 2 || m.AttemptsMean <= 1 || m.Early != 0 {
		t.Errorf("paced: back %d, attempts mean %.2f max %d, %d early", m.Back, m.AttemptsMean, m.AttemptsMax, m.Early)
	}
}
