// Package hooks delivers events to an application's hooks (the Traces of
// wsreconnect and of its resume layer) without ever blocking whoever emits
// them.
package hooks

import "sync"

// Max bounds the events that wait for the hooks; newer ones are dropped
// (and counted) while that many wait.
const Max = 1024

// A Queue delivers the events emitted to Call, in order, one at a time, on
// a goroutine of its own that runs only while events wait: Emit starts it,
// and it ends when none waits. Nothing waits for it: Call runs the
// application's hooks, which the emitter never waits for. Set Call before
// the first Emit; the zero Queue is otherwise ready.
type Queue[E any] struct {
	Call func(*E)

	mu      sync.Mutex
	queue   []E
	running bool // the delivering goroutine runs
	stopped bool // no event is queued any more
	dropped uint64
}

// Emit queues ev for Call. It never blocks on Call.
func (q *Queue[E]) Emit(ev E) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.stopped:
		return
	case len(q.queue) >= Max:
		q.dropped++
		return
	}
	q.queue = append(q.queue, ev)
	if !q.running {
		q.running = true
		go q.deliver()
	}
}

// deliver calls Call for each waiting event, until none waits.
func (q *Queue[E]) deliver() {
	var batch []E
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.running = false
			if q.stopped {
				q.queue = nil
			}
			q.mu.Unlock()
			return
		}
		batch, q.queue = q.queue, batch[:0]
		q.mu.Unlock()
		var zero E
		for i := range batch {
			q.Call(&batch[i])
			batch[i] = zero
		}
	}
}

// Stop has Emit queue no more events: the emitter has ended. Those waiting
// are still delivered.
func (q *Queue[E]) Stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
}

// Dropped returns how many events Emit dropped because Max waited.
func (q *Queue[E]) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
