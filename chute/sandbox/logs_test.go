package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
			copyLines(l, "s", strings.NewReader(tt.input))
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
	copyLines(l, "stdout", bytes.NewReader(bytes.Repeat([]byte("y"), 1<<20)))
	copyLines(l, "stderr", strings.NewReader(strings.Repeat(strings.Repeat("z", 10000)+"\n", 50)))
	l.Close()
	l, err = openRotatingLog(dir, maxBytes, files)
	if err != nil {
		t.Fatal(err)
	}
	copyLines(l, "stdout", strings.NewReader("after reopen\n"))
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
