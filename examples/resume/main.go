//go:build !js

// Command resume is a chat with a live feed, over a connection that keeps
// dropping, that loses nothing: the client and the server of package
// resume, numbering, acknowledging and resending their messages across
// reconnects.
//
//	go run ./examples/resume
//
// It starts a server on 127.0.0.1 and, in front of it, a proxy that cuts
// every connection every second or two, wherever the bytes are (often in
// the middle of a message). The server sends a numbered feed item every
// 20 ms and answers every chat line; the client sends 120 chat lines. Each
// time the connection comes back, it prints what was sent again. After
// about 10 s it checks that each side received every message of the
// other's exactly once, in order, and exits with status 0 if so, 1 if not.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/resume"
)

const (
	chatLines = 120
	feedEvery = 20 * time.Millisecond
	runFor    = 8 * time.Second // then the cuts stop, and the client finishes
)

func main() {
	ok, err := run()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func run() (bool, error) {
	// The server: a feed and a chat, one serve function per session.
	var serverGot []string // the chat lines, as the server read them
	var serverMu sync.Mutex
	feedSent := atomic.Int64{}
	stopFeed, feedDone := make(chan struct{}), make(chan struct{})
	var feedOnce sync.Once
	srv, err := resume.NewServer(func(ctx context.Context, s *resume.Session) {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Add(1)
		go func() { // the feed: reliable, numbered by the application too
			defer wg.Done()
			defer feedOnce.Do(func() { close(feedDone) })
			t := time.NewTicker(feedEvery)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-stopFeed:
					return
				case <-t.C:
				}
				if s.Write(ctx, websocket.MessageText, []byte("feed "+strconv.Itoa(i))) != nil {
					return
				}
				feedSent.Store(int64(i + 1))
			}
		}()
		for {
			_, p, err := s.Read(ctx)
			if err != nil {
				return
			}
			serverMu.Lock()
			serverGot = append(serverGot, string(p))
			serverMu.Unlock()
			if s.Write(ctx, websocket.MessageText, append([]byte("ack "), p...)) != nil {
				return
			}
		}
	}, resume.WithResumeWindow(time.Minute))
	if err != nil {
		return false, err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()

	// The proxy the client goes through, which cuts connections.
	px, err := newProxy(ln.Addr().String())
	if err != nil {
		return false, err
	}
	defer px.close()
	fmt.Printf("server on %s, proxy on %s: the proxy cuts every connection every 1-2 s\n", ln.Addr(), px.addr())

	// The client.
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	httpClient := &http.Client{Transport: transport}
	url := "ws://" + px.addr()
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Second)
	defer cancel()
	c, err := resume.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
	}, resume.WithConnOptions(
		wsreconnect.WithInitialDelay(100*time.Millisecond),
		wsreconnect.WithMaxDelay(time.Second),
		wsreconnect.WithHeartbeat(time.Second, time.Second),
		wsreconnect.WithOnDisconnect(func(d wsreconnect.Disconnect) {
			fmt.Printf("  connection lost (%s); reconnecting\n", reason(d))
		}),
	))
	if err != nil {
		return false, err
	}
	defer c.CloseNow()
	fmt.Printf("session %s started\n", c.Stats().Session)

	chaosEnds := time.Now().Add(runFor)
	go px.chaos(runFor)

	// The client's reader: the feed and the answers, each once, in order,
	// until the feed has stopped and everything has arrived.
	var feed, acks int
	var problems []string
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		last, lastServer := c.Stats(), srv.Stats()
		for {
			select {
			case <-feedDone:
				if acks == chatLines && int64(feed) == feedSent.Load() {
					return
				}
			default:
			}
			rctx, rcancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, p, err := c.Read(rctx)
			rcancel()
			var nr *resume.NotRecoveredError
			switch {
			case errors.As(err, &nr):
				problems = append(problems, err.Error())
				continue
			case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
				continue // nothing yet: look again
			case err != nil:
				problems = append(problems, "read: "+err.Error())
				return
			}
			msg := string(p)
			switch {
			case msg == "feed "+strconv.Itoa(feed):
				feed++
			case msg == fmt.Sprintf("ack line %d", acks):
				acks++
			default:
				problems = append(problems, fmt.Sprintf("unexpected %q (expected feed %d or ack %d)", msg, feed, acks))
			}
			if st := c.Stats(); st.Resumes != last.Resumes {
				sst := srv.Stats()
				fmt.Printf("  resumed session %s: replayed %d unacknowledged chat lines to the server, %d feed items and answers to the client; %d duplicates dropped\n",
					st.Session, st.Replayed-last.Replayed, sst.Replayed-lastServer.Replayed, st.Duplicates-last.Duplicates)
				last, lastServer = st, sst
			}
		}
	}()

	// The client's writer: a chat line every 60 ms or so.
	for i := range chatLines {
		time.Sleep(time.Duration(40+rand.IntN(40)) * time.Millisecond)
		if err := c.Write(ctx, websocket.MessageText, []byte("line "+strconv.Itoa(i))); err != nil {
			return false, fmt.Errorf("write: %w", err)
		}
	}
	time.Sleep(time.Until(chaosEnds))
	close(stopFeed)
	if err := c.Flush(ctx); err != nil {
		return false, fmt.Errorf("flush: %w", err)
	}
	<-readDone
	st := c.Stats()
	if err := c.Close(); err != nil {
		problems = append(problems, "close: "+err.Error())
	}

	serverMu.Lock()
	got := serverGot
	serverMu.Unlock()
	for i := range chatLines {
		if i >= len(got) || got[i] != "line "+strconv.Itoa(i) {
			problems = append(problems, fmt.Sprintf("the server's chat line %d: %q", i, at(got, i)))
			break
		}
	}
	if len(got) > chatLines {
		problems = append(problems, fmt.Sprintf("the server read %d chat lines, %d more than sent", len(got), len(got)-chatLines))
	}
	if int64(feed) != feedSent.Load() {
		problems = append(problems, fmt.Sprintf("the client read %d feed items of %d", feed, feedSent.Load()))
	}

	fmt.Printf("%d connections cut; the session was resumed %d times and never lost (sessions: %d)\n", px.cuts.Load(), st.Resumes, st.Sessions)
	fmt.Printf("the server read %d chat lines of %d, the client %d feed items of %d and %d answers\n", len(got), chatLines, feed, feedSent.Load(), acks)
	if len(problems) > 0 {
		fmt.Println("NOT everything arrived:")
		for _, p := range problems {
			fmt.Println("  " + p)
		}
		return false, nil
	}
	fmt.Println("everything arrived, exactly once and in order")
	return true, nil
}

func reason(d wsreconnect.Disconnect) string {
	if d.Err != nil {
		s := d.Err.Error()
		if i := strings.LastIndex(s, ": "); i >= 0 {
			s = s[i+2:]
		}
		return s
	}
	return fmt.Sprintf("code %d", d.Code)
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(missing)"
}

// proxy forwards TCP connections to a server, and cuts them all now and
// then, in the middle of whatever they carry.
type proxy struct {
	ln     net.Listener
	target string
	cuts   atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	quit  chan struct{}
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, quit: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cutAll closes every connection at once: both ends see a reset or EOF.
func (p *proxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) > 0 {
		p.cuts.Add(1)
	}
	for c := range p.conns {
		c.Close()
	}
}

// chaos cuts the connections every 1 to 2 s for d.
func (p *proxy) chaos(d time.Duration) {
	end := time.Now().Add(d)
	for {
		wait := time.Duration(1000+rand.IntN(1000)) * time.Millisecond
		if time.Now().Add(wait).After(end) {
			return
		}
		select {
		case <-time.After(wait):
		case <-p.quit:
			return
		}
		p.cutAll()
	}
}

func (p *proxy) close() {
	close(p.quit)
	p.ln.Close()
	p.cutAll()
	p.wg.Wait()
}
