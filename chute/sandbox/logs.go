package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	failed   bool // a write error was reported; later ones are not, to keep shim.log small
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

// writeRecord writes one record, cut to maxBytes so that even a single huge
// record cannot break the bound. Failures (a full disk) drop the record:
// a chute must never block on its output. Only the first is reported.
func (l *rotatingLog) writeRecord(rec []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.write(rec); err != nil && !l.failed {
		l.failed = true
		fmt.Fprintf(os.Stderr, "shim: write log (further errors not reported): %v\n", err)
	}
}

func (l *rotatingLog) write(rec []byte) error {
	if int64(len(rec)) > l.maxBytes {
		rec = append(rec[:l.maxBytes-1:l.maxBytes-1], '\n')
	}
	if l.size > 0 && l.size+int64(len(rec)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(rec)
	l.size += int64(n)
	return err
}

func (l *rotatingLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// copyLines reads r until EOF and writes each line to l as
// "<UTC time> <stream> <line>".
func copyLines(l *rotatingLog, stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLogLine)
	var rec []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			rec = rec[:0]
			rec = time.Now().UTC().AppendFormat(rec, logTimeFormat)
			rec = append(rec, ' ')
			rec = append(rec, stream...)
			rec = append(rec, ' ')
			rec = append(rec, line...)
			if rec[len(rec)-1] != '\n' {
				rec = append(rec, '\n')
			}
			l.writeRecord(rec)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
