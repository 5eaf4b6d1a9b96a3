package archive

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Space is the room that unpacking may take on the filesystem of a
// directory, shared by every Extract given it: at most max bytes for all
// the packages being unpacked at once, and never so much that the
// filesystem's free space falls under keepFree of its size. An entry's size
// is taken before it is written, so that a bomb is refused before it fills
// anything.
type Space struct {
	dir string
	max int64

	mu       sync.Mutex
	taken    int64 // by Extracts in progress
	inFlight int64 // taken for files being written: not yet out of the free space
	statfs   func(dir string) (free, size int64, err error)
}

// keepFree is the share of the filesystem unpacking leaves free, for the
// chutes' own data and the daemon's state.
const keepFree = 0.05

// NewSpace returns the budget of unpacking into dir's filesystem: max bytes
// at once in all (1Gi if max is 0).
func NewSpace(dir string, max int64) *Space {
	if max <= 0 {
		max = 1 << 30
	}
	return &Space{dir: dir, max: max, statfs: statfs}
}

// Max is the most all Extracts together may write.
func (s *Space) Max() int64 { return s.max }

func statfs(dir string) (free, size int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

// take reserves n bytes about to be written, or refuses them with
// ErrTooLarge. written says whether they will land on the filesystem (an
// ignored entry is charged but not written).
func (s *Space) take(name string, n int64, written bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken+n > s.max {
		return refuse(ErrTooLarge, name, "packages being unpacked would take more than the gateway's %d bytes for unpacking (paradrop serve --max-unpacked)", s.max)
	}
	if written && n > 0 {
		free, size, err := s.statfs(s.dir)
		if err != nil {
			return err
		}
		room := free - int64(keepFree*float64(size)) - s.inFlight
		if n > room {
			return refuse(ErrTooLarge, name, "%d bytes do not fit in the %d bytes free on the data filesystem (%.0f%% of it is kept free)", n, max(room, 0), 100*keepFree)
		}
		s.inFlight += n
	}
	s.taken += n
	return nil
}

// landed says that n bytes taken for writing are written, and so counted
// in the filesystem's free space.
func (s *Space) landed(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight -= n
}

// give returns n bytes at the end of an Extract: what it wrote is either
// removed or part of a chute, counted in the free space from now on.
func (s *Space) give(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taken -= n
}
