package ofp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel causes carried by *DecodeError and encoding errors; test with errors.Is.
var (
	// ErrTruncated: the input ends before a structure it announces.
	ErrTruncated = errors.New("truncated")
	// ErrBadLength: a length field disagrees with the structure or its container.
	ErrBadLength = errors.New("inconsistent length")
	// ErrUnsupported: well-formed input that this codec does not handle
	// (another OpenFlow version, a non-OXM match).
	ErrUnsupported = errors.New("unsupported")
	// ErrTooLong: on encode, a structure does not fit its length field.
	ErrTooLong = errors.New("too long for its length field")
)

// DecodeError says what could not be decoded and why.
type DecodeError struct {
	What string // the structure being decoded, e.g. "flow_mod match"
	Err  error  // one of the sentinel errors above
	Msg  string // details, for people
}

func (e *DecodeError) Error() string {
	s := "ofp: " + e.What + ": " + e.Err.Error()
	if e.Msg != "" {
		s += " (" + e.Msg + ")"
	}
	return s
}

func (e *DecodeError) Unwrap() error { return e.Err }

// reader walks a byte slice. The first failure is recorded in err, shared
// with sub-readers, and every later read yields zeros, so decoders read
// straight through and check once instead of after each field.
type reader struct {
	b     []byte
	err   *error
	depth int // nesting of action lists, see maxActionDepth
}

func newReader(b []byte) *reader {
	var err error
	return &reader{b: b, err: &err}
}

func (r *reader) ok() bool { return *r.err == nil }

func (r *reader) fail(what string, cause error, format string, args ...any) {
	if *r.err == nil {
		*r.err = &DecodeError{What: what, Err: cause, Msg: fmt.Sprintf(format, args...)}
	}
	r.b = nil
}

func (r *reader) len() int { return len(r.b) }

// take consumes n bytes, failing with ErrTruncated if fewer remain.
func (r *reader) take(what string, n int) []byte {
	if !r.ok() {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(what, ErrTruncated, "need %d bytes, have %d", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// sub consumes n bytes and returns a reader over them sharing r's error.
func (r *reader) sub(what string, n int) *reader {
	return &reader{b: r.take(what, n), err: r.err, depth: r.depth}
}

func (r *reader) u8() uint8 {
	if b := r.take("field", 1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take("field", 2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take("field", 4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take("field", 8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) skip(n int) { r.take("padding", n) }

// rest consumes what is left. It is never nil, so empty payloads marshal
// to JSON as "" like the peers' decodes, not null.
func (r *reader) rest() []byte {
	v := r.b
	if v == nil {
		v = []byte{}
	}
	r.b = r.b[len(r.b):]
	return v
}

// str reads a fixed-size NUL-padded string field.
func (r *reader) str(n int) string {
	b := r.take("string", n)
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// writer appends big-endian fields, with the first error sticky like reader.
type writer struct {
	b   []byte
	err error
}

func (w *writer) u8(v uint8)     { w.b = append(w.b, v) }
func (w *writer) u16(v uint16)   { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32)   { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64)   { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *writer) bytes(v []byte) { w.b = append(w.b, v...) }
func (w *writer) pad(n int)      { w.b = append(w.b, make([]byte, n)...) }

// padTo8 zero-fills up to the next multiple of 8 counted from start.
func (w *writer) padTo8(start int) { w.pad(pad8(len(w.b) - start)) }

// str writes s into a fixed n-byte NUL-padded field, truncating if needed
// so the field always ends in NUL.
func (w *writer) str(s string, n int) {
	b := []byte(s)
	if len(b) > n-1 {
		b = b[:n-1]
	}
	w.bytes(b)
	w.pad(n - len(b))
}

// mark reserves a 16-bit length at the current position; fill writes there
// the number of bytes from start to the end of the buffer.
func (w *writer) mark() int {
	at := len(w.b)
	w.u16(0)
	return at
}

func (w *writer) fill(at, start int, what string) {
	w.fillN(at, len(w.b)-start, what)
}

func (w *writer) fillN(at, n int, what string) {
	if n > 0xffff {
		if w.err == nil {
			w.err = fmt.Errorf("ofp: encoding %s: %d bytes: %w", what, n, ErrTooLong)
		}
		return
	}
	binary.BigEndian.PutUint16(w.b[at:], uint16(n))
}

// pad8 is how many bytes bring n to a multiple of 8.
func pad8(n int) int { return (8 - n%8) % 8 }
