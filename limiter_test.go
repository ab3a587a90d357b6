//go:build !js

package wsreconnect

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// everyLimiter lets one Wait through per period (a token bucket of size
// one, as rate.NewLimiter(rate.Every(period), 1) is), and records when.
type everyLimiter struct {
	period time.Duration
	mu     sync.Mutex
	next   time.Time
	passed []time.Time
}

func (l *everyLimiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.period)
	l.mu.Unlock()
	t := time.NewTimer(at.Sub(now))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	l.passed = append(l.passed, time.Now())
	l.mu.Unlock()
	return nil
}

// One limiter shared by many Conns bounds their total dial rate: 20 Conns
// whose server goes away redial one per period, not all at once as they
// do without it (the control, which shows the measure can fail).
func TestSharedDialLimiterBoundsDialRate(t *testing.T) {
	const n, period = 20, 100 * time.Millisecond
	for _, limited := range []bool{true, false} {
		name := "shared limiter"
		if !limited {
			name = "control: no limiter"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(wstest.Echo())
				defer srv.Close()
				opts := []Option{WithHeartbeat(0, 0)}
				if limited {
					opts = append(opts, WithDialLimiter(&everyLimiter{period: period}))
				}
				conns := make([]*Conn, n)
				for i := range conns {
					conns[i] = mustDial(t, srv.PipeDial(), opts...)
				}
				first := len(srv.AttemptTimes())
				srv.Close() // every connection drops; every redial is dropped too
				time.Sleep(time.Duration(2*n) * period)
				for _, c := range conns {
					c.CloseNow()
				}
				redials := srv.AttemptTimes()[first:]
				if len(redials) < n {
					t.Fatalf("%d redials, want at least %d", len(redials), n)
				}
				close := 0
				for i := 1; i < len(redials); i++ {
					if redials[i].Sub(redials[i-1]) < period {
						close++
					}
				}
				if limited && close > 0 {
					t.Fatalf("%d of %d redials came less than %v after the one before", close, len(redials), period)
				}
				if !limited && close == 0 {
					t.Fatalf("without a limiter, no two of %d redials came within %v: the measure cannot tell", len(redials), period)
				}
			})
		})
	}
}

// The limiter's wait is part of the attempt: Close ends it, and a
// Reconnect during it starts no other attempt.
func TestDialLimiterWaitEndsWithClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		l := &everyLimiter{period: time.Hour}
		c := mustDial(t, srv.PipeDial(), WithDialLimiter(l), WithHeartbeat(0, 0))
		c.Reconnect() // the next attempt waits an hour for the limiter
		synctest.Wait()
		for range 5 {
			c.Reconnect()
		}
		time.Sleep(time.Minute)
		if n := srv.Attempts.Load(); n != 1 {
			t.Fatalf("%d attempts while the limiter held the dial, want 1", n)
		}
		start := time.Now()
		c.CloseNow()
		<-c.Done()
		if d := time.Since(start); d != 0 {
			t.Fatalf("the Conn ended %v after CloseNow, during the limiter's wait", d)
		}
	})
}

// An error from the limiter is a failed dial attempt: reported with Code 0
// and Err wrapping it, and retried on the standard schedule.
func TestDialLimiterErrorIsFailedAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Echo())
		defer srv.Close()
		errBudget := errors.New("budget exhausted")
		var calls int
		var mu sync.Mutex
		l := limiterFunc(func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if calls++; calls == 2 {
				return errBudget
			}
			return nil
		})
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), WithDialLimiter(l), rec.option(), WithHeartbeat(0, 0))
		c.Reconnect()
		time.Sleep(2 * time.Second)
		ds := rec.all()
		if len(ds) != 2 || !errors.Is(ds[1].Err, errBudget) || ds[1].Code != 0 || ds[1].Decision != Retry || !ds[1].Reconnect {
			t.Fatalf("disconnects %v, want the requested reconnect, then the limiter's error retried", ds)
		}
		if n := srv.Attempts.Load(); n != 2 || c.State() != StateConnected {
			t.Fatalf("%d attempts, state %v; want reconnected after the limiter's error", n, c.State())
		}
		c.CloseNow()
	})
}

type limiterFunc func(context.Context) error

func (f limiterFunc) Wait(ctx context.Context) error { return f(ctx) }
