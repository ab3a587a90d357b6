package storm

import (
	"math"
	"time"
)

// Server is how a server at capacity answers the handshakes it refuses.
type Server string

const (
	// Plain refuses with 503 and no Retry-After (the zero value).
	Plain Server = ""
	// Paced refuses with 503 and a Retry-After that gives the client a
	// place in a queue (see Pacer): the server-side recipe.
	Paced Server = "paced"
	// Backlog refuses with 503 and Retry-After = ceil(backlog ÷ C), the
	// backlog being the distinct clients refused and not yet admitted,
	// and admits through the token bucket alone (see BacklogPacer): the
	// naive reading of "Retry-After from the backlog", for comparison.
	Backlog Server = "backlog"
)

// Describe says what a Server answers.
func (s Server) Describe() string {
	switch s {
	case Paced:
		return "503 + Retry-After from a queue (paced)"
	case Backlog:
		return "503 + Retry-After = ceil(backlog ÷ C)"
	}
	return "503, no Retry-After"
}

// An admission decides the handshakes of a storm, in order of t (the time
// since the drop): admitted, or refused with a Retry-After (0: none).
type admission interface {
	admit(client int, t time.Duration) (ok bool, retryAfter time.Duration)
}

type plainAdmission struct{ l *Limiter }

func (p plainAdmission) admit(_ int, t time.Duration) (bool, time.Duration) {
	return p.l.Allow(t), 0
}

func newAdmission(s Server, capacity float64) admission {
	switch {
	case capacity <= 0:
		return plainAdmission{nil}
	case s == Paced:
		return NewPacer(capacity)
	case s == Backlog:
		return NewBacklogPacer(capacity)
	}
	return plainAdmission{NewLimiter(capacity)}
}

// Pacer is the server-side recipe: the same token bucket as Limiter (rate
// C, burst C/10), but a client it refuses is not sent away empty-handed.
// It takes the next token of the bucket in advance, as a ticket for a slot
// in the future (the bucket goes into debt, like x/time/rate's Reserve),
// and is told Retry-After = the time until that slot, rounded up to whole
// seconds. When it comes back at or after its slot it is admitted on its
// ticket, without taking another token; anyone without a due ticket needs
// a free token, and there is none while the queue is non-empty, so
// newcomers queue behind. The slots are 1/C apart, so the queue drains at
// exactly C per second, and a client's place in it is its backlog: the
// Retry-After is ceil(clients ahead ÷ C).
//
// The library never comes back sooner than Retry-After (it adds up to
// +10 % of it), so a ticket holder is never early, and every client is
// refused at most once: two attempts. The cost is lateness: the rounding
// up to whole seconds, the client's +10 %, and the client's own overload
// floor when that is longer than the Retry-After.
//
// Over any span of time, admissions never exceed the bucket's (every
// admission spends one token, taken at or before it); over a short window
// they can, when late ticket holders arrive together.
type Pacer struct {
	rate, burst, tokens float64
	last                time.Duration
	slots               map[int]time.Duration // client → its ticket's slot
}

// NewPacer returns a Pacer admitting rate connections per second.
func NewPacer(rate float64) *Pacer {
	burst := max(1, rate/10)
	return &Pacer{rate: rate, burst: burst, tokens: burst, slots: map[int]time.Duration{}}
}

// Backlog is the number of clients holding a ticket.
func (p *Pacer) Backlog() int { return len(p.slots) }

func (p *Pacer) admit(client int, t time.Duration) (bool, time.Duration) {
	if t > p.last {
		p.tokens = min(p.burst, p.tokens+p.rate*(t-p.last).Seconds())
		p.last = t
	}
	if slot, ok := p.slots[client]; ok {
		if slot <= t {
			delete(p.slots, client)
			return true, 0
		}
		return false, retryAfterSeconds(slot - t) // early: same slot
	}
	if p.tokens >= 1 {
		p.tokens--
		return true, 0
	}
	p.tokens--
	slot := t + time.Duration(-p.tokens/p.rate*float64(time.Second))
	p.slots[client] = slot
	return false, retryAfterSeconds(slot - t)
}

// retryAfterSeconds is d as a Retry-After header can say it: whole
// seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) time.Duration {
	return time.Duration(max(1, math.Ceil(d.Seconds()))) * time.Second
}

// BacklogPacer admits through the token bucket alone, like Limiter, and
// tells a refused client Retry-After = ceil(backlog ÷ C), the backlog
// being the distinct clients refused and not yet admitted (this one
// included). Without tickets, a client that comes back when its turn is
// due competes with everyone else for the bucket's tokens.
type BacklogPacer struct {
	lim     *Limiter
	rate    float64
	waiting map[int]struct{}
}

// NewBacklogPacer returns a BacklogPacer admitting rate connections per
// second.
func NewBacklogPacer(rate float64) *BacklogPacer {
	return &BacklogPacer{lim: NewLimiter(rate), rate: rate, waiting: map[int]struct{}{}}
}

func (p *BacklogPacer) admit(client int, t time.Duration) (bool, time.Duration) {
	if p.lim.Allow(t) {
		delete(p.waiting, client)
		return true, 0
	}
	p.waiting[client] = struct{}{}
	return false, retryAfterSeconds(time.Duration(float64(len(p.waiting)) / p.rate * float64(time.Second)))
}
