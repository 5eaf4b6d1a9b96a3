package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Writer writes a stream.
type Writer struct {
	tw  *tar.Writer
	sum digests
}

// NewWriter starts a stream on w.
func NewWriter(w io.Writer) *Writer { return &Writer{tw: tar.NewWriter(w)} }

// Blob writes a part of one entry, of size bytes read from r.
func (w *Writer) Blob(kind string, r io.Reader, size int64) error {
	hdr := &tar.Header{Name: kind, Typeflag: tar.TypeReg, Mode: 0o600, Size: size}
	s := w.sum.of(kind)
	s.header(hdr)
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("send %s: %w", kind, err)
	}
	if _, err := io.Copy(hashWriter{w.tw, s}, io.LimitReader(r, size)); err != nil {
		return fmt.Errorf("send %s: %w", kind, err)
	}
	return nil
}

// Handover writes the handover part.
func (w *Writer) Handover(h Handover) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return w.Blob(KindHandover, bytes.NewReader(b), int64(len(b)))
}

// Held writes the package-held part, in place of the package.
func (w *Writer) Held(h PackageHeld) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return w.Blob(KindHeld, bytes.NewReader(b), int64(len(b)))
}

// Wait writes a wait entry, which keeps the stream moving while the
// writer waits.
func (w *Writer) Wait() error {
	if err := w.tw.WriteHeader(&tar.Header{Name: waitName, Typeflag: tar.TypeReg, Mode: 0o600, Size: waitSize}); err != nil {
		return err
	}
	_, err := io.Copy(w.tw, io.LimitReader(zeros{}, waitSize))
	return err
}

// Snapshot is what Data sent of each path, to tell what changed since.
type Snapshot map[string]stamp

// stamp is what tells a file changed: a write changes its ctime, a
// replacement its inode. A stamp is not trusted for a file changed too
// recently for the kernel's coarse clock to tell a later write.
type stamp struct {
	ino        uint64
	mode       uint32
	size       int64
	ctim, mtim unix.Timespec
	untrusted  bool
}

// recent is within the kernel's coarse clock: a file changed this close to
// its read may change again with the same ctime.
const recent = 100 * time.Millisecond

// Sent is what a data or delta pass sent.
type Sent struct {
	Entries, Deleted int
	Bytes            int64
}

// Data writes the tree under root, a chute's /data on the host, as the
// data part: directories, regular files and symlinks, with their owners
// made relative to base, the host id of the chute's root. Files owned
// outside the chute's range (the filesystem's lost+found) are left out.
// With live, the chute still runs: a file that changes while it is read
// is sent as far as it was read (cut or padded to the size it had), and
// left out of the snapshot for Delta to send again once it is stopped.
func (w *Writer) Data(ctx context.Context, root string, base uint32, live bool) (Snapshot, Sent, error) {
	snap := Snapshot{}
	var sent Sent
	err := walk(ctx, root, base, func(rel string, hdr *tar.Header, st stamp) error {
		n, changed, err := w.entry(KindData, root, rel, hdr, st.ino, live)
		if err != nil {
			return err
		}
		sent.Entries++
		sent.Bytes += n
		if !changed {
			snap[rel] = st
		}
		return nil
	})
	if err != nil {
		return nil, sent, fmt.Errorf("send /data: %w", err)
	}
	return snap, sent, nil
}

// Delta writes what changed in root since Data or an earlier Delta took
// prev: the paths gone or changed in kind as deleted entries, then what is
// new or changed as delta entries; and returns the snapshot to send what
// changes after from. With live, the chute still runs, as for Data: a
// round to send most of what changed before the chute is stopped. The
// last round, once it is, sends the rest.
func (w *Writer) Delta(ctx context.Context, root string, base uint32, prev Snapshot, live bool) (Snapshot, Sent, error) {
	type change struct {
		rel string
		hdr *tar.Header
		st  stamp
	}
	var changes []change
	now := map[string]uint32{}
	snap := Snapshot{}
	err := walk(ctx, root, base, func(rel string, hdr *tar.Header, st stamp) error {
		now[rel] = st.mode & unix.S_IFMT
		if old, ok := prev[rel]; !ok || old != st || old.untrusted || st.untrusted {
			changes = append(changes, change{rel, hdr, st})
		} else {
			snap[rel] = st
		}
		return nil
	})
	if err != nil {
		return nil, Sent{}, fmt.Errorf("send what changed in /data: %w", err)
	}
	var gone []string
	for rel, st := range prev {
		if kind, ok := now[rel]; !ok || kind != st.mode&unix.S_IFMT {
			gone = append(gone, rel)
		}
	}
	sort.Strings(gone)
	var sent Sent
	s := w.sum.of(KindDeleted)
	for _, rel := range gone {
		hdr := &tar.Header{Name: KindDeleted + "/" + rel, Typeflag: tar.TypeReg, Mode: 0o600}
		s.header(hdr)
		if err := w.tw.WriteHeader(hdr); err != nil {
			return nil, sent, err
		}
		sent.Deleted++
	}
	for _, c := range changes {
		n, changed, err := w.entry(KindDelta, root, c.rel, c.hdr, c.st.ino, live)
		if err != nil {
			return nil, sent, fmt.Errorf("send what changed in /data: %w", err)
		}
		sent.Entries++
		sent.Bytes += n
		if !changed {
			snap[c.rel] = c.st
		}
	}
	return snap, sent, nil
}

// walk calls fn with the header (its name relative) and stamp of every
// entry under root that belongs to the chute, parents first. A running
// chute may swap any entry or directory for a symlink at any time, and the
// daemon walks as host root: each directory is listed from an fd opened
// beneath its parent's through no symlink, each entry stat'ed (and a
// symlink read) in the directory the walk holds, so that what it sends is
// the object it stat'ed, under root. An entry gone or changed in kind
// between its listing and its stat is left to the next round.
func walk(ctx context.Context, root string, base uint32, fn func(rel string, hdr *tar.Header, st stamp) error) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	return walkDir(ctx, fd, "", 0, base, fn)
}

// beforeList, set by tests, is called with a directory's path once the
// walk holds it, before it lists it: where a chute may swap it.
var beforeList func(rel string)

// maxPath is the longest path under /data a reader takes.
const maxPath = 4096

// maxDepth bounds the directories the walk holds open at once, one a
// level: a chute nesting its /data deeper (which it may do as the walk
// descends) would make the daemon run out of descriptors.
const maxDepth = 256

// walkDir walks the directory dfd, rel under root and depth levels below
// it, and closes dfd.
func walkDir(ctx context.Context, dfd int, rel string, depth int, base uint32, fn func(rel string, hdr *tar.Header, st stamp) error) error {
	d := os.NewFile(uintptr(dfd), rel)
	defer d.Close()
	if beforeList != nil {
		beforeList(rel)
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list /%s: %w", rel, err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Join(rel, name)
		if len(p) > maxPath {
			return fmt.Errorf("/data has a path longer than %d bytes", maxPath)
		}
		hdr, sub, st, err := lookAt(dfd, name, p, base)
		if err != nil {
			return err
		}
		if hdr == nil {
			continue
		}
		s := stamp{ino: uint64(st.Ino), mode: st.Mode, size: st.Size, ctim: st.Ctim, mtim: st.Mtim}
		s.untrusted = time.Since(time.Unix(st.Ctim.Unix())) < recent
		if err := fn(p, hdr, s); err != nil {
			if sub >= 0 {
				unix.Close(sub)
			}
			return err
		}
		if sub >= 0 {
			if depth+1 > maxDepth {
				unix.Close(sub)
				return fmt.Errorf("/data nests directories deeper than %d levels (%.64s...)", maxDepth, p)
			}
			if err := walkDir(ctx, sub, p, depth+1, base, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// lookAt stats the entry name of the directory dfd, p under root, and
// returns its header, with a directory the fd it is to be listed from (the
// object stat'ed), or no header for an entry not sent: not the chute's,
// neither a directory, a regular file nor a symlink, or gone or changed
// in kind since listed.
func lookAt(dfd int, name, p string, base uint32) (*tar.Header, int, unix.Stat_t, error) {
	var st unix.Stat_t
	skip := func(err error) (*tar.Header, int, unix.Stat_t, error) {
		if err == nil || isChanged(err) {
			return nil, -1, st, nil
		}
		return nil, -1, st, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return skip(err)
	}
	hdr := &tar.Header{Name: p}
	sub := -1
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		fd, err := openIn(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK)
		if err != nil {
			return skip(err)
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return skip(err)
		}
		hdr.Typeflag, sub = tar.TypeDir, fd
	case unix.S_IFREG:
		// Opened when sent, beneath root, and checked to be this inode.
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFLNK:
		fd, err := openIn(dfd, name, unix.O_PATH)
		if err != nil {
			return skip(err)
		}
		err = unix.Fstat(fd, &st)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			hdr.Linkname, err = readlinkFd(fd)
		}
		unix.Close(fd)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return skip(err)
		}
		hdr.Typeflag = tar.TypeSymlink
	default:
		return skip(nil) // sockets, FIFOs: nothing to carry
	}
	if st.Uid < base || st.Uid-base >= idRange || st.Gid < base || st.Gid-base >= idRange {
		if sub >= 0 {
			unix.Close(sub)
		}
		return skip(nil)
	}
	hdr.Mode, hdr.Uid, hdr.Gid = int64(st.Mode&0o1777), int(st.Uid-base), int(st.Gid-base)
	hdr.ModTime = time.Unix(st.Mtim.Unix())
	return hdr, sub, st, nil
}

// openIn opens the entry name of the directory dfd, through no symlink
// nor mount point, and not blocking.
func openIn(dfd int, name string, flags int) (int, error) {
	return unix.Openat2(dfd, name, &unix.OpenHow{Flags: uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: uint64(beneath | unix.RESOLVE_NO_XDEV)})
}

// readlinkFd reads the symlink fd (O_PATH|O_NOFOLLOW) is.
func readlinkFd(fd int) (string, error) {
	buf := make([]byte, maxPath+1)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", err
	}
	if n > maxPath {
		return "", fmt.Errorf("symlink target longer than %d bytes", maxPath)
	}
	return string(buf[:n]), nil
}

// isChanged tells an error of a lookup beneath a directory the walk holds
// that says the entry is gone, or no longer of the kind it was.
func isChanged(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV)
}

// entry writes one entry of kind, the file at root/rel with header hdr
// (its name relative), a regular file the inode ino, and returns the content bytes written and whether
// the file changed size while read (only when live: else an error).
func (w *Writer) entry(kind, root, rel string, hdr *tar.Header, ino uint64, live bool) (int64, bool, error) {
	h := *hdr
	h.Name = kind + "/" + rel
	var f *os.File
	if h.Typeflag == tar.TypeReg {
		var err error
		if f, err = openSent(root, filepath.FromSlash(rel), ino); err != nil {
			if live && errors.Is(err, errChanged) {
				// Gone or no regular file since the walk saw it: sent
				// empty, and by Delta deleted or sent as what it is.
				f = nil
			} else {
				return 0, false, err
			}
		}
		if f != nil {
			defer f.Close()
		}
	}
	s := w.sum.of(kind)
	s.header(&h)
	if err := w.tw.WriteHeader(&h); err != nil {
		return 0, false, err
	}
	if h.Typeflag != tar.TypeReg {
		return 0, false, nil
	}
	var n int64
	var err error
	if f != nil {
		n, err = io.Copy(hashWriter{w.tw, s}, io.LimitReader(f, h.Size))
		if err != nil {
			return n, false, err
		}
	}
	if n == h.Size {
		return n, false, nil
	}
	if !live {
		return n, false, fmt.Errorf("%s changed size while sent, the chute stopped", rel)
	}
	m, err := io.Copy(hashWriter{w.tw, s}, io.LimitReader(zeros{}, h.Size-n))
	return n + m, true, err
}

// errChanged: what the walk saw as a regular file under root is gone, or
// is no longer that file, or no regular file under root any more.
var errChanged = errors.New("changed since the walk")

// openSent opens the regular file rel under root to send it, through no
// symlink and without blocking: a running chute may swap a file the walk
// saw, or a directory above it, for a symlink out of /data, which the
// daemon, as host root, would read and send; or the file for a FIFO,
// whose open would wait for a writer that never comes. What it opens is
// the inode ino the walk stat'ed, or it counts as changed.
func openSent(root, rel string, ino uint64) (*os.File, error) {
	dfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dfd)
	fd, err := openIn(dfd, rel, unix.O_RDONLY|unix.O_NONBLOCK)
	switch {
	case isChanged(err):
		return nil, fmt.Errorf("%s: %w (%v)", rel, errChanged, err)
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: filepath.Join(root, rel), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Ino) != ino {
		unix.Close(fd)
		if err != nil {
			return nil, &os.PathError{Op: "stat", Path: filepath.Join(root, rel), Err: err}
		}
		return nil, fmt.Errorf("%s: %w (not the regular file the walk saw)", rel, errChanged)
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Close writes the manifest and ends the stream; it does not close the
// underlying writer.
func (w *Writer) Close(chute, version string) error {
	b, err := json.Marshal(w.sum.manifest(chute, version))
	if err != nil {
		return err
	}
	if err := w.tw.WriteHeader(&tar.Header{Name: manifestName, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(b))}); err != nil {
		return err
	}
	if _, err := w.tw.Write(b); err != nil {
		return err
	}
	return w.tw.Close()
}

// idRange is the ids of one chute's user namespace.
const idRange = 1 << 16
