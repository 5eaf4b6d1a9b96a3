package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// maxLogLine bounds how much of a line is buffered before it is written out
// as a record of its own, so a chute writing no newlines cannot grow the
// shim's memory.
const maxLogLine = 16 << 10

// logTimeFormat is RFC 3339 with a fixed-width fraction, so records align.
const logTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// rotatingLog is current.log in a directory, rotated to current.log.1 ..
// current.log.(files-1) when it would grow past maxBytes. Whatever a chute
// writes, the directory holds at most files*maxBytes bytes of logs.
type rotatingLog struct {
	mu       sync.Mutex
	dir      string
	maxBytes int64
	files    int
	f        *os.File
	size     int64
	failed   bool      // a write error was reported; later ones are not, to keep shim.log small
	errlog   io.Writer // where that error goes (nil: stderr)
}

func openRotatingLog(dir string, maxBytes int64, files int) (*rotatingLog, error) {
	if maxBytes <= 0 || files < 1 {
		return nil, fmt.Errorf("log limits: %d bytes, %d files", maxBytes, files)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	l := &rotatingLog{dir: dir, maxBytes: maxBytes, files: files}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *rotatingLog) path(i int) string {
	if i == 0 {
		return filepath.Join(l.dir, "current.log")
	}
	return filepath.Join(l.dir, fmt.Sprintf("current.log.%d", i))
}

func (l *rotatingLog) open() error {
	f, err := os.OpenFile(l.path(0), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

func (l *rotatingLog) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	if l.files == 1 {
		if err := os.Remove(l.path(0)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return l.open()
	}
	for i := l.files - 2; i >= 0; i-- {
		if err := os.Rename(l.path(i), l.path(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return l.open()
}

// writeRecords writes whole records, each ending in a newline, rotating
// between two when the file would grow past maxBytes; a single record
// larger than that is cut to it, so that nothing breaks the bound.
// Failures (a full disk) drop the records: a chute must never block on its
// output. Only the first is reported.
func (l *rotatingLog) writeRecords(recs []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.write(recs); err != nil && !l.failed {
		l.failed = true
		w := l.errlog
		if w == nil {
			w = os.Stderr
		}
		fmt.Fprintf(w, "shim: write log (further errors not reported): %v\n", err)
	}
}

func (l *rotatingLog) write(recs []byte) error {
	for len(recs) > 0 {
		// The records that fit in the current file.
		n := len(recs)
		if room := l.maxBytes - l.size; int64(n) > room {
			n = bytes.LastIndexByte(recs[:max(room, 0)], '\n') + 1
		}
		chunk := recs[:n]
		if n == 0 {
			if l.size > 0 {
				if err := l.rotate(); err != nil {
					return err
				}
				continue
			}
			n = bytes.IndexByte(recs, '\n') + 1
			chunk = append(recs[:l.maxBytes-1:l.maxBytes-1], '\n')
		}
		written, err := l.f.Write(chunk)
		l.size += int64(written)
		if err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

func (l *rotatingLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// logReadSize is how much of a chute's output the shim reads at once: one
// timestamp and one write to the log for many lines.
const logReadSize = 32 << 10

// copyLines reads r until EOF and writes each line to l as
// "<UTC time> <stream> <line>", the lines of one read with the same time.
// It spends no more CPU time than budget allows (nil: no limit), by not
// reading while the budget is spent.
func copyLines(l *rotatingLog, stream string, r io.Reader, budget *logBudget) {
	if budget != nil {
		// Its thread's CPU time is then this copier's. Never unlocked: the
		// thread ends with the copier rather than wait, idle, with its
		// stacks, in a monitor that outlives the chute.
		runtime.LockOSThread()
	}
	buf := make([]byte, logReadSize)
	var partial, prefix, out []byte // partial: a line's start, shorter than maxLogLine
	for {
		budget.wait()
		spent := budget.startCharge()
		n, err := r.Read(buf)
		data := buf[:n]
		last := err != nil && len(partial) > 0 // a line without its newline ends the output
		if n > 0 || last {
			prefix = time.Now().UTC().AppendFormat(prefix[:0], logTimeFormat)
			prefix = append(append(append(prefix, ' '), stream...), ' ')
		}
		for len(data) > 0 {
			end := bytes.IndexByte(data, '\n') + 1
			if end == 0 {
				end = len(data)
			}
			end = min(end, maxLogLine-len(partial))
			piece := data[:end]
			data = data[end:]
			if piece[len(piece)-1] != '\n' && len(partial)+len(piece) < maxLogLine {
				partial = append(partial, piece...)
				continue
			}
			out = appendRecord(out, prefix, partial, piece)
			partial = partial[:0]
			if len(out) >= logReadSize {
				l.writeRecords(out)
				out = out[:0]
			}
		}
		if last {
			out = appendRecord(out, prefix, partial, nil)
		}
		if len(out) > 0 {
			l.writeRecords(out)
			out = out[:0]
		}
		spent()
		if err != nil {
			return
		}
	}
}

// appendRecord appends the record of a line, given in two parts, to out.
func appendRecord(out, prefix, head, tail []byte) []byte {
	out = append(append(append(out, prefix...), head...), tail...)
	if out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}
