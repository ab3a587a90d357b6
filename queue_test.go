//go:build !js

package wsreconnect

import (
	"context"
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
