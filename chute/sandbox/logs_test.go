package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestRotatingLog(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		files    int
		input    string
		want     map[string]string // file -> records without timestamp
	}{
		{name: "fits", maxBytes: 1000, files: 3, input: "a\nb\n",
			want: map[string]string{"current.log": "s a\ns b\n"}},
		{name: "rotates and drops the oldest", maxBytes: 8, files: 2, input: "1\n2\n3\n",
			want: map[string]string{"current.log": "s 3\n", "current.log.1": "s 2\n"}},
		{name: "single file", maxBytes: 8, files: 1, input: "1\n2\n",
			want: map[string]string{"current.log": "s 2\n"}},
		{name: "partial last line", maxBytes: 1000, files: 2, input: "x\nno newline",
			want: map[string]string{"current.log": "s x\ns no newline\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// Records carry a timestamp: budget for it.
			const stamp = len("2006-01-02T15:04:05.000000000Z ")
			l, err := openRotatingLog(dir, tt.maxBytes+int64(stamp), tt.files)
			if err != nil {
				t.Fatal(err)
			}
			copyLines(l, "s", strings.NewReader(tt.input), nil)
			l.Close()
			ents, _ := os.ReadDir(dir)
			if len(ents) != len(tt.want) {
				t.Errorf("%d files, want %d", len(ents), len(tt.want))
			}
			for name, want := range tt.want {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				var got strings.Builder
				for _, line := range strings.SplitAfter(string(b), "\n") {
					if len(line) > stamp {
						got.WriteString(line[stamp:])
					}
				}
				if got.String() != want {
					t.Errorf("%s: %q, want %q", name, got.String(), want)
				}
			}
		})
	}
}

// A flood without newlines, lines longer than a file, and a reopened log
// all stay within files*maxBytes.
func TestRotatingLogBound(t *testing.T) {
	dir := t.TempDir()
	const maxBytes, files = 4096, 3
	l, err := openRotatingLog(dir, maxBytes, files)
	if err != nil {
		t.Fatal(err)
	}
	copyLines(l, "stdout", bytes.NewReader(bytes.Repeat([]byte("y"), 1<<20)), nil)
	copyLines(l, "stderr", strings.NewReader(strings.Repeat(strings.Repeat("z", 10000)+"\n", 50)), nil)
	l.Close()
	l, err = openRotatingLog(dir, maxBytes, files)
	if err != nil {
		t.Fatal(err)
	}
	copyLines(l, "stdout", strings.NewReader("after reopen\n"), nil)
	l.Close()
	var total int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, _ := e.Info()
		if info.Size() > maxBytes {
			t.Errorf("%s: %d bytes", e.Name(), info.Size())
		}
		total += info.Size()
	}
	if len(ents) != files || total > files*maxBytes {
		t.Errorf("%d files, %d bytes; bound %d files, %d bytes", len(ents), total, files, files*maxBytes)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "current.log"))
	if !strings.HasSuffix(string(b), " stdout after reopen\n") {
		t.Errorf("current.log ends %q", fmt.Sprintf("%.60s", b[max(0, len(b)-60):]))
	}
}

// Records are the same whether the output comes in one read or byte by
// byte: lines are joined across reads and cut at maxLogLine.
func TestCopyLinesAcrossReads(t *testing.T) {
	long := strings.Repeat("x", maxLogLine+5)
	input := "a\nbc\n" + long + "\nlast"
	want := []string{"s a", "s bc", "s " + long[:maxLogLine], "s xxxxx", "s last"}
	for name, r := range map[string]func() io.Reader{
		"whole":       func() io.Reader { return strings.NewReader(input) },
		"byte a time": func() io.Reader { return iotest.OneByteReader(strings.NewReader(input)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := openRotatingLog(dir, 1<<20, 1)
			if err != nil {
				t.Fatal(err)
			}
			copyLines(l, "s", r(), nil)
			l.Close()
			b, err := os.ReadFile(filepath.Join(dir, "current.log"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, rec := range strings.SplitAfter(string(b), "\n") {
				if _, rest, ok := strings.Cut(strings.TrimSuffix(rec, "\n"), " "); ok {
					got = append(got, rest)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("records %.80q, want %.80q", got, want)
			}
		})
	}
}

// The budget makes its spender wait until its share of the chute's limit
// has paid for what it spent, follows the limit, and lets go at once when
// lifted.
func TestLogBudget(t *testing.T) {
	cores := 0.2
	b := newLogBudget(func() (float64, error) { return cores, nil })
	b.wait()
	if want := logCPUShare * cores; b.rate != want {
		t.Fatalf("rate %v, want %v", b.rate, want)
	}
	const spent = 2 * time.Millisecond
	b.mu.Lock()
	b.tokens -= spent
	b.mu.Unlock()
	start := time.Now()
	b.wait()
	if waited, least := time.Since(start), time.Duration(float64(spent)/b.rate)*9/10; waited < least {
		t.Errorf("waited %v after spending %v at rate %v, want at least %v", waited, spent, b.rate, least)
	}

	cores = 0 // no limit: a share of one core
	b.checked = time.Time{}
	b.wait()
	if b.rate != logCPUShare {
		t.Errorf("rate without a limit %v, want %v", b.rate, logCPUShare)
	}

	b.mu.Lock()
	b.tokens -= time.Hour
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wait(); close(done) }()
	b.lift()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a lifted budget still holds its spender")
	}
	var none *logBudget
	none.wait()
	none.startCharge()()
}

// BenchmarkCopyLines copies short lines, the costliest output per byte: a
// chute pays for its shim's copying from its CPU limit's log share.
func BenchmarkCopyLines(b *testing.B) {
	input := bytes.Repeat([]byte("y\n"), 1<<19)
	l, err := openRotatingLog(b.TempDir(), 1<<20, 2)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetBytes(int64(len(input)))
	for b.Loop() {
		copyLines(l, "stdout", bytes.NewReader(input), nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(input)/2), "ns/line")
}
