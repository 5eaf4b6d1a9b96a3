package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Stats reads a handful of files per group (statFiles) and parses them
// (parseStats), on v1 and v2 alike: a group's Stats once, or a
// StatsReader's again and again from files it keeps open.

// readStatFiles reads each file; a missing file reads as nil where the
// backend allows it (optional).
func readStatFiles(paths []string, optional bool) ([][]byte, error) {
	contents := make([][]byte, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		contents[i] = b
	}
	return contents, nil
}

// StatsReader reads one group's Stats again and again from files it
// keeps open, one pread each, where Group.Stats opens, reads and closes
// every file each time: the usage sampler reads every chute's every
// second. It follows the group's path: when the group is removed and made
// again (a restarted chute), its old files fail and it opens the new
// ones. Not safe for concurrent use; Close releases the files.
type StatsReader struct {
	g        *Group
	paths    []string
	optional bool
	fds      []int // -1: not open (or, optional, absent)
	ends     []int // where each file's contents end in buf; -1 absent
	contents [][]byte
	buf      []byte
}

// StatsReader returns a reader of the group's Stats; it opens the files
// at its first Stats.
func (g *Group) StatsReader() *StatsReader {
	paths, optional := g.b.statFiles()
	r := &StatsReader{g: g, paths: paths, optional: optional, fds: make([]int, len(paths)),
		ends: make([]int, len(paths)), contents: make([][]byte, len(paths)), buf: make([]byte, 0, 512)}
	for i := range r.fds {
		r.fds[i] = -1
	}
	return r
}

// Stats returns the group's current usage and limits, as Group.Stats.
func (r *StatsReader) Stats() (Stats, error) {
	s, err := r.read()
	if err != nil {
		// Files of a removed group fail (ENODEV): open them again, which
		// finds the group made again under the same path, if any.
		r.Close()
		s, err = r.read()
	}
	if err != nil {
		return Stats{}, fmt.Errorf("stats of cgroup %q: %w", r.g.path, err)
	}
	return s, nil
}

func (r *StatsReader) read() (Stats, error) {
	r.buf = r.buf[:0]
	ends := r.ends
	for i, p := range r.paths {
		if r.fds[i] < 0 {
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if r.optional && errors.Is(err, unix.ENOENT) {
				ends[i] = -1
				continue
			}
			if err != nil {
				return Stats{}, &fs.PathError{Op: "open", Path: p, Err: err}
			}
			r.fds[i] = fd
		}
		start := len(r.buf)
		for {
			if len(r.buf) == cap(r.buf) {
				r.buf = append(r.buf, 0)[:len(r.buf)]
			}
			n, err := unix.Pread(r.fds[i], r.buf[len(r.buf):cap(r.buf)], int64(len(r.buf)-start))
			if err != nil {
				return Stats{}, &fs.PathError{Op: "read", Path: p, Err: err}
			}
			if n == 0 {
				break
			}
			r.buf = r.buf[:len(r.buf)+n]
		}
		ends[i] = len(r.buf)
	}
	start := 0
	for i, end := range ends {
		if end < 0 {
			r.contents[i] = nil
			continue
		}
		r.contents[i] = r.buf[start:end]
		start = end
	}
	return r.g.b.parseStats(r.contents)
}

// Close releases the reader's files; a later Stats opens them again.
func (r *StatsReader) Close() error {
	var errs []error
	for i, fd := range r.fds {
		if fd >= 0 {
			errs = append(errs, unix.Close(fd))
			r.fds[i] = -1
		}
	}
	return errors.Join(errs...)
}

// parseUint reads a file holding one number, or "max" (MaxUint64).
func parseUint(b []byte) (uint64, error) {
	v := bytes.TrimSpace(b)
	if string(v) == "max" {
		return math.MaxUint64, nil
	}
	return strconv.ParseUint(string(v), 10, 64)
}

// parseKey finds "key value" in a flat keyed file (cpu.stat,
// memory.events, memory.oom_control); ok is false without the key.
func parseKey(b []byte, key string) (v uint64, ok bool, err error) {
	for line := range bytes.Lines(b) {
		k, rest, found := bytes.Cut(bytes.TrimSpace(line), []byte{' '})
		if found && string(k) == key {
			v, err = strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
			return v, true, err
		}
	}
	return 0, false, nil
}
