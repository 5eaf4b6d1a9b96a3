package pid1

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDoorMessagesRoundTrip(t *testing.T) {
	cfg := DoorConfig{Timeout: 2 * time.Second, Search: true, Paths: []string{"/bin/check", "/usr/bin/check"},
		Argv: []string{"check", "-v", ""}, Env: []string{"PATH=/bin:/usr/bin", "HOME=/"}, Dir: "/data"}
	got, err := decodeDoorConfig(cfg.Encode())
	if err != nil || !reflect.DeepEqual(got, cfg) {
		t.Errorf("config decoded as %+v, %v; want %+v", got, err, cfg)
	}
	if seq, err := decodeCheckRequest(CheckRequest(1 << 40)); err != nil || seq != 1<<40 {
		t.Errorf("request decoded as %d, %v", seq, err)
	}
	for _, rep := range []CheckReport{
		{Seq: 7, Exited: true, Code: 3, Output: "bad\n"},
		{Seq: 8, Signal: 9, TimedOut: true, Truncated: true, Output: strings.Repeat("x", CheckOutputMax)},
		{Seq: 9, Err: "start check: executable file not found in $PATH"},
	} {
		got, err := DecodeCheckReport(rep.Encode())
		if err != nil || got != rep {
			t.Errorf("report decoded as %+v, %v; want %+v", got, err, rep)
		}
	}
}

// The door cuts what it sends to the bounds the shim accepts.
func TestCheckReportEncodeBounds(t *testing.T) {
	rep := CheckReport{Exited: true, Err: strings.Repeat("e", 10*checkErrMax), Output: strings.Repeat("o", 10*CheckOutputMax)}
	b := rep.Encode()
	if len(b) != CheckReportMax {
		t.Errorf("report of %d bytes, want the bound %d", len(b), CheckReportMax)
	}
	got, err := DecodeCheckReport(b)
	if err != nil || len(got.Err) != checkErrMax || len(got.Output) != CheckOutputMax {
		t.Errorf("decoded %d bytes of error and %d of output, %v", len(got.Err), len(got.Output), err)
	}
}

// Reports come from inside the chute: whatever is out of bounds is
// refused.
func TestCheckReportMalformed(t *testing.T) {
	valid := (&CheckReport{Seq: 1, Exited: true, Output: "ok"}).Encode()
	encode := func(nums []uint64, strs ...string) []byte {
		var p Plan
		for _, n := range nums {
			p.num(n)
		}
		for _, s := range strs {
			p.str(s)
		}
		return p.b
	}
	tests := map[string][]byte{
		"empty":             nil,
		"trailing byte":     append(append([]byte(nil), valid...), 0),
		"unknown flag":      encode([]uint64{1, 8, 0, 0}, "", ""),
		"exit code 256":     encode([]uint64{1, reportExited, 256, 0}, "", ""),
		"signal 200":        encode([]uint64{1, 0, 0, 200}, "", ""),
		"output too long":   encode([]uint64{1, reportExited, 0, 0}, "", strings.Repeat("o", CheckOutputMax+1)),
		"error too long":    encode([]uint64{1, reportExited, 0, 0}, strings.Repeat("e", checkErrMax+1), ""),
		"length past end":   encode([]uint64{1, reportExited, 0, 0}, "", "")[:len(valid)-4],
		"over the bound":    make([]byte, CheckReportMax+1),
		"huge string count": append(encode([]uint64{1, reportExited, 0, 0}), 0xff, 0xff, 0xff, 0xff),
	}
	for name, b := range tests {
		if rep, err := DecodeCheckReport(b); !errors.Is(err, errBadMessage) {
			t.Errorf("%s: decoded as %+v, %v", name, rep, err)
		}
	}
	for n := range len(valid) {
		if _, err := DecodeCheckReport(valid[:n]); err == nil {
			t.Errorf("a report cut at %d of %d bytes decodes", n, len(valid))
		}
	}
}

// chunks reads as its chunks, one per Read, then fails with err.
type chunks struct {
	parts [][]byte
	err   error
}

func (c *chunks) Read(b []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, c.err
	}
	n := copy(b, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if len(c.parts[0]) == 0 {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func TestKeepFirst(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 100<<10)
	tests := []struct {
		name      string
		parts     [][]byte
		want      string
		truncated bool
	}{
		{name: "nothing"},
		{name: "short", parts: [][]byte{[]byte("ok\n")}, want: "ok\n"},
		{name: "exactly the bound", parts: [][]byte{big[:10]}, want: string(big[:10])},
		{name: "one byte over", parts: [][]byte{big[:6], big[:5]}, want: string(big[:10]), truncated: true},
		{name: "far over", parts: [][]byte{[]byte("abc"), big, big}, want: "abc" + string(big[:7]), truncated: true},
	}
	for _, tt := range tests {
		for _, end := range []error{errors.New("EOF"), errors.New("deadline")} {
			got, truncated := keepFirst(&chunks{parts: append([][]byte(nil), tt.parts...), err: end}, 10)
			if got != tt.want || truncated != tt.truncated {
				t.Errorf("%s: kept %q (truncated %v), want %q (%v)", tt.name, got, truncated, tt.want, tt.truncated)
			}
		}
	}
}

func FuzzDecodeCheckReport(f *testing.F) {
	f.Add((&CheckReport{Seq: 3, Exited: true, Code: 1, Output: "no"}).Encode())
	f.Add((&CheckReport{Seq: 4, Signal: 9, TimedOut: true, Truncated: true, Err: "e"}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := DecodeCheckReport(b)
		if err != nil {
			return
		}
		// The encoding is canonical: what decodes is what encodes it.
		if again := rep.Encode(); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes as %+v, which encodes as %x", b, rep, again)
		}
	})
}

func FuzzDecodeDoorConfig(f *testing.F) {
	f.Add((&DoorConfig{Timeout: time.Second, Argv: []string{"true"}, Paths: []string{"/bin/true"}}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := decodeDoorConfig(b)
		if err != nil {
			return
		}
		if again := cfg.Encode(); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes as %+v, which encodes as %x", b, cfg, again)
		}
	})
}

func TestStatPPid(t *testing.T) {
	tests := []struct {
		stat string
		want int
		ok   bool
	}{
		{stat: "123 (sleep) S 45 123 1 0 -1", want: 45, ok: true},
		{stat: "7 (a) b) (c) R 9 7 7 0", want: 9, ok: true}, // a comm may hold parentheses and spaces
		{stat: "1 () Z 0 0", want: 0, ok: true},
		{stat: "1 (x) S", ok: false},
		{stat: "1 (x) S 12", ok: false}, // cut: no field after ppid
		{stat: "1 (x) S -1 0", ok: false},
		{stat: "no parenthesis 1 2", ok: false},
		{stat: "", ok: false},
	}
	for _, tt := range tests {
		got, ok := statPPid(tt.stat)
		if got != tt.want || ok != tt.ok {
			t.Errorf("statPPid(%q) = %d, %v; want %d, %v", tt.stat, got, ok, tt.want, tt.ok)
		}
	}
}
