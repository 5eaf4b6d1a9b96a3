package chute

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// logPoll is how often a followed log is checked for new lines.
const logPoll = 200 * time.Millisecond

// Logs writes the last tail lines of the chute's log to w (all of them if
// tail <= 0), then, with follow, new lines until ctx ends or the chute is
// removed: a chute installed again under its name is another's log. The
// log is the shim's rotating current.log, current.log.1, ...: oldest
// rotation first. actor must be one that may act on the chute.
func (m *Manager) Logs(ctx context.Context, name string, actor Actor, tail int, follow bool, w io.Writer) error {
	e, err := m.acting(name, actor)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	// Whatever was read while e was still the chute is e's: another of
	// the name writes its log only once its own entry has replaced e.
	gone := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.chutes[name] != e
	}
	dir := m.paths.logs(name)
	cur := filepath.Join(dir, "current.log")
	var all [][]byte
	for i := 9; i >= 0; i-- {
		p := cur
		if i > 0 {
			p = fmt.Sprintf("%s.%d", cur, i)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		all = append(all, bytes.SplitAfter(b, []byte("\n"))...)
	}
	if gone() {
		return fmt.Errorf("logs: chute %q: %w", name, ErrNotFound)
	}
	lines := all[:0]
	for _, l := range all {
		if len(l) > 0 {
			lines = append(lines, l)
		}
	}
	if tail > 0 && len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	for _, l := range lines {
		if _, err := w.Write(l); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	flush(w)
	return followFile(ctx, cur, w, gone)
}

// followFile copies what is appended to path until ctx ends or gone says
// the file is no longer the one asked for, reopening it when the shim
// rotates it away.
func followFile(ctx context.Context, path string, w io.Writer, gone func() bool) error {
	var f *os.File
	var off int64
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	if fi, err := os.Stat(path); err == nil {
		off = fi.Size()
	}
	t := time.NewTicker(logPoll)
	defer t.Stop()
	for {
		if f == nil {
			nf, err := os.Open(path)
			if err == nil {
				f = nf
				f.Seek(off, io.SeekStart)
			}
		}
		// After the open: a file opened while the chute was still the
		// one asked for is its own.
		if gone() {
			return nil
		}
		if f != nil {
			n, err := io.Copy(w, bufio.NewReader(f))
			off += n
			if err != nil {
				return err
			}
			if n > 0 {
				flush(w)
			}
			// A rotation renames current.log: the open file is then an old
			// generation, and the new one starts from zero.
			if cur, err := os.Stat(path); err == nil {
				if old, err := f.Stat(); err == nil && !os.SameFile(cur, old) {
					io.Copy(w, f)
					f.Close()
					f, off = nil, 0
					continue
				}
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

func flush(w io.Writer) {
	if f, ok := w.(interface{ Flush() }); ok {
		f.Flush()
	}
}
