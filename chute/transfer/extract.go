package transfer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

var beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// Extract writes a data or delta entry under the directory dirfd, owned by
// its ids plus base, or removes what a deleted entry names. Nothing is
// written or removed through a symlink nor outside dirfd: the parent is
// opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), the entry
// itself made with O_EXCL or O_NOFOLLOW semantics. A data entry that
// exists already is refused, but for a directory; a delta entry replaces
// a file or symlink.
func (e *Entry) Extract(dirfd int, base uint32) error {
	if !tree(e.Kind) {
		return fmt.Errorf("extract: %s is not a /data entry", e.Kind)
	}
	h := e.Header
	dir, name := path.Split(h.Name)
	pfd, err := openBeneath(dirfd, "./"+dir)
	if err != nil {
		if e.Kind == KindDeleted && errors.Is(err, unix.ENOENT) {
			return nil // its parent went first
		}
		return fmt.Errorf("/data entry %q: open its directory: %w", h.Name, err)
	}
	defer unix.Close(pfd)
	switch {
	case e.Kind == KindDeleted:
		return removeBeneath(pfd, name)
	case e.Kind == KindDelta && h.Typeflag != tar.TypeDir:
		if err := unix.Unlinkat(pfd, name, 0); err != nil && err != unix.ENOENT {
			return fmt.Errorf("/data entry %q: replace: %w", h.Name, err)
		}
	}
	uid, gid := h.Uid+int(base), h.Gid+int(base)
	mode := uint32(h.Mode) & 0o1777
	switch h.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil && err != unix.EEXIST {
			return fmt.Errorf("/data entry %q: %w", h.Name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("/data entry %q: not a directory", h.Name)
		}
		if err := unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("/data entry %q: %w", h.Name, err)
		}
		return unix.Fchmodat(pfd, name, mode, 0)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(h.Linkname, pfd, name); err != nil {
			return fmt.Errorf("/data entry %q: %w", h.Name, err)
		}
		return unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	case tar.TypeReg:
		fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("/data entry %q: %w", h.Name, err)
		}
		f := os.NewFile(uintptr(fd), h.Name)
		defer f.Close()
		if _, err := io.Copy(f, e.Body); err != nil {
			return fmt.Errorf("/data entry %q: %w", h.Name, err)
		}
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
		return f.Chmod(os.FileMode(mode&0o777) | stickyOf(mode))
	}
	return fmt.Errorf("/data entry %q: type %q", h.Name, h.Typeflag)
}

func openBeneath(dirfd int, p string) (int, error) {
	return unix.Openat2(dirfd, p, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: uint64(beneath)})
}

// removeBeneath removes name in the directory pfd, a directory with all
// under it, never through a symlink.
func removeBeneath(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	switch err {
	case nil, unix.ENOENT:
		return nil
	case unix.EISDIR:
	default:
		return fmt.Errorf("remove %q: %w", name, err)
	}
	fd, err := openBeneath(pfd, name)
	if err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeBeneath(fd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}

func stickyOf(mode uint32) os.FileMode {
	if mode&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}
