//go:build !js

package resume

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// storeTimeout bounds each Store call the server makes on its own behalf.
const storeTimeout = 10 * time.Second

// The server's lifecycle, in one place.
//
// Goroutines, each with one owner that starts it and waits for it:
//   - ServeConn runs on the caller's goroutine (ServeHTTP's): it reads the
//     connection until it ends. It starts the connection's link writer and
//     stops it; a close it is asked for (Session.Close, a takeover) runs
//     on a goroutine of the connection's that ServeConn waits for.
//   - One serve goroutine per session held here: started when the
//     session's first connection here is attached, waited for by Close.
//   - The janitor: started by NewServer, ended by Close. It forgets the
//     sessions whose client stayed away longer than the resume window.
//
// State: srv.mu guards the registry of sessions and the expiry heap; each
// Session's mu guards its state. Lock order: Server, then Session.

// Server is the server end of resumable sessions, for coder/websocket
// servers: an http.Handler (ServeHTTP), or ServeConn on a connection the
// caller accepted. It keeps each session for its resume window after its
// connection ends, in a Store (WithStore; servers sharing one let a client
// resume on any of them), and runs the serve function once per session
// held here, for as long as the session lives here.
type Server struct {
	cfg   config
	serve func(ctx context.Context, s *Session)
	store Store

	ctx    context.Context // ends at Close: the serve functions' ctx derives from it
	cancel context.CancelFunc
	wg     sync.WaitGroup // the serve goroutines, the ServeConn calls, the janitor

	attachMu [64]sync.Mutex // per session id (by hash): one takeover at a time
	seed     maphash.Seed

	counts struct {
		started, resumed, notFound, replayed, protocolErrors atomic.Uint64
	}

	mu       sync.Mutex
	closed   bool
	sessions map[string]*Session
	expiries expiryHeap
	kick     chan struct{} // wakes the janitor (cap 1)
}

// NewServer returns a Server that runs serve once for each session it
// holds, from its first connection here: for a new session, and for one
// it takes over from the Store (Session.Resumed). serve reads and writes the session with its methods,
// across reconnects; ctx ends when the session ends here (closed, expired,
// taken over by another server, or the Server closed), and serve must then
// return. When serve returns, the session is closed (close code 1000: the
// client stops).
func NewServer(serve func(ctx context.Context, s *Session), opts ...Option) (*Server, error) {
	cfg, err := newConfig(serverSide, opts)
	if serve == nil {
		err = errors.Join(err, fmt.Errorf("%w: nil serve function", ErrInvalidOption))
	}
	if err != nil {
		return nil, err
	}
	srv := &Server{
		cfg:      cfg,
		serve:    serve,
		store:    cfg.store,
		seed:     maphash.MakeSeed(),
		sessions: map[string]*Session{},
		kick:     make(chan struct{}, 1),
	}
	if srv.store == nil {
		srv.store = NewMemoryStore(cfg.maxSessions, DefaultStoreBytes)
	}
	srv.ctx, srv.cancel = context.WithCancel(context.Background())
	srv.wg.Add(1)
	go srv.janitor()
	return srv, nil
}

// ServeHTTP accepts the WebSocket connection (with WithAcceptOptions) and
// serves it with ServeConn.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, srv.cfg.accept)
	if err != nil {
		return // Accept answered the request
	}
	_ = srv.ServeConn(r.Context(), ws)
}

// ServeConn runs the resume protocol on ws, a connection the caller
// accepted (and perhaps authenticated): the handshake, which resumes the
// client's session or starts a new one, then the session's traffic, until
// the connection ends or ctx does. The session outlives the connection. It
// returns why the connection ended, and closes ws.
func (srv *Server) ServeConn(ctx context.Context, ws *websocket.Conn) error {
	if !srv.enter() {
		_ = ws.Close(websocket.StatusGoingAway, closeReason("server closed"))
		return ErrServerClosed
	}
	defer srv.wg.Done()
	defer ws.CloseNow()
	ws.SetReadLimit(int64(srv.cfg.outbox.message + maxHeader))

	hctx, cancel := context.WithTimeout(ctx, srv.cfg.handshakeTimeout)
	defer cancel()
	defer afterFunc(srv.ctx, cancel)() // Close cuts a handshake short
	typ, p, err := ws.Read(hctx)
	if err != nil {
		return fmt.Errorf("resume: waiting for the hello: %w", err)
	}
	f, err := parseFrame(typ, p)
	if err != nil {
		// A hello cut short by the connection's end is no violation: if
		// nothing more can be read, the connection is gone.
		if _, _, rerr := ws.Read(hctx); rerr != nil {
			return fmt.Errorf("resume: the connection ended during the handshake: %w", rerr)
		}
	} else if f.kind != kindHello {
		// A whole frame, never a hello cut short: no need to wait.
		err = malformed("expected a hello")
	}
	if err != nil {
		srv.counts.protocolErrors.Add(1)
		return violate(ws, err)
	}
	if f.limits.count > srv.cfg.peerMax.count || f.limits.bytes > srv.cfg.peerMax.bytes {
		srv.counts.protocolErrors.Add(1)
		return violate(ws, &frameError{code: websocket.StatusPolicyViolation, reason: "window too large"})
	}

	s, resumed, err := srv.attach(f.session, f.limits)
	if err != nil {
		code, reason := websocket.StatusInternalError, "store failure"
		switch {
		case errors.Is(err, ErrStoreFull):
			code, reason = websocket.StatusTryAgainLater, "too many sessions"
		case errors.Is(err, ErrServerClosed):
			code, reason = websocket.StatusGoingAway, "server closed"
		}
		_ = ws.Close(code, closeReason(reason))
		return err
	}
	sc, err := s.connect(ctx, ws, f, resumed)
	if err != nil {
		return err
	}
	srv.start(s)
	return s.serveConn(ctx, sc)
}

// Close ends every session held here, closing their connections with 1001
// (going away: the clients reconnect, and resume on a server that shares
// the Store), and returns once every serve function, every ServeConn and
// every goroutine of the Server has returned. The sessions stay in the
// Store. Close is idempotent.
func (srv *Server) Close() error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		srv.wg.Wait()
		return nil
	}
	srv.closed = true
	var all []*Session
	for _, s := range srv.sessions {
		all = append(all, s)
	}
	srv.mu.Unlock()
	for _, s := range all {
		s.end(ErrServerClosed, websocket.StatusGoingAway, closeReason("server closed"), false)
	}
	srv.cancel() // the janitor, and the handshakes under way
	srv.wg.Wait()
	return nil
}

// ServerStats are a Server's counters.
type ServerStats struct {
	// Sessions counts the sessions held now: attached, or waiting for
	// their client within the resume window.
	Sessions int
	// Started counts the new sessions started here.
	Started uint64
	// Resumed counts the connections that resumed a session.
	Resumed uint64
	// NotFound counts the hellos naming a session the Store did not hold
	// (expired, or lost): each of those clients was told that its session
	// was not recovered.
	NotFound uint64
	// Replayed counts the reliable messages sent again at the start of a
	// connection, because the client had not acknowledged them.
	Replayed uint64
	// ProtocolErrors counts the connections closed because the client
	// broke the protocol.
	ProtocolErrors uint64
}

// Stats returns the Server's counters.
func (srv *Server) Stats() ServerStats {
	srv.mu.Lock()
	n := len(srv.sessions)
	srv.mu.Unlock()
	return ServerStats{
		Sessions:       n,
		Started:        srv.counts.started.Load(),
		Resumed:        srv.counts.resumed.Load(),
		NotFound:       srv.counts.notFound.Load(),
		Replayed:       srv.counts.replayed.Load(),
		ProtocolErrors: srv.counts.protocolErrors.Load(),
	}
}

// sessionCount is how many sessions the Server holds.
func (srv *Server) sessionCount() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.sessions)
}

// enter counts a ServeConn, unless the Server is closed.
func (srv *Server) enter() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed {
		return false
	}
	srv.wg.Add(1)
	return true
}

// attach finds the session a hello names and takes it over, or starts a
// new one when it names none or one the Store does not hold. It reports
// whether the session was resumed.
func (srv *Server) attach(id string, peer limits) (*Session, bool, error) {
	ctx, cancel := context.WithTimeout(srv.ctx, storeTimeout)
	defer cancel()
	if id != noSession {
		mu := srv.attachLock(id)
		mu.Lock()
		defer mu.Unlock()
		rec, err := srv.store.Take(ctx, id, time.Now().Add(srv.cfg.window))
		switch {
		case err == nil:
			return srv.adopt(rec, peer)
		case !errors.Is(err, ErrSessionNotFound):
			return nil, false, fmt.Errorf("resume: store: take: %w", err)
		}
		srv.counts.notFound.Add(1)
	}
	if srv.sessionCount() >= srv.cfg.maxSessions {
		return nil, false, ErrStoreFull
	}
	id, err := newSessionID()
	if err != nil {
		return nil, false, err
	}
	rec := Record{ID: id, Gen: 1, Expires: time.Now().Add(srv.cfg.window)}
	if err := srv.store.Create(ctx, rec); err != nil {
		return nil, false, fmt.Errorf("resume: store: create: %w", err)
	}
	s, err := srv.register(newSession(srv, rec, false, peer))
	if err == nil {
		srv.counts.started.Add(1)
	}
	return s, false, err
}

// attachLock returns the lock that attach holds for session id from its
// Store.Take to adopt's new generation.
func (srv *Server) attachLock(id string) *sync.Mutex {
	return &srv.attachMu[maphash.String(srv.seed, id)%uint64(len(srv.attachMu))]
}

// waitAttach waits for an attach of session id that is under way, if
// any: until its new generation is known to the Session.
func (srv *Server) waitAttach(id string) {
	mu := srv.attachLock(id)
	mu.Lock()
	defer mu.Unlock()
}

// adopt continues a session taken over from the Store: this server's own
// Session if it held it last (the generation follows on), or a new one
// built from the Record.
func (srv *Server) adopt(rec Record, peer limits) (*Session, bool, error) {
	srv.mu.Lock()
	local := srv.sessions[rec.ID]
	srv.mu.Unlock()
	if local != nil {
		local.mu.Lock()
		ours := local.err == nil && local.gen+1 == rec.Gen
		if ours {
			local.gen = rec.Gen
		}
		local.mu.Unlock()
		if ours {
			return local, true, nil
		}
		// Another server held it since: what this one knows is stale.
		local.end(ErrSessionMoved, websocket.StatusPolicyViolation, "session taken over", false)
	}
	s, err := srv.register(newSession(srv, rec, true, peer))
	return s, true, err
}

// register adds s to the registry.
func (srv *Server) register(s *Session) (*Session, error) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed {
		s.cancel()
		return nil, ErrServerClosed
	}
	srv.sessions[s.id] = s
	return s, nil
}

// start runs s's serve function, once: when its first connection here is
// attached, so that the function starts with its client there.
func (srv *Server) start(s *Session) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed || s.serving {
		return
	}
	s.serving = true
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		srv.serve(s.ctx, s)
		s.end(ErrSessionClosed, websocket.StatusNormalClosure, "", true)
	}()
}

// forget removes s from the registry.
func (srv *Server) forget(s *Session) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.sessions[s.id] == s {
		delete(srv.sessions, s.id)
	}
}

// expireAt schedules s's expiry at at, for its detachment number detach
// (a later attach or detach makes it moot). The heap holds at most one
// entry per session, however often its client reconnects: a later
// deadline replaces the earlier, and the janitor requeues it when the
// earlier comes.
func (srv *Server) expireAt(s *Session, at time.Time, detach uint64) {
	srv.mu.Lock()
	s.expiry = expiry{at: at, s: s, detach: detach}
	if !s.expiryQueued {
		s.expiryQueued = true
		heap.Push(&srv.expiries, s.expiry)
	}
	srv.mu.Unlock()
	select {
	case srv.kick <- struct{}{}:
	default:
	}
}

// janitor forgets the sessions whose client did not come back in time.
func (srv *Server) janitor() {
	defer srv.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		srv.mu.Lock()
		now := time.Now()
		var due []expiry
		for len(srv.expiries) > 0 && !srv.expiries[0].at.After(now) {
			e := heap.Pop(&srv.expiries).(expiry)
			if latest := e.s.expiry; latest.at.After(now) {
				heap.Push(&srv.expiries, latest) // detached again since: later
				continue
			}
			e.s.expiryQueued = false
			due = append(due, e.s.expiry)
		}
		var wait time.Duration = -1
		if len(srv.expiries) > 0 {
			wait = srv.expiries[0].at.Sub(now)
		}
		srv.mu.Unlock()
		for _, e := range due {
			e.s.expire(e.detach)
		}
		if wait >= 0 {
			t.Reset(wait)
		}
		select {
		case <-srv.ctx.Done():
			return
		case <-srv.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

type expiry struct {
	at     time.Time
	s      *Session
	detach uint64
}

// expiryHeap orders the detached sessions by expiry (container/heap).
type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = expiry{}
	*h = old[:len(old)-1]
	return e
}

// violate closes ws for a violation of the protocol, and returns it as a
// *ProtocolError.
func violate(ws *websocket.Conn, err error) error {
	pe := protocolError(err)
	_ = ws.Close(pe.Code, closeReason(pe.Reason))
	return pe
}

// newSessionID returns 128 random bits, base64url: a session id is the
// key to the session, so it must not be guessable.
func newSessionID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("resume: session id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
