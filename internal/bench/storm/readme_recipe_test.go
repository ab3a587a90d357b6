package storm

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The README's server recipe ("A server that helps the fleet"), verbatim
// between the markers: TestReadmeRecipeIsThisCode keeps the two the same,
// and the tests below pin what the README says it does. Pacer (pace.go) is
// the same logic on the simulation's clock.

// recipe:begin
// Admission admits at most rate connections a second (a token bucket with
// a burst of rate/10). When the bucket is empty it takes the next token in
// advance, as a ticket for a slot in the future, and says when that slot
// comes. The tickets are the server's backlog, in order, 1/rate apart.
type Admission struct {
	mu      sync.Mutex
	rate    float64              // C: connections admitted per second
	burst   float64              // tokens the bucket holds at most
	tokens  float64              // below 0 while tickets hold future tokens
	last    time.Time            // when tokens was last brought up to date
	tickets map[string]time.Time // client → its slot
}

func NewAdmission(rate float64) *Admission {
	burst := max(1, rate/10)
	return &Admission{rate: rate, burst: burst, tokens: burst, last: time.Now(), tickets: map[string]time.Time{}}
}

// Admit reports whether client may connect now, or how long it must wait.
func (a *Admission) Admit(client string) (ok bool, wait time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	a.tokens = min(a.burst, a.tokens+a.rate*now.Sub(a.last).Seconds())
	a.last = now
	if slot, held := a.tickets[client]; held {
		if !now.Before(slot) { // its token was taken when the ticket was issued
			delete(a.tickets, client)
			return true, 0
		}
		return false, slot.Sub(now) // early: the same slot
	}
	if a.tokens >= 1 {
		a.tokens--
		return true, 0
	}
	a.tokens-- // the next token not yet promised; -tokens is the backlog
	slot := now.Add(time.Duration(-a.tokens / a.rate * float64(time.Second)))
	a.tickets[client] = slot
	return false, slot.Sub(now)
}

// recipe:end

func TestReadmeRecipeIsThisCode(t *testing.T) {
	self, err := os.ReadFile("readme_recipe_test.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, code, _ := strings.Cut(string(self), "// recipe:begin\n")
	code, _, _ = strings.Cut(code, "\n// recipe:end")
	if !strings.Contains(string(readme), code) {
		t.Errorf("README.md's Admission differs from the one tested here; copy this into the README:\n%s", code)
	}
}

// The queue: a refused client gets the next slot, 1/C after the previous
// one; coming back early it keeps its slot; at its slot it is admitted on
// its ticket, and a newcomer without one queues behind.
func TestAdmissionQueuesTheRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAdmission(10) // a slot every 100 ms, a burst of 1
		if ok, _ := a.Admit("a"); !ok {
			t.Fatal("the first client is refused; the bucket holds one token")
		}
		for i, c := range []string{"b", "c", "d"} {
			want := time.Duration(i+1) * 100 * time.Millisecond
			if ok, wait := a.Admit(c); ok || wait != want {
				t.Fatalf("client %s: admitted %v, wait %v; want refused, %v", c, ok, wait, want)
			}
		}
		time.Sleep(50 * time.Millisecond)
		if ok, wait := a.Admit("c"); ok || wait != 150*time.Millisecond {
			t.Fatalf("c back early: admitted %v, wait %v; want refused, the same slot 150 ms on", ok, wait)
		}
		time.Sleep(150 * time.Millisecond) // 200 ms: b's and c's slots are due
		for _, c := range []string{"c", "b"} {
			if ok, _ := a.Admit(c); !ok {
				t.Fatalf("%s refused at its slot", c)
			}
		}
		// d's slot (300 ms) is still to come, and its token is promised:
		// a newcomer waits behind it.
		if ok, wait := a.Admit("e"); ok || wait != 200*time.Millisecond {
			t.Fatalf("newcomer: admitted %v, wait %v; want refused, 200 ms (behind d)", ok, wait)
		}
		if len(a.tickets) != 2 {
			t.Fatalf("%d tickets held, want d's and e's", len(a.tickets))
		}
	})
}

// Over a long storm it admits at most C a second, plus the burst.
func TestAdmissionRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAdmission(100)
		admitted := 0
		next := 0
		// 1,000 newcomers a second for 10 s, each coming back at its slot.
		due := map[time.Duration][]string{}
		start := time.Now()
		for step := range 10_000 {
			now := time.Duration(step) * time.Millisecond
			for _, c := range due[now] {
				if ok, _ := a.Admit(c); !ok {
					t.Fatalf("%s refused at its slot", c)
				}
				admitted++
			}
			delete(due, now)
			c := strconv.Itoa(next)
			next++
			if ok, wait := a.Admit(c); ok {
				admitted++
			} else {
				at := now + wait.Round(time.Millisecond)
				if at < now+wait {
					at += time.Millisecond
				}
				due[at] = append(due[at], c)
			}
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start).Seconds()
		if bound := 100*elapsed + 10 + 1; float64(admitted) > bound {
			t.Fatalf("admitted %d in %.1f s, more than C·t + burst = %.0f", admitted, elapsed, bound)
		}
		if admitted < 900 {
			t.Fatalf("admitted %d in %.1f s; the queue should keep the server busy at C = 100/s", admitted, elapsed)
		}
	})
}
