package resume

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultStoreBytes bounds the payload a MemoryStore holds by default.
const DefaultStoreBytes = 256 << 20 // 256 MiB

// MemoryStore is a Store in this process's memory: the default. A client
// resumes only on the server that holds it, and only while that server
// runs. It holds at most a given number of sessions and of payload bytes;
// expired sessions are dropped when they are looked up or when room is
// needed, so it runs no goroutine and no timer.
//
// It keeps the Data of the messages it is given, and returns them in
// Take's Record: the server never modifies them.
type MemoryStore struct {
	maxSessions, maxBytes int

	mu       sync.Mutex
	sessions map[string]*memSession
	bytes    int // payload bytes held
}

type memSession struct {
	rec   Record
	bytes int
}

// NewMemoryStore returns a MemoryStore that holds at most maxSessions
// sessions and maxBytes of message payload: beyond them, Create and an
// Update that appends fail with ErrStoreFull. Values below 1 mean the
// defaults (DefaultMaxSessions, DefaultStoreBytes).
func NewMemoryStore(maxSessions, maxBytes int) *MemoryStore {
	if maxSessions < 1 {
		maxSessions = DefaultMaxSessions
	}
	if maxBytes < 1 {
		maxBytes = DefaultStoreBytes
	}
	return &MemoryStore{maxSessions: maxSessions, maxBytes: maxBytes, sessions: map[string]*memSession{}}
}

// Len returns how many sessions the store holds, expired ones included
// until they are dropped.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// Create implements Store.
func (m *MemoryStore) Create(_ context.Context, r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[r.ID]; ok {
		return fmt.Errorf("resume: memory store: session %q exists", r.ID)
	}
	if len(m.sessions) >= m.maxSessions {
		m.sweepLocked()
		if len(m.sessions) >= m.maxSessions {
			return ErrStoreFull
		}
	}
	s := &memSession{rec: r}
	s.rec.Unacked = append([]Message(nil), r.Unacked...)
	for _, msg := range r.Unacked {
		s.bytes += len(msg.Data)
	}
	m.bytes += s.bytes
	m.sessions[r.ID] = s
	return nil
}

// Take implements Store.
func (m *MemoryStore) Take(_ context.Context, id string, expires time.Time) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookupLocked(id)
	if err != nil {
		return Record{}, err
	}
	s.rec.Gen++
	s.rec.Expires = expires
	r := s.rec
	r.Unacked = append([]Message(nil), s.rec.Unacked...)
	return r, nil
}

// Update implements Store.
func (m *MemoryStore) Update(_ context.Context, id string, gen uint64, u Update) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookupLocked(id)
	if err != nil {
		return err
	}
	if s.rec.Gen != gen {
		return ErrSessionMoved
	}
	if len(u.Append) > 0 {
		next := s.rec.Acked + uint64(len(s.rec.Unacked)) + 1
		size := 0
		for i, msg := range u.Append {
			if msg.Seq != next+uint64(i) {
				return fmt.Errorf("resume: memory store: appending message %d, expected %d", msg.Seq, next+uint64(i))
			}
			size += len(msg.Data)
		}
		if m.bytes+size > m.maxBytes {
			m.sweepLocked()
			if m.bytes+size > m.maxBytes {
				return ErrStoreFull
			}
		}
		s.rec.Unacked = append(s.rec.Unacked, u.Append...)
		s.bytes += size
		m.bytes += size
	}
	if u.Acked > s.rec.Acked {
		k := min(int(u.Acked-s.rec.Acked), len(s.rec.Unacked))
		for _, msg := range s.rec.Unacked[:k] {
			s.bytes -= len(msg.Data)
			m.bytes -= len(msg.Data)
		}
		clear(s.rec.Unacked[:k])
		s.rec.Unacked = s.rec.Unacked[k:]
		if len(s.rec.Unacked) == 0 {
			s.rec.Unacked = nil // let the array go
		}
		s.rec.Acked = u.Acked
	}
	s.rec.Received = max(s.rec.Received, u.Received)
	if !u.Expires.IsZero() {
		s.rec.Expires = u.Expires
	}
	return nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(_ context.Context, id string, gen uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sessions[id]; ok && s.rec.Gen == gen {
		m.dropLocked(id, s)
	}
	return nil
}

// lookupLocked returns the session, dropping it if it has expired.
func (m *MemoryStore) lookupLocked(id string) (*memSession, error) {
	s, ok := m.sessions[id]
	if !ok {
		return nil, ErrSessionNotFound
	}
	if !time.Now().Before(s.rec.Expires) {
		m.dropLocked(id, s)
		return nil, ErrSessionNotFound
	}
	return s, nil
}

func (m *MemoryStore) dropLocked(id string, s *memSession) {
	m.bytes -= s.bytes
	delete(m.sessions, id)
}

// sweepLocked drops every expired session. It runs only when a limit is
// reached, so its cost is paid by the call that needs the room.
func (m *MemoryStore) sweepLocked() {
	now := time.Now()
	for id, s := range m.sessions {
		if !now.Before(s.rec.Expires) {
			m.dropLocked(id, s)
		}
	}
}

var _ Store = (*MemoryStore)(nil)
