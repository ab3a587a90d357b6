//go:build !js

package resume_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wsreconnect/wsreconnect/resume"
	"github.com/wsreconnect/wsreconnect/resume/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) resume.Store { return resume.NewMemoryStore(0, 0) })
}

// The MemoryStore's bounds: sessions and payload bytes, with expired
// sessions dropped to make room.
func TestMemoryStoreLimits(t *testing.T) {
	ctx := context.Background()
	hour := time.Now().Add(time.Hour)
	s := resume.NewMemoryStore(2, 10)
	for _, id := range []string{"a", "b"} {
		if err := s.Create(ctx, resume.Record{ID: id, Gen: 1, Expires: hour}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(ctx, resume.Record{ID: "c", Gen: 1, Expires: hour}); !errors.Is(err, resume.ErrStoreFull) {
		t.Fatalf("a third session: %v, want ErrStoreFull", err)
	}
	if err := s.Update(ctx, "a", 1, resume.Update{Append: []resume.Message{{Seq: 1, Data: make([]byte, 8)}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, "b", 1, resume.Update{Append: []resume.Message{{Seq: 1, Data: make([]byte, 3)}}}); !errors.Is(err, resume.ErrStoreFull) {
		t.Fatalf("11 bytes held: %v, want ErrStoreFull", err)
	}
	// a expires: its session and bytes make room.
	if err := s.Update(ctx, "a", 1, resume.Update{Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, "b", 1, resume.Update{Append: []resume.Message{{Seq: 1, Data: make([]byte, 3)}}}); err != nil {
		t.Fatalf("after a expired: %v", err)
	}
	if err := s.Create(ctx, resume.Record{ID: "c", Gen: 1, Expires: hour}); err != nil {
		t.Fatalf("after a expired: %v", err)
	}
	if n := s.Len(); n != 2 {
		t.Errorf("%d sessions held, want 2", n)
	}
}
