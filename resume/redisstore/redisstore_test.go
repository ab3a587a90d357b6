package redisstore_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wsreconnect/wsreconnect/internal/redistest"
	"github.com/wsreconnect/wsreconnect/resume"
	"github.com/wsreconnect/wsreconnect/resume/redisstore"
	"github.com/wsreconnect/wsreconnect/resume/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client connects to srv; it is closed when t ends.
func client(t *testing.T, srv *redistest.Server) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// The contract the resume server relies on, against a real redis-server.
// Each subtest gets a Store of its own prefix: an empty one.
func TestStore(t *testing.T) {
	rdb := client(t, redistest.Start(t))
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) resume.Store {
		return redisstore.New(rdb, "test"+strconv.FormatInt(n.Add(1), 10)+":")
	})
}

// The keys of a session expire with it in Redis itself: nothing of a
// session whose server died stays behind.
func TestKeysExpire(t *testing.T) {
	rdb := client(t, redistest.Start(t))
	ctx := context.Background()
	s := redisstore.New(rdb, "x:")
	exp := time.Now().Add(time.Hour)
	if err := s.Create(ctx, resume.Record{ID: "a", Gen: 1, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, "a", 1, resume.Update{Append: []resume.Message{{Seq: 1, Type: 1, Data: []byte("m")}}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"x:{a}", "x:{a}:m"} {
		at, err := rdb.PExpireTime(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Duration(exp.UnixMilli()+1) * time.Millisecond; at != want && at != want-time.Millisecond {
			t.Errorf("%s expires at %v, want %v", k, at, want)
		}
	}
	if err := s.Update(ctx, "a", 1, resume.Update{Acked: 1}); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, "x:{a}:m").Result(); err != nil || n != 0 {
		t.Errorf("the list of a session with nothing unacknowledged: exists %d, %v", n, err)
	}
}

// A Store that cannot reach Redis says so: the server closes with 1011.
func TestUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	defer rdb.Close()
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := redisstore.New(rdb, "x:").Take(ctx, "a", time.Now().Add(time.Hour))
	if err == nil || errors.Is(err, resume.ErrSessionNotFound) {
		t.Errorf("Take with Redis gone: %v, want a failure", err)
	}
}
