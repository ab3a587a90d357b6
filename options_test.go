//go:build !js

package wsreconnect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

// dialOrPanic calls Dial and turns a panic into an error that says so.
// A fake hour bounds it inside a bubble; ten real seconds outside one.
func dialOrPanic(dial DialFunc, opts ...Option) (c *Conn, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("Dial panicked: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Dial(ctx, dial, opts...)
}

// refuseDial must not be called; if it is, it fails in a way the default
// policy stops on, so that a wrongly accepted option ends Dial at once.
func refuseDial(calls *atomic.Int64) DialFunc {
	return func(context.Context) (*websocket.Conn, *http.Response, error) {
		calls.Add(1)
		return nil, nil, &url.Error{Op: "parse", URL: "ws://invalid", Err: errors.New("dialled with invalid options")}
	}
}

// Every invalid option is an error from Dial, before any dial attempt.
func TestDialRejectsInvalidOptions(t *testing.T) {
	var dials atomic.Int64
	dial := refuseDial(&dials)
	tests := []struct {
		name string
		opts []Option
		want string // the error names the option
	}{
		{"nil Option", []Option{nil}, "nil Option"},
		{"nil Option among valid ones", []Option{WithMaxDelay(time.Minute), nil}, "nil Option"},
		{"nil OnConnect", []Option{WithOnConnect(nil)}, "WithOnConnect"},
		{"nil OnDisconnect", []Option{WithOnDisconnect(nil)}, "WithOnDisconnect"},
		{"nil policy", []Option{WithPolicy(nil)}, "WithPolicy"},
		{"nil logger", []Option{WithLogger(nil)}, "WithLogger"},
		{"nil backoff func", []Option{WithBackOff(nil)}, "WithBackOff"},
		{"nil dial limiter", []Option{WithDialLimiter(nil)}, "WithDialLimiter"},
		{"nil ping func", []Option{WithPingFunc(nil)}, "WithPingFunc"},
		{"initial delay 0", []Option{WithInitialDelay(0)}, "initial delay"},
		{"initial delay negative", []Option{WithInitialDelay(-time.Second)}, "initial delay"},
		{"initial delay below 1 ms", []Option{WithInitialDelay(time.Millisecond - 1)}, "initial delay"},
		{"initial delay above default max delay", []Option{WithInitialDelay(DefaultMaxDelay + 1)}, "initial delay"},
		{"initial delay above max delay", []Option{WithInitialDelay(2 * time.Second), WithMaxDelay(time.Second)}, "exceeds max delay"},
		{"max delay 0", []Option{WithMaxDelay(0)}, "max delay"},
		{"max delay above 24h", []Option{WithMaxDelay(24*time.Hour + 1)}, "max delay"},
		{"max delay 25h", []Option{WithInitialDelay(time.Second), WithMaxDelay(25 * time.Hour)}, "max delay"},
		{"stable uptime 0", []Option{WithStableUptime(0)}, "stable uptime"},
		{"stable uptime negative", []Option{WithStableUptime(-time.Second)}, "stable uptime"},
		{"stable uptime above 24h", []Option{WithStableUptime(25 * time.Hour)}, "stable uptime"},
		{"dial timeout 0", []Option{WithDialTimeout(0)}, "dial timeout"},
		{"dial timeout above 24h", []Option{WithDialTimeout(25 * time.Hour)}, "dial timeout"},
		{"max Retry-After negative", []Option{WithMaxRetryAfter(-1)}, "max Retry-After"},
		{"max Retry-After above 24h", []Option{WithMaxRetryAfter(25 * time.Hour)}, "max Retry-After"},
		{"heartbeat interval 5ms", []Option{WithHeartbeat(5*time.Millisecond, time.Second)}, "heartbeat interval"},
		{"heartbeat timeout 5ms", []Option{WithHeartbeat(time.Second, 5*time.Millisecond)}, "heartbeat timeout"},
		{"heartbeat interval negative", []Option{WithHeartbeat(-1, time.Second)}, "heartbeat interval"},
		{"heartbeat timeout 0", []Option{WithHeartbeat(time.Second, 0)}, "heartbeat timeout"},
		{"heartbeat interval above 24h", []Option{WithHeartbeat(25*time.Hour, time.Second)}, "heartbeat interval"},
		// The last value of an option wins: a valid one overridden by an
		// invalid one is invalid.
		{"overridden by an invalid value", []Option{WithDialTimeout(time.Second), WithDialTimeout(-1)}, "dial timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dialOrPanic(dial, tt.opts...)
			if c != nil {
				c.CloseNow()
			}
			if err == nil {
				t.Fatal("Dial accepted the options")
			}
			if strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial error %q, want one naming %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "wsreconnect: ") {
				t.Errorf("Dial error %q lacks the package prefix", err)
			}
			if !errors.Is(err, ErrInvalidOption) {
				t.Errorf("Dial error %q does not wrap ErrInvalidOption", err)
			}
		})
	}
	t.Run("nil DialFunc", func(t *testing.T) {
		c, err := dialOrPanic(nil)
		if c != nil || !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "DialFunc") {
			t.Fatalf("Dial(nil) = %v, %v", c, err)
		}
	})
	if n := dials.Load(); n != 0 {
		t.Fatalf("DialFunc called %d times with invalid options", n)
	}
}

// An error names only the problems the caller made: an invalid max delay
// is not also reported as smaller than the default initial delay, and a
// valid max delay below the default initial delay lowers it.
func TestOptionErrorsNameOnlyTheCallersMistakes(t *testing.T) {
	var dials atomic.Int64
	_, err := dialOrPanic(refuseDial(&dials), WithMaxDelay(-time.Second))
	if err == nil || !strings.Contains(err.Error(), "max delay -1s out of range") || strings.Contains(err.Error(), "initial delay") {
		t.Fatalf("WithMaxDelay(-1s): %v; want only the max delay named", err)
	}
	_, err = dialOrPanic(refuseDial(&dials), WithInitialDelay(time.Minute))
	if err == nil || !strings.Contains(err.Error(), "exceeds the default max delay 30s") {
		t.Fatalf("WithInitialDelay(1m): %v; want it named against the default max delay", err)
	}
	cfg := defaultConfig()
	WithMaxDelay(500 * time.Millisecond).apply(&cfg)
	if err := cfg.validate(); err != nil || cfg.initialDelay != 500*time.Millisecond {
		t.Fatalf("WithMaxDelay(500ms) alone: %v, initial delay %v; want accepted, the initial delay lowered to it", err, cfg.initialDelay)
	}
}

// Several invalid options give one error that names each of them.
func TestDialJoinsOptionErrors(t *testing.T) {
	var dials atomic.Int64
	c, err := dialOrPanic(refuseDial(&dials),
		nil,
		WithPolicy(nil),
		WithInitialDelay(0),
		WithStableUptime(0),
		WithHeartbeat(5*time.Millisecond, time.Second),
		WithMaxRetryAfter(-1),
	)
	if c != nil {
		c.CloseNow()
	}
	if err == nil {
		t.Fatal("Dial accepted the options")
	}
	for _, w := range []string{"nil Option", "WithPolicy", "initial delay", "stable uptime", "heartbeat interval", "max Retry-After"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Dial error %q does not name %q", err, w)
		}
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Dial error %T is not an errors.Join", err)
	}
	if n := len(joined.Unwrap()); n < 6 {
		t.Fatalf("%d errors joined, want one per invalid option (6): %q", n, err)
	}
	if n := dials.Load(); n != 0 {
		t.Fatalf("DialFunc called %d times with invalid options", n)
	}
}

// The edges of every range, and the disabled heartbeat, are accepted: Dial
// connects, and the Conn carries a message.
func TestDialAcceptsValidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
	}{
		{"defaults", nil},
		{"heartbeat disabled", []Option{WithHeartbeat(0, 0)}},
		{"heartbeat disabled, negative timeout", []Option{WithHeartbeat(0, -5)}},
		{"heartbeat at the minimum", []Option{WithHeartbeat(10*time.Millisecond, 10*time.Millisecond)}},
		{"heartbeat at the maximum", []Option{WithHeartbeat(24*time.Hour, 24*time.Hour)}},
		{"delays at the minimum", []Option{WithInitialDelay(time.Millisecond), WithMaxDelay(time.Millisecond)}},
		{"initial equals max", []Option{WithInitialDelay(5 * time.Second), WithMaxDelay(5 * time.Second)}},
		{"delays at the maximum", []Option{WithMaxDelay(24 * time.Hour), WithInitialDelay(24 * time.Hour)}},
		{"max Retry-After 0", []Option{WithMaxRetryAfter(0)}},
		{"max Retry-After 24h", []Option{WithMaxRetryAfter(24 * time.Hour)}},
		{"stable uptime 1ms", []Option{WithStableUptime(time.Millisecond)}},
		{"dial timeout 24h", []Option{WithDialTimeout(24 * time.Hour)}},
		{"invalid value overridden by a valid one", []Option{WithDialTimeout(0), WithDialTimeout(time.Second)}},
		{"every callback", []Option{
			WithOnConnect(func(context.Context, *websocket.Conn) error { return nil }),
			WithOnDisconnect(func(Disconnect) {}),
			WithPolicy(DefaultPolicy),
			WithLogger(slog.New(slog.DiscardHandler)),
			WithBackOff(func() backoff.BackOff { return NewBackOff(time.Second, time.Minute) }),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(wstest.Echo())
				defer srv.Close()
				c, err := dialOrPanic(srv.PipeDial(), tt.opts...)
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.CloseNow()
				if s := c.State(); s != StateConnected {
					t.Fatalf("state %v after Dial", s)
				}
				if err := c.Write(t.Context(), websocket.MessageText, []byte("ping")); err != nil {
					t.Fatalf("Write: %v", err)
				}
				if got := readString(t, c); got != "ping" {
					t.Fatalf("echo %q", got)
				}
				if err := c.CloseNow(); err != nil {
					t.Fatalf("CloseNow: %v", err)
				}
				if s := c.State(); s != StateClosed {
					t.Fatalf("state %v after CloseNow", s)
				}
			})
		})
	}
}

// An interval of 0 really disables the heartbeat: an idle connection sees
// no ping, where the default heartbeat pings it.
func TestHeartbeatZeroDisables(t *testing.T) {
	for _, tt := range []struct {
		name      string
		opts      []Option
		wantPings bool
	}{
		{"default", nil, true},
		{"WithHeartbeat(0, 0)", []Option{WithHeartbeat(0, 0)}, false},
		{"WithHeartbeat(0, -5)", []Option{WithHeartbeat(0, -5)}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wstest.NewServer(wstest.Echo())
				defer srv.Close()
				c, err := dialOrPanic(srv.PipeDial(), tt.opts...)
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.CloseNow()
				time.Sleep(2 * time.Minute)
				synctest.Wait()
				if pings := srv.Pings.Load(); (pings > 0) != tt.wantPings {
					t.Fatalf("%d pings in 2 idle minutes", pings)
				}
				if c.State() != StateConnected || srv.Attempts.Load() != 1 {
					t.Fatalf("state %v after %d attempts", c.State(), srv.Attempts.Load())
				}
			})
		})
	}
}
