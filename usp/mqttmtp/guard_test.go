package mqttmtp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// packet is the fixed header of an MQTT packet of type typ with a body of
// n bytes.
func packet(typ byte, n int) []byte {
	p := []byte{typ << 4}
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			b |= 0x80
		}
		p = append(p, b)
		if n == 0 {
			break
		}
	}
	return p
}

func withBody(typ byte, n int) []byte {
	return append(packet(typ, n), bytes.Repeat([]byte{'b'}, n)...)
}

// readThrough returns what the client would read of stream through a
// guard of max bytes.
func readThrough(t *testing.T, stream []byte, max int) ([]byte, uint64, error) {
	t.Helper()
	a, b := net.Pipe()
	go func() { b.Write(stream); b.Close() }()
	var skipped atomic.Uint64
	got, err := io.ReadAll(newGuard(a, max, &skipped))
	return got, skipped.Load(), err
}

func TestGuard(t *testing.T) {
	small := withBody(mqttPublish, 100)
	ping := []byte{0xd0, 0x00}
	t.Run("skips an oversized publish", func(t *testing.T) {
		stream := append(append(append([]byte{}, small...), withBody(mqttPublish, 1<<20)...), ping...)
		got, skipped, err := readThrough(t, stream, 1024)
		if err != nil || skipped != 1 || !bytes.Equal(got, append(append([]byte{}, small...), ping...)) {
			t.Fatalf("read %d bytes, skipped %d, %v", len(got), skipped, err)
		}
	})
	t.Run("ends on another oversized packet", func(t *testing.T) {
		_, _, err := readThrough(t, withBody(9, 4096), 1024) // SUBACK
		if err == nil {
			t.Fatal("read through")
		}
	})
	t.Run("ends on a malformed length", func(t *testing.T) {
		_, _, err := readThrough(t, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 1024)
		if !errors.Is(err, errMalformed) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("a truncated skip is an error", func(t *testing.T) {
		_, _, err := readThrough(t, packet(mqttPublish, 1<<20), 1024)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("error %v", err)
		}
	})
}
