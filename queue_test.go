//go:build !js

package wsreconnect

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect/internal/wstest"
)

func TestSendQueueFlushesInOrderAfterOnConnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The first connection takes OnConnect's hello, then drops (a
		// moment later: a connection that drops during OnConnect, or
		// before it is published, is a failed attempt, not a connection).
		readOneThenDrop := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			ws.Read(ctx)
			time.Sleep(time.Millisecond)
		}}
		// The third takes four messages, then sends them back (net.Pipe has
		// no buffer: echoing each at once would block the flush).
		collect4 := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			var got [][]byte
			for range 4 {
				_, p, err := ws.Read(ctx)
				if err != nil {
					return
				}
				got = append(got, p)
			}
			for _, p := range got {
				ws.Write(ctx, websocket.MessageText, p)
			}
			<-ws.CloseRead(ctx).Done()
		}}
		srv := wstest.NewServer(readOneThenDrop, wstest.Reject(503, "5"), collect4)
		defer srv.Close()
		c := mustDial(t, srv.PipeDial(), WithSendQueue(3),
			WithOnConnect(func(ctx context.Context, ws *websocket.Conn) error {
				return ws.Write(ctx, websocket.MessageText, []byte("hello"))
			}))
		time.Sleep(2 * time.Second) // dropped, then refused with Retry-After: 5
		if c.State() != StateConnecting {
			t.Fatalf("state %v", c.State())
		}
		for i := range 3 {
			start := time.Now()
			if err := c.Write(t.Context(), websocket.MessageText, []byte(strconv.Itoa(i))); err != nil {
				t.Fatalf("queued Write %d: %v", i, err)
			}
			if time.Since(start) != 0 {
				t.Fatal("queued Write waited")
			}
		}
		if err := c.Write(t.Context(), websocket.MessageText, []byte("3")); !errors.Is(err, ErrSendQueueFull) {
			t.Fatalf("Write to a full queue: %v", err)
		}
		if q := c.Stats().Queued; q != 3 {
			t.Fatalf("Stats().Queued = %d", q)
		}
		// The server returns what it received: OnConnect's hello first,
		// then the queue in order.
		for _, want := range []string{"hello", "0", "1", "2"} {
			if got := readString(t, c); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		synctest.Wait() // the last write of the flush returns just after its echo can arrive
		if q := c.Stats().Queued; q != 0 {
			t.Fatalf("Stats().Queued = %d after the flush", q)
		}
	})
}

func TestCloseReportsUnsentMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Reject(503, "100"))
		defer srv.Close()
		c := mustDial(t, srv.PipeDial(), WithSendQueue(10))
		time.Sleep(2 * time.Second)
		for range 4 {
			if err := c.Write(t.Context(), websocket.MessageText, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		err := c.Close(websocket.StatusNormalClosure, "")
		var ue *UnsentError
		if !errors.As(err, &ue) || ue.Count != 4 {
			t.Fatalf("Close: %v, want 4 unsent", err)
		}
		if err := c.Write(t.Context(), websocket.MessageText, []byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Write after Close: %v", err)
		}
	})
}

func TestStatsCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.CloseWith(websocket.StatusTryAgainLater, ""), wstest.Echo())
		defer srv.Close()
		c := mustDial(t, srv.PipeDial())
		time.Sleep(10 * time.Second)
		time.Sleep(5 * time.Second)
		st := c.Stats()
		// Attempt: the third dial made the connection up now.
		if st.State != StateConnected || st.Connects != 3 || st.Attempt != 3 {
			t.Fatalf("stats %+v", st)
		}
		if st.Disconnects[Retry] != 1 || st.Disconnects[RetryOverload] != 1 || st.Disconnects[Stop] != 0 {
			t.Fatalf("disconnects %v", st.Disconnects)
		}
		if st.LastDisconnect.Code != websocket.StatusTryAgainLater {
			t.Fatalf("last %v", st.LastDisconnect)
		}
		if st.Uptime <= 0 || st.Uptime > 15*time.Second {
			t.Fatalf("uptime %v", st.Uptime)
		}
		b, err := json.Marshal(st)
		if err != nil || !strings.Contains(string(b), `"retry_overload":1`) || !strings.Contains(string(b), `"state":"connected"`) {
			t.Fatalf("JSON %s %v", b, err)
		}
	})
}

// A token in the URL's query or userinfo never reaches an error or a log
// line the library produces.
func TestDialErrorsHideURLSecrets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		failing := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, errors.New("connection refused")
		})}
		dial := func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, "ws://alice:hunter2@example.test/feed?token=s3cret&x=1",
				&websocket.DialOptions{HTTPClient: failing})
		}
		rec := &recorder{}
		var logs strings.Builder
		c, err := Dial(t.Context(), dial, rec.option(), WithLogger(newTextLogger(&logs)),
			WithPolicy(func(Disconnect) Decision { return Stop }))
		if err == nil {
			c.CloseNow()
			t.Fatal("Dial succeeded")
		}
		var uerr *url.Error
		if !errors.As(err, &uerr) {
			t.Fatalf("the url.Error is not reachable through %v", err)
		}
		for _, text := range []string{err.Error(), rec.all()[0].Err.Error(), logs.String()} {
			if strings.Contains(text, "s3cret") || strings.Contains(text, "hunter2") || strings.Contains(text, "alice") {
				t.Errorf("secret leaked: %s", text)
			}
		}
		if !strings.Contains(err.Error(), "example.test/feed") {
			t.Errorf("the error lost the host and path: %v", err)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// In the browser the dial error quotes the URL itself, without a
// *url.Error (coder/websocket's ws_js.go): it is redacted too.
func TestBrowserDialErrorHidesURLSecrets(t *testing.T) {
	err := fmt.Errorf("failed to WebSocket dial %q: %w", "wss://alice:hunter2@example.test/feed?token=s3cret", net.ErrClosed)
	got := redact(err).Error()
	if strings.Contains(got, "s3cret") || strings.Contains(got, "hunter2") || !strings.Contains(got, `"wss://example.test/feed?REDACTED"`) {
		t.Fatalf("redacted to %q", got)
	}
	if !errors.Is(redact(err), net.ErrClosed) {
		t.Fatal("the redacted error lost its cause")
	}
	plain := errors.New("failed to WebSocket dial: no quote here")
	if redact(plain) != plain {
		t.Fatal("an error without a URL was changed")
	}
}

// A Reconnect made while the send queue is written drops that connection
// at once, as a Reconnect on a live one does; it is not kept for later, to
// win over a later end: the server's 1008 is reported as 1008, and stops.
// (It used to be marked and forgotten: the queue was written, the
// connection went live, and when the server closed with 1008, the stale
// request made it a "reconnecting", redialled at once.)
func TestReconnectDuringSendQueueDropsThatConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := make(chan struct{}, 1)
		// It reads the queue slowly, then would close with 1008.
		slowReader := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			for i := range 3 {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
				if i == 0 {
					first <- struct{}{}
				}
				time.Sleep(time.Second)
			}
			ws.Close(websocket.StatusPolicyViolation, "done")
		}}
		srv := wstest.NewServer(wstest.Drop(), slowReader, wstest.CloseWith(websocket.StatusPolicyViolation, "bye"))
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithSendQueue(8), WithHeartbeat(0, 0),
			WithBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) }))
		synctest.Wait() // dropped: the Conn waits before the next dial
		for i := range 3 {
			if err := c.Write(t.Context(), websocket.MessageText, []byte(strconv.Itoa(i))); err != nil {
				t.Fatalf("queued Write: %v", err)
			}
		}
		<-first // the queue is being written
		asked := time.Now()
		c.Reconnect()
		select {
		case <-c.Done():
		case <-time.After(time.Hour):
			t.Fatalf("the Conn never stopped; disconnects %v", rec.all())
		}
		ds := rec.all()
		if len(ds) != 3 || !isRequested(ds[1]) || ds[2].Code != websocket.StatusPolicyViolation || ds[2].Reconnect {
			t.Fatalf("disconnects %v; want the drop, the requested reconnect, then the third server's 1008, which stops", ds)
		}
		// The slow reader would have taken 2 s more to read the queue.
		if el := time.Since(asked); el >= time.Second {
			t.Fatalf("the Conn stopped %v after Reconnect, want at once: the connection dropped when asked", el)
		}
	})
}

// The reader runs while the send queue is written: a server that answers
// each message (an ack) is read, so it is never stuck on its unread
// answers, and the queue goes out at once, on one connection. (It used to
// stall until the queue write timed out, a message further per
// connection: four messages took five minutes and five connections.)
func TestSendQueueToServerThatAnswersEachMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		acker := wstest.Step{Serve: func(ctx context.Context, ws *websocket.Conn) {
			for {
				_, p, err := ws.Read(ctx)
				if err != nil {
					return
				}
				if ws.Write(ctx, websocket.MessageText, append([]byte("ack "), p...)) != nil {
					return
				}
			}
		}}
		srv := wstest.NewServer(wstest.Drop(), acker)
		defer srv.Close()
		const n = readAhead + 8 // more than the pump reads ahead
		c := mustDial(t, srv.PipeDial(), WithSendQueue(n), WithHeartbeat(0, 0),
			WithBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) }))
		synctest.Wait()
		for i := range n {
			if err := c.Write(t.Context(), websocket.MessageText, []byte(strconv.Itoa(i))); err != nil {
				t.Fatalf("queued Write: %v", err)
			}
		}
		start := time.Now()
		for i := range n {
			if got, want := readString(t, c), "ack "+strconv.Itoa(i); got != want {
				t.Fatalf("read %q, want %q", got, want)
			}
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("the acks took %v", el)
		}
		if a := srv.Accepted.Load(); a != 2 {
			t.Fatalf("%d connections, want 2", a)
		}
	})
}

// A server that upgrades, closes with 1008 and goes away while the send
// queue is written is reported as 1008, which stops: the reader sees its
// close frame. (A failed queue write used to retire the connection unread:
// 1006, retried forever.)
func TestSendQueueWriteShowsServersCloseCode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		closeAndGo := wstest.Step{Raw: func(ctx context.Context, conn net.Conn) {
			writeServerFrame(conn, 0x8, append(binary.BigEndian.AppendUint16(nil, uint16(websocket.StatusPolicyViolation)), "go away"...))
		}}
		srv := wstest.NewServer(wstest.Drop(), closeAndGo)
		defer srv.Close()
		rec := &recorder{}
		c := mustDial(t, srv.PipeDial(), rec.option(), WithSendQueue(8), WithHeartbeat(0, 0))
		synctest.Wait()
		for i := range 4 {
			if err := c.Write(t.Context(), websocket.MessageText, bytes.Repeat([]byte{'q'}, 1000+i)); err != nil {
				t.Fatalf("queued Write: %v", err)
			}
		}
		select {
		case <-c.Done():
		case <-time.After(time.Hour):
			t.Fatalf("the Conn never stopped; disconnects %v", rec.all()[:min(len(rec.all()), 3)])
		}
		ds := rec.all()
		if len(ds) != 2 || ds[1].Code != websocket.StatusPolicyViolation || ds[1].Reconnect {
			t.Fatalf("disconnects %v, want the drop, then the server's 1008, which stops", ds)
		}
	})
}

// A Write whose ctx has already ended is an error at once, with a send
// queue too: nothing is queued, nothing sent. (It used to be queued,
// return nil, and go out on the next connection.)
func TestQueuedWriteWithEndedContextIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wstest.NewServer(wstest.Drop(), wstest.Echo())
		defer srv.Close()
		c := mustDial(t, srv.PipeDial(), WithSendQueue(8), WithHeartbeat(0, 0),
			WithBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) }))
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := c.Write(ctx, websocket.MessageText, []byte("late")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Write with an ended ctx: %v, want context.Canceled", err)
		}
		if q := c.Stats().Queued; q != 0 {
			t.Fatalf("%d queued", q)
		}
		if err := c.Write(t.Context(), websocket.MessageText, []byte("next")); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, c); got != "next" {
			t.Fatalf("the server got %q first, want \"next\"", got)
		}
	})
}
