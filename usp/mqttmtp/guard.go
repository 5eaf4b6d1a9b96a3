package mqttmtp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
)

// mqttPublish is the PUBLISH packet type (MQTT 3.1.1, 2.2.1).
const mqttPublish = 3

// errMalformed: the broker sent a remaining length of more than 4 bytes.
var errMalformed = errors.New("mqtt: malformed remaining length")

// guard is the broker connection as the MQTT client reads it: a PUBLISH
// larger than max is skipped in the stream without being buffered, so
// that a hostile client on the broker cannot make us allocate it (MQTT
// 3.1.1 cannot tell the broker our limit); any other packet that large
// ends the connection. We subscribe with QoS 0, so a skipped PUBLISH
// owes no acknowledgement.
type guard struct {
	net.Conn
	r       *bufio.Reader
	max     int
	hbuf    [5]byte
	head    []byte // the current packet's fixed header, not yet read
	left    int    // the current packet's remaining bytes, not yet read
	skipped *atomic.Uint64
}

func newGuard(c net.Conn, max int, skipped *atomic.Uint64) *guard {
	return &guard{Conn: c, r: bufio.NewReaderSize(c, 4096), max: max, skipped: skipped}
}

func (g *guard) Read(p []byte) (int, error) {
	for {
		if len(g.head) > 0 {
			n := copy(p, g.head)
			g.head = g.head[n:]
			return n, nil
		}
		if g.left > 0 {
			if len(p) > g.left {
				p = p[:g.left]
			}
			n, err := g.r.Read(p)
			g.left -= n
			return n, err
		}
		if err := g.next(); err != nil {
			return 0, err
		}
	}
}

// next reads the next packet's fixed header, skipping oversized PUBLISHes.
func (g *guard) next() error {
	for {
		b0, err := g.r.ReadByte()
		if err != nil {
			return err
		}
		g.hbuf[0] = b0
		length, n := 0, 1
		for shift := 0; ; shift += 7 {
			if n == len(g.hbuf) {
				return errMalformed
			}
			b, err := g.r.ReadByte()
			if err != nil {
				return noEOF(err)
			}
			g.hbuf[n] = b
			n++
			length |= int(b&0x7f) << shift
			if b&0x80 == 0 {
				break
			}
		}
		if length <= g.max {
			g.head, g.left = g.hbuf[:n], length
			return nil
		}
		if b0>>4 != mqttPublish {
			return fmt.Errorf("mqtt: packet of type %d is %d bytes, more than %d", b0>>4, length, g.max)
		}
		if _, err := g.r.Discard(length); err != nil {
			return noEOF(err)
		}
		g.skipped.Add(1)
	}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
