package faulttest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// Every message in these tests checks itself, so that a partial, truncated,
// spliced or corrupted message can never pass for a whole one:
//
//	kind (1 byte) | seq (8, big endian) | payload length n (4) | payload (n) | CRC-32 of all before (4)
//
// kind is kindClient for messages the client writes (the server echoes them
// unchanged) and kindServer for the stream the server writes on its own. The
// payload is a pseudo-random function of seq.
const (
	kindClient = 'C'
	kindServer = 'S'

	headerLen  = 1 + 8 + 4
	trailerLen = 4
)

func encode(kind byte, seq uint64, n int) []byte {
	b := make([]byte, headerLen+n+trailerLen)
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:9], seq)
	binary.BigEndian.PutUint32(b[9:13], uint32(n))
	x := uint32(seq*2654435761) | 1
	for i := range n {
		x = x*1664525 + 1013904223
		b[headerLen+i] = byte(x >> 24)
	}
	binary.BigEndian.PutUint32(b[headerLen+n:], crc32.ChecksumIEEE(b[:headerLen+n]))
	return b
}

// decode checks a message and returns its kind and sequence number.
func decode(p []byte) (kind byte, seq uint64, err error) {
	if len(p) < headerLen+trailerLen {
		return 0, 0, fmt.Errorf("message of %d bytes is shorter than a header", len(p))
	}
	n := binary.BigEndian.Uint32(p[9:13])
	if uint64(len(p)) != uint64(headerLen+trailerLen)+uint64(n) {
		return 0, 0, fmt.Errorf("message of %d bytes says its payload has %d: partial or spliced", len(p), n)
	}
	if got, want := binary.BigEndian.Uint32(p[len(p)-trailerLen:]), crc32.ChecksumIEEE(p[:len(p)-trailerLen]); got != want {
		return 0, 0, errors.New("checksum mismatch: corrupted message")
	}
	kind = p[0]
	if kind != kindClient && kind != kindServer {
		return 0, 0, fmt.Errorf("unknown kind %q", kind)
	}
	return kind, binary.BigEndian.Uint64(p[1:9]), nil
}

// sizeMix draws a message payload size: mostly small, sometimes spanning
// many TCP segments.
func sizeMix(r *rand.Rand) int {
	if r.IntN(50) == 0 {
		return 16<<10 + r.IntN(16<<10)
	}
	return 16 + r.IntN(1024)
}

func sizeSmall(r *rand.Rand) int { return 16 + r.IntN(512) }

func TestMessageChecksItself(t *testing.T) {
	noLeaks(t)
	m := encode(kindClient, 42, 100)
	if k, s, err := decode(m); err != nil || k != kindClient || s != 42 {
		t.Fatalf("decode(encode) = %q %d %v", k, s, err)
	}
	for cut := range len(m) {
		if _, _, err := decode(m[:cut]); err == nil {
			t.Fatalf("a message cut to %d of %d bytes decoded", cut, len(m))
		}
	}
	for i := range len(m) {
		c := append([]byte(nil), m...)
		c[i] ^= 0x10
		if _, _, err := decode(c); err == nil {
			t.Fatalf("a message with byte %d flipped decoded", i)
		}
	}
}
