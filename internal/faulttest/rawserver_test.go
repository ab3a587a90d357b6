package faulttest

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer is a TCP server on 127.0.0.1 that speaks WebSocket by hand, so
// that it can say what a well-behaved library refuses to: close codes that
// must never be on the wire, oversized control frames, handshakes that never
// end.
type rawServer struct {
	ln       net.Listener
	addr     string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	attempts atomic.Int64
	done     chan struct{}
}

// startRaw serves each TCP connection with serve (n counts connections from
// 1); the connection is closed when serve returns or the test ends.
func startRaw(t testing.TB, serve func(n int64, c net.Conn, br *bufio.Reader)) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			n := s.attempts.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					_ = c.Close()
				}()
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		close(s.done)
		_ = ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "ws://" + s.addr + "/" }

// hold blocks until the test ends or d passes.
func (s *rawServer) hold(d time.Duration) {
	select {
	case <-s.done:
	case <-time.After(d):
	}
}

// acceptHandshake reads the client's upgrade request and answers 101.
func acceptHandshake(c net.Conn, br *bufio.Reader) error {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Time{})
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	_, err = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	return err
}

const (
	opContinuation = 0x0
	opBinary       = 0x2
	opClose        = 0x8
)

// writeFrame writes one unmasked server frame.
func writeFrame(c net.Conn, fin bool, opcode byte, payload []byte) error {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	hdr := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, byte(n))
	case n < 1<<16:
		hdr = append(hdr, 126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	_, err := c.Write(append(hdr, payload...))
	return err
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// readClientFrame reads one (masked) client frame.
func readClientFrame(c net.Conn, br *bufio.Reader, timeout time.Duration) (opcode byte, payload []byte, err error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	opcode = h[0] & 0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("client frame of %d bytes", n)
	}
	var mask [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(br, mask[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return opcode, payload, nil
}

// readClientClose reads client frames until a close frame (skipping pings
// and data) and returns its code (-1 if it had none) and reason.
func readClientClose(c net.Conn, br *bufio.Reader, timeout time.Duration) (code int, reason string, err error) {
	deadline := time.Now().Add(timeout)
	for {
		op, p, err := readClientFrame(c, br, time.Until(deadline))
		if err != nil {
			return 0, "", err
		}
		if op != opClose {
			continue
		}
		if len(p) < 2 {
			return -1, "", nil
		}
		return int(binary.BigEndian.Uint16(p)), string(p[2:]), nil
	}
}
