// Package storetest checks that a resume.Store keeps the contract the
// resume server relies on to resume a session, on this server or on any
// other sharing the Store: a Store written elsewhere (Redis, a database)
// runs Run in its own tests.
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) resume.Store { return newRedisStore(t) })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/resume"
)

// Run checks the Store that newStore returns: a new, empty one for each
// subtest. It uses real time only through Expires values in the past or
// an hour ahead: it never sleeps.
func Run(t *testing.T, newStore func(t *testing.T) resume.Store) {
	ctx := context.Background()
	hour := time.Now().Add(time.Hour)
	msg := func(seq uint64) resume.Message {
		typ := websocket.MessageText
		if seq%2 == 0 {
			typ = websocket.MessageBinary
		}
		return resume.Message{Seq: seq, Type: typ, Data: fmt.Appendf(nil, "message %d", seq)}
	}
	create := func(t *testing.T, s resume.Store, id string) {
		t.Helper()
		if err := s.Create(ctx, resume.Record{ID: id, Gen: 1, Expires: hour}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	take := func(t *testing.T, s resume.Store, id string) resume.Record {
		t.Helper()
		r, err := s.Take(ctx, id, hour)
		if err != nil {
			t.Fatalf("Take: %v", err)
		}
		return r
	}

	t.Run("unknown session", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Take(ctx, "nope", hour); !errors.Is(err, resume.ErrSessionNotFound) {
			t.Errorf("Take: %v, want ErrSessionNotFound", err)
		}
		if err := s.Update(ctx, "nope", 1, resume.Update{Received: 1}); !errors.Is(err, resume.ErrSessionNotFound) {
			t.Errorf("Update: %v, want ErrSessionNotFound", err)
		}
		if err := s.Delete(ctx, "nope", 1); err != nil {
			t.Errorf("Delete: %v, want nil", err)
		}
	})

	t.Run("take increments the generation and returns the state", func(t *testing.T) {
		s := newStore(t)
		create(t, s, "a")
		if err := s.Update(ctx, "a", 1, resume.Update{Append: []resume.Message{msg(1), msg(2), msg(3)}, Received: 7}); err != nil {
			t.Fatal(err)
		}
		r := take(t, s, "a")
		if r.ID != "a" || r.Gen != 2 || r.Received != 7 || r.Acked != 0 || !equal(r.Unacked, msg(1), msg(2), msg(3)) {
			t.Errorf("Take returned %+v: want gen 2, received 7, messages 1-3", r)
		}
		if !r.Expires.Equal(hour) {
			t.Errorf("Take: expires %v, want %v", r.Expires, hour)
		}
		if r := take(t, s, "a"); r.Gen != 3 {
			t.Errorf("second Take: gen %d, want 3", r.Gen)
		}
	})

	t.Run("acked drops messages, received only rises", func(t *testing.T) {
		s := newStore(t)
		create(t, s, "a")
		for _, u := range []resume.Update{
			{Append: []resume.Message{msg(1), msg(2)}},
			{Append: []resume.Message{msg(3)}, Received: 5},
			{Acked: 2},
			{Acked: 1, Received: 4}, // late: change nothing
			{Append: []resume.Message{msg(4)}},
		} {
			if err := s.Update(ctx, "a", 1, u); err != nil {
				t.Fatalf("Update %+v: %v", u, err)
			}
		}
		r := take(t, s, "a")
		if r.Acked != 2 || r.Received != 5 || !equal(r.Unacked, msg(3), msg(4)) {
			t.Errorf("got acked %d, received %d, messages %v: want 2, 5, messages 3-4", r.Acked, r.Received, seqs(r.Unacked))
		}
		if err := s.Update(ctx, "a", 2, resume.Update{Acked: 4}); err != nil {
			t.Fatal(err)
		}
		if r := take(t, s, "a"); r.Acked != 4 || len(r.Unacked) != 0 {
			t.Errorf("after acking everything: acked %d, messages %v", r.Acked, seqs(r.Unacked))
		}
	})

	t.Run("an older generation is fenced off", func(t *testing.T) {
		s := newStore(t)
		create(t, s, "a")
		take(t, s, "a") // gen 2: another server took it over
		if err := s.Update(ctx, "a", 1, resume.Update{Append: []resume.Message{msg(1)}}); !errors.Is(err, resume.ErrSessionMoved) {
			t.Errorf("Update with gen 1: %v, want ErrSessionMoved", err)
		}
		if err := s.Delete(ctx, "a", 1); err != nil {
			t.Errorf("Delete with gen 1: %v", err)
		}
		if r := take(t, s, "a"); r.Gen != 3 || len(r.Unacked) != 0 {
			t.Errorf("after the fenced calls: %+v, want gen 3 and nothing appended (nor deleted)", r)
		}
	})

	t.Run("delete", func(t *testing.T) {
		s := newStore(t)
		create(t, s, "a")
		if err := s.Delete(ctx, "a", 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Take(ctx, "a", hour); !errors.Is(err, resume.ErrSessionNotFound) {
			t.Errorf("Take after Delete: %v, want ErrSessionNotFound", err)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		s := newStore(t)
		past := time.Now().Add(-time.Second)
		if err := s.Create(ctx, resume.Record{ID: "old", Gen: 1, Expires: past}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Take(ctx, "old", hour); !errors.Is(err, resume.ErrSessionNotFound) {
			t.Errorf("Take of an expired session: %v, want ErrSessionNotFound", err)
		}
		create(t, s, "a")
		if err := s.Update(ctx, "a", 1, resume.Update{Expires: past}); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, "a", 1, resume.Update{Received: 1}); !errors.Is(err, resume.ErrSessionNotFound) {
			t.Errorf("Update of a session expired by Update: %v, want ErrSessionNotFound", err)
		}
	})

	t.Run("data and types survive", func(t *testing.T) {
		s := newStore(t)
		create(t, s, "a")
		big := resume.Message{Seq: 1, Type: websocket.MessageBinary, Data: make([]byte, 70000)}
		for i := range big.Data {
			big.Data[i] = byte(i * 7)
		}
		empty := resume.Message{Seq: 2, Type: websocket.MessageText, Data: []byte{}}
		if err := s.Update(ctx, "a", 1, resume.Update{Append: []resume.Message{big, empty}}); err != nil {
			t.Fatal(err)
		}
		if r := take(t, s, "a"); !equal(r.Unacked, big, empty) {
			t.Errorf("got messages %v, want a 70000-byte binary one and an empty text one", seqs(r.Unacked))
		}
	})

	t.Run("concurrent takeovers get distinct generations", func(t *testing.T) {
		s := newStore(t)
		create(t, s, "a")
		const n = 20
		gens := make(chan uint64, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r, err := s.Take(ctx, "a", hour); err == nil {
					gens <- r.Gen
				}
			}()
		}
		wg.Wait()
		close(gens)
		var got []uint64
		for g := range gens {
			got = append(got, g)
		}
		slices.Sort(got)
		want := make([]uint64, n)
		for i := range want {
			want[i] = uint64(i + 2)
		}
		if !slices.Equal(got, want) {
			t.Errorf("generations %v, want 2 to %d, each once", got, n+1)
		}
	})
}

func equal(got []resume.Message, want ...resume.Message) bool {
	return slices.EqualFunc(got, want, func(a, b resume.Message) bool {
		return a.Seq == b.Seq && a.Type == b.Type && string(a.Data) == string(b.Data)
	})
}

func seqs(ms []resume.Message) []uint64 {
	var s []uint64
	for _, m := range ms {
		s = append(s, m.Seq)
	}
	return s
}
