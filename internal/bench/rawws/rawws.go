// Package rawws is a minimal WebSocket server for the per-message
// benchmarks: it does the RFC 6455 handshake itself, hijacks the connection
// and then either discards what the client sends (Sink) or streams
// pre-encoded 1 KiB binary frames at it (Source). Either way it answers
// pings with pongs, so a heartbeat stays happy.
//
// The server's own cost per message is tiny (no unmasking, no per-frame
// allocation, large writes), so the benchmarks measure the client.
package rawws

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Mode is what the server does once a connection is up.
type Mode int

const (
	// Sink reads and discards every frame.
	Sink Mode = iota
	// Source streams binary frames of PayloadSize bytes as fast as the
	// client reads them.
	Source
)

// Server is a loopback server in one Mode.
type Server struct {
	URL string // ws://127.0.0.1:port/

	mode        Mode
	payloadSize int
	ln          net.Listener
	hs          *http.Server

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on 127.0.0.1 and serves mode; payloadSize is the size of
// the frames a Source sends.
func Start(mode Mode, payloadSize int) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL:         "ws://" + ln.Addr().String() + "/",
		mode:        mode,
		payloadSize: payloadSize,
		ln:          ln,
		conns:       map[net.Conn]struct{}{},
	}
	s.hs = &http.Server{Handler: http.HandlerFunc(s.serveHTTP)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.hs.Serve(ln)
	}()
	return s, nil
}

// Close stops the server and ends every connection.
func (s *Server) Close() {
	_ = s.hs.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := Upgrade(w, r)
	if err != nil {
		return
	}
	conn := c.conn
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.Close()
		return
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		_ = conn.Close()
	}()
	if s.mode == Sink {
		c.ReadLoop()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.ReadLoop()
		_ = conn.Close() // stop the writer
	}()
	c.stream(s.payloadSize)
	_ = conn.Close()
	<-done
}

// Upgrade answers a WebSocket handshake and hijacks the connection. It
// negotiates no extension and no subprotocol.
func Upgrade(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" {
		http.Error(w, "not a websocket handshake", http.StatusBadRequest)
		return nil, errors.New("rawws: not a websocket handshake")
	}
	h := sha1.Sum([]byte(key + wsGUID))
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n")
	if err := brw.Flush(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &Conn{conn: conn, br: brw.Reader}, nil
}

// Conn is the server side of one connection.
type Conn struct {
	conn    net.Conn
	br      *bufio.Reader
	wmu     sync.Mutex // one frame (or batch of frames) at a time
	stopped atomic.Bool
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// StopReading makes ReadLoop return at its next frame without answering
// it, leaving the connection open: a server that hangs.
func (c *Conn) StopReading() { c.stopped.Store(true) }

// WriteText writes one unfragmented text frame.
func (c *Conn) WriteText(p []byte) error {
	if len(p) > 125 {
		return errors.New("rawws: WriteText: payload over 125 bytes")
	}
	return c.writeControl(0x1, p)
}

// ReadLoop reads frames until the connection ends or StopReading: data is
// discarded, a ping gets its pong, a close frame is echoed.
func (c *Conn) ReadLoop() {
	var hdr [14]byte
	var ctl [125]byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
			return
		}
		if c.stopped.Load() {
			return
		}
		op := hdr[0] & 0x0f
		masked := hdr[1]&0x80 != 0
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(c.br, hdr[2:4]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err := io.ReadFull(c.br, hdr[2:10]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(hdr[2:10])
		}
		var mask [4]byte
		if masked {
			if _, err := io.ReadFull(c.br, mask[:]); err != nil {
				return
			}
		}
		if op < 8 { // data: discard
			if _, err := c.br.Discard(int(n)); err != nil {
				return
			}
			continue
		}
		if n > 125 {
			return // protocol error
		}
		p := ctl[:n]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return
		}
		for i := range p {
			p[i] ^= mask[i%4]
		}
		switch op {
		case 0x9: // ping → pong
			if c.writeControl(0xA, p) != nil {
				return
			}
		case 0x8: // close → echo and end
			_ = c.writeControl(0x8, p)
			return
		}
	}
}

func (c *Conn) writeControl(op byte, p []byte) error {
	f := make([]byte, 0, 2+len(p))
	f = append(f, 0x80|op, byte(len(p)))
	f = append(f, p...)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(f)
	return err
}

// stream writes batches of pre-encoded binary frames until a write fails.
func (c *Conn) stream(size int) {
	frame := EncodeFrame(size)
	// Up to 64 frames per write, and no more than about 256 KiB: a batch of
	// 64 frames of 4 MiB took 256 MiB and a second to build, inside the
	// client's timed loop.
	batch := make([]byte, 0, max(1, min(64, (256<<10)/len(frame)))*len(frame))
	for len(batch)+len(frame) <= cap(batch) {
		batch = append(batch, frame...)
	}
	for {
		c.wmu.Lock()
		_, err := c.conn.Write(batch)
		c.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

// EncodeFrame returns one unmasked binary frame (server to client) with a
// payload of size bytes.
func EncodeFrame(size int) []byte {
	var f []byte
	switch {
	case size <= 125:
		f = append(f, 0x82, byte(size))
	case size <= 0xffff:
		f = append(f, 0x82, 126, byte(size>>8), byte(size))
	default:
		f = append(f, 0x82, 127)
		f = binary.BigEndian.AppendUint64(f, uint64(size))
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	return append(f, payload...)
}
