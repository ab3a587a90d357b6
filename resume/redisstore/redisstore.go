// Package redisstore implements resume.Store on Redis, so that servers
// sharing one Redis resume each other's sessions, and a server that
// restarts resumes its own. It lives in a module of its own: the library's
// module does not depend on a Redis client.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	srv, err := resume.NewServer(serve, resume.WithStore(redisstore.New(rdb, "chat:")))
//
// Each session is two keys: a hash (generation, expiry, received, acked)
// and a list of its unacknowledged messages to the client, both expiring
// at the session's expiry. Each Store method is one Lua script, which
// Redis runs atomically and makes visible to every client before it
// answers: the contract of resume.Store. The two keys share a hash tag,
// so they live on one node of a Redis Cluster.
//
// Numbers (generation, sequence numbers) are compared in Lua, whose
// numbers are doubles: exact up to 2^53, a billion messages a second for
// over a hundred days.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/wsreconnect/wsreconnect/resume"
)

// Store is a resume.Store on Redis. It is safe for concurrent use, by
// this process and any other using the same Redis and prefix.
type Store struct {
	rdb    redis.Scripter
	prefix string
}

// New returns a Store that keeps its sessions in rdb (a *redis.Client,
// *redis.ClusterClient or *redis.Ring), under keys starting with prefix.
// Servers that share sessions use the same prefix. The Store does not
// close rdb.
func New(rdb redis.Scripter, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix}
}

var _ resume.Store = (*Store)(nil)

// keys returns the session's hash and list keys. The hash tag {id} keeps
// both on one Cluster node: a script may only touch keys of one slot.
func (s *Store) keys(id string) []string {
	k := s.prefix + "{" + id + "}"
	return []string{k, k + ":m"}
}

// Results of the scripts that change a session.
const (
	resultOK       = 0
	resultNotFound = 1
	resultMoved    = 2
	resultExists   = 3
	resultBadSeq   = 4
)

// A list element is the message's type (one byte) then its data; its
// number is its place: the list holds acked+1, acked+2, … in order.
func encodeMessage(m resume.Message) string {
	b := make([]byte, 1+len(m.Data))
	b[0] = byte(m.Type)
	copy(b[1:], m.Data)
	return string(b)
}

// expiryArgs are the expiry as stored (Unix nanoseconds, exactly as
// given) and as Redis's key expiry (Unix milliseconds, rounded up: the
// keys never vanish before the session expires).
func expiryArgs(t time.Time) (nanos, millis string) {
	ns := t.UnixNano()
	ms := ns / 1e6
	if ns%1e6 > 0 {
		ms++
	}
	return strconv.FormatInt(ns, 10), strconv.FormatInt(ms, 10)
}

// createScript: KEYS hash, list; ARGV gen, nanos, millis, received,
// acked, messages….
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 3 end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'exp', ARGV[2], 'expms', ARGV[3], 'received', ARGV[4], 'acked', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
if #ARGV > 5 then
	for i = 6, #ARGV, 1000 do -- unpack has a limit
		redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
	end
	redis.call('PEXPIREAT', KEYS[2], ARGV[3])
end
return 0
`)

// Create implements resume.Store.
func (s *Store) Create(ctx context.Context, r resume.Record) error {
	for i, m := range r.Unacked {
		if m.Seq != r.Acked+uint64(i)+1 {
			return fmt.Errorf("redisstore: create: message %d where %d belongs", m.Seq, r.Acked+uint64(i)+1)
		}
	}
	nanos, millis := expiryArgs(r.Expires)
	args := make([]any, 0, 5+len(r.Unacked))
	args = append(args, strconv.FormatUint(r.Gen, 10), nanos, millis,
		strconv.FormatUint(r.Received, 10), strconv.FormatUint(r.Acked, 10))
	for _, m := range r.Unacked {
		args = append(args, encodeMessage(m))
	}
	n, err := createScript.Run(ctx, s.rdb, s.keys(r.ID), args...).Int()
	if err != nil {
		return fmt.Errorf("redisstore: create: %w", err)
	}
	if n == resultExists {
		return fmt.Errorf("redisstore: create: session %q exists", r.ID)
	}
	return nil
}

// takeScript: KEYS hash, list; ARGV nanos, millis. Returns nil, or
// {gen, nanos, received, acked, messages…}.
var takeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'exp', ARGV[1], 'expms', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'gen', 'received', 'acked')
local r = {h[1], ARGV[1], h[2], h[3]}
for _, m in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
	r[#r + 1] = m
end
return r
`)

// Take implements resume.Store.
func (s *Store) Take(ctx context.Context, id string, expires time.Time) (resume.Record, error) {
	nanos, millis := expiryArgs(expires)
	vals, err := takeScript.Run(ctx, s.rdb, s.keys(id), nanos, millis).StringSlice()
	switch {
	case errors.Is(err, redis.Nil):
		return resume.Record{}, resume.ErrSessionNotFound
	case err != nil:
		return resume.Record{}, fmt.Errorf("redisstore: take: %w", err)
	case len(vals) < 4:
		return resume.Record{}, fmt.Errorf("redisstore: take: %d values, want at least 4", len(vals))
	}
	r := resume.Record{ID: id}
	var ns int64
	var perr error
	parse := func(s string) uint64 {
		n, err := strconv.ParseUint(s, 10, 64)
		perr = errors.Join(perr, err)
		return n
	}
	r.Gen = parse(vals[0])
	ns, err = strconv.ParseInt(vals[1], 10, 64)
	perr = errors.Join(perr, err)
	r.Received, r.Acked = parse(vals[2]), parse(vals[3])
	if perr != nil {
		return resume.Record{}, fmt.Errorf("redisstore: take: a malformed session: %w", perr)
	}
	r.Expires = time.Unix(0, ns)
	for i, m := range vals[4:] {
		if m == "" {
			return resume.Record{}, errors.New("redisstore: take: a malformed message")
		}
		r.Unacked = append(r.Unacked, resume.Message{
			Seq:  r.Acked + uint64(i) + 1,
			Type: websocket.MessageType(m[0]),
			Data: []byte(m[1:]),
		})
	}
	return r, nil
}

// updateScript: KEYS hash, list; ARGV gen, acked ("0": none), received
// ("0": none), nanos and millis ("": none), first seq ("0": no messages),
// messages….
var updateScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'gen', 'acked', 'received', 'expms')
if not h[1] then return 1 end
if h[1] ~= ARGV[1] then return 2 end
local acked = tonumber(h[2])
if #ARGV > 6 then
	if tonumber(ARGV[6]) ~= acked + redis.call('LLEN', KEYS[2]) + 1 then return 4 end
	for i = 7, #ARGV, 1000 do -- unpack has a limit
		redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
	end
	redis.call('PEXPIREAT', KEYS[2], h[4])
end
local a = tonumber(ARGV[2])
if a > acked then
	local n = redis.call('LLEN', KEYS[2])
	if a - acked >= n then
		redis.call('DEL', KEYS[2])
	else
		redis.call('LTRIM', KEYS[2], a - acked, -1)
	end
	redis.call('HSET', KEYS[1], 'acked', ARGV[2])
end
if tonumber(ARGV[3]) > tonumber(h[3]) then
	redis.call('HSET', KEYS[1], 'received', ARGV[3])
end
if ARGV[4] ~= '' then
	redis.call('HSET', KEYS[1], 'exp', ARGV[4], 'expms', ARGV[5])
	redis.call('PEXPIREAT', KEYS[1], ARGV[5])
	redis.call('PEXPIREAT', KEYS[2], ARGV[5])
end
return 0
`)

// Update implements resume.Store.
func (s *Store) Update(ctx context.Context, id string, gen uint64, u resume.Update) error {
	nanos, millis := "", ""
	if !u.Expires.IsZero() {
		nanos, millis = expiryArgs(u.Expires)
	}
	first := uint64(0)
	if len(u.Append) > 0 {
		first = u.Append[0].Seq
		for i, m := range u.Append {
			if m.Seq != first+uint64(i) {
				return fmt.Errorf("redisstore: update: message %d after %d", m.Seq, first+uint64(i)-1)
			}
		}
	}
	args := make([]any, 0, 6+len(u.Append))
	args = append(args, strconv.FormatUint(gen, 10), strconv.FormatUint(u.Acked, 10),
		strconv.FormatUint(u.Received, 10), nanos, millis, strconv.FormatUint(first, 10))
	for _, m := range u.Append {
		args = append(args, encodeMessage(m))
	}
	n, err := updateScript.Run(ctx, s.rdb, s.keys(id), args...).Int()
	if err != nil {
		return fmt.Errorf("redisstore: update: %w", err)
	}
	switch n {
	case resultOK:
		return nil
	case resultNotFound:
		return resume.ErrSessionNotFound
	case resultMoved:
		return resume.ErrSessionMoved
	case resultBadSeq:
		return fmt.Errorf("redisstore: update: appending message %d, not the next one", first)
	}
	return fmt.Errorf("redisstore: update: unexpected result %d", n)
}

// deleteScript: KEYS hash, list; ARGV gen.
var deleteScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then
	redis.call('DEL', KEYS[1], KEYS[2])
end
return 0
`)

// Delete implements resume.Store.
func (s *Store) Delete(ctx context.Context, id string, gen uint64) error {
	if err := deleteScript.Run(ctx, s.rdb, s.keys(id), strconv.FormatUint(gen, 10)).Err(); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	return nil
}
