package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// budget is what is left of Limits.MaxUnpacked and Limits.MaxFiles, shared
// by everything one Extract writes, and its share of Limits.Space.
type budget struct {
	bytes, maxBytes int64
	files, maxFiles int
	space           *Space // nil: no budget shared with other Extracts
}

func newBudget(l Limits) *budget {
	return &budget{bytes: l.MaxUnpacked, maxBytes: l.MaxUnpacked, files: l.MaxFiles, maxFiles: l.MaxFiles, space: l.Space}
}

// release gives what this Extract took back to the shared space.
func (b *budget) release() {
	if b.space != nil {
		b.space.give(b.maxBytes - b.bytes)
	}
}

func (b *budget) file(name string) error {
	if b.files <= 0 {
		return refuse(ErrTooLarge, name, "package has more than %d files", b.maxFiles)
	}
	b.files--
	return nil
}

// charge takes an entry's size from the budget, for an entry that is not
// written.
func (b *budget) charge(hdr *tar.Header) error {
	return b.take(hdr, false)
}

func (b *budget) take(hdr *tar.Header, written bool) error {
	if hdr.Size > b.bytes {
		return refuse(ErrTooLarge, hdr.Name, "package unpacks to more than %d bytes", b.maxBytes)
	}
	if b.space != nil {
		if err := b.space.take(hdr.Name, hdr.Size, written); err != nil {
			return err
		}
	}
	b.bytes -= hdr.Size
	return nil
}

// copy writes the contents of a regular-file entry to f. The size is charged
// before writing, so a bomb is refused without filling the disk first.
func (b *budget) copy(ctx context.Context, f *os.File, r io.Reader, hdr *tar.Header) error {
	if err := b.take(hdr, true); err != nil {
		return err
	}
	if b.space != nil {
		defer b.space.landed(hdr.Size)
	}
	if _, err := io.Copy(f, &ctxReader{ctx, io.LimitReader(r, hdr.Size)}); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	return nil
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// resolve is how every path inside a tree is opened: beneath its root and
// through no symlink, so that no entry can make extraction leave the tree.
var resolve = &unix.OpenHow{
	Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
}

// tree is a directory being filled from tar entries.
type tree struct {
	ctx      context.Context
	fd       int // O_PATH descriptor of the tree's root
	budget   *budget
	links    bool              // whether symlinks and hard links are allowed
	regular  map[string]bool   // regular files written, the only hard-link targets
	dirModes map[string]uint32 // applied by finish, so that a read-only directory can still be filled
}

// newTree creates the directory name in parent and returns it as a tree.
func newTree(ctx context.Context, parent int, name string, b *budget, links bool) (*tree, error) {
	if err := unix.Mkdirat(parent, name, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	fd, err := unix.Openat2(parent, name, resolve)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return &tree{ctx: ctx, fd: fd, budget: b, links: links,
		regular: map[string]bool{}, dirModes: map[string]uint32{".": 0o755}}, nil
}

func (t *tree) close() {
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
}

// mode is the entry's permission bits without setuid and setgid.
func mode(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o1777 }

// entry writes one tar entry at rel, a path cleaned by cleanName. name is
// the entry's name for errors; linkPrefix is what hard-link targets start
// with in this archive ("rootfs/" in a package, "" in an image layer).
func (t *tree) entry(hdr *tar.Header, name, rel, linkPrefix string, r io.Reader) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return nil // see the package documentation
	case tar.TypeDir, tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives use TypeRegA
	case tar.TypeSymlink, tar.TypeLink:
		if !t.links {
			return refuse(ErrUnsafe, name, "links are not allowed here")
		}
	default:
		return refuse(ErrInvalid, name, "unsupported entry type %q", hdr.Typeflag)
	}
	if rel == "." {
		return nil // the tree's root, which already exists
	}
	if err := t.budget.file(name); err != nil {
		return err
	}
	pfd, err := t.openDir(name, path.Dir(rel), true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	base := path.Base(rel)
	delete(t.regular, rel)
	delete(t.dirModes, rel)

	if hdr.Typeflag == tar.TypeDir {
		err := unix.Mkdirat(pfd, base, 0o700)
		if err == unix.EEXIST {
			var st unix.Stat_t
			if err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err = t.remove(pfd, name, base); err == nil {
					err = unix.Mkdirat(pfd, base, 0o700)
				}
			}
		}
		if err != nil {
			return wrap(name, "create directory", err)
		}
		t.dirModes[rel] = mode(hdr)
		return nil
	}

	// Later entries replace earlier ones, as with tar(1).
	if err := t.remove(pfd, name, base); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if err := checkSymlink(name, rel, hdr.Linkname); err != nil {
			return err
		}
		return wrap(name, "create symlink", unix.Symlinkat(hdr.Linkname, pfd, base))
	case tar.TypeLink:
		return t.link(hdr, name, pfd, base, linkPrefix)
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return wrap(name, "create file", err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if err := t.budget.copy(t.ctx, f, r, hdr); err != nil {
		return err
	}
	// Fchmod is not subject to the umask, unlike the mode given to open.
	if err := unix.Fchmod(fd, mode(hdr)); err != nil {
		return wrap(name, "chmod", err)
	}
	t.regular[rel] = true
	return nil
}

// checkSymlink allows absolute targets, which the chute resolves against
// its own root, and relative ones that stay inside the tree.
func checkSymlink(name, rel, target string) error {
	if target == "" || strings.ContainsRune(target, 0) {
		return refuse(ErrInvalid, name, "bad symlink target %q", target)
	}
	if !path.IsAbs(target) {
		if t := path.Join(path.Dir(rel), target); t == ".." || strings.HasPrefix(t, "../") {
			return refuse(ErrUnsafe, name, "symlink target %q is outside the root filesystem", target)
		}
	}
	return nil
}

// link makes a hard link to a regular file written earlier in this tree.
func (t *tree) link(hdr *tar.Header, name string, pfd int, base, linkPrefix string) error {
	// Some archivers write hard-link targets with a leading slash, meaning
	// the archive's root.
	target, err := cleanName(strings.TrimLeft(hdr.Linkname, "/"))
	if err != nil {
		return refuse(ErrUnsafe, name, "hard link target %q is unsafe", hdr.Linkname)
	}
	rel, ok := strings.CutPrefix(target, linkPrefix)
	if !ok || !t.regular[rel] {
		return refuse(ErrUnsafe, name, "hard link target %q is not a regular file extracted before it", hdr.Linkname)
	}
	ofd, err := t.openDir(name, path.Dir(rel), false)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	// No AT_SYMLINK_FOLLOW: link the name itself, never what it points to.
	return wrap(name, "create hard link", unix.Linkat(ofd, path.Base(rel), pfd, base, 0))
}

// remove deletes whatever is at base, if anything, without following it.
func (t *tree) remove(pfd int, name, base string) error {
	err := unix.Unlinkat(pfd, base, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
		if err == unix.ENOTEMPTY || err == unix.EEXIST {
			return refuse(ErrInvalid, name, "replaces a directory that is not empty")
		}
	}
	if err != nil && err != unix.ENOENT {
		return wrap(name, "replace", err)
	}
	return nil
}

// openDir opens the directory rel of the tree, creating missing ones if
// create is set. Implicit directories get mode 0755.
func (t *tree) openDir(name, rel string, create bool) (int, error) {
	fd, err := unix.Openat2(t.fd, rel, resolve)
	if err != unix.ENOENT || !create {
		return fd, wrap(name, "open parent directory", err)
	}
	fd, err = unix.Openat2(t.fd, ".", resolve)
	if err != nil {
		return -1, wrap(name, "open root", err)
	}
	done := "."
	for _, c := range strings.Split(rel, "/") {
		done = path.Join(done, c)
		next, err := unix.Openat2(fd, c, resolve)
		if err == unix.ENOENT {
			if err = unix.Mkdirat(fd, c, 0o700); err == nil {
				t.dirModes[done] = 0o755
				if err = t.budget.file(name); err == nil {
					next, err = unix.Openat2(fd, c, resolve)
				}
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, wrap(name, "create parent directory", err)
		}
		fd = next
	}
	return fd, nil
}

// finish gives directories their modes, deepest first so that a directory
// made unsearchable does not hide its children.
func (t *tree) finish() error {
	dirs := make([]string, 0, len(t.dirModes))
	for d := range t.dirModes {
		dirs = append(dirs, d)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		fd, err := unix.Openat2(t.fd, d, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: resolve.Resolve,
		})
		if err != nil {
			return wrap(d, "open directory", err)
		}
		err = unix.Fchmod(fd, t.dirModes[d])
		unix.Close(fd)
		if err != nil {
			return wrap(d, "chmod", err)
		}
	}
	return nil
}

// wrap turns a system call's error into an *Error when the archive is to
// blame (a path through a symlink or a file), and adds context otherwise.
func wrap(name, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return refuse(ErrUnsafe, name, "path goes through a symlink")
	case errors.Is(err, unix.ENOTDIR):
		return refuse(ErrInvalid, name, "path goes through a file")
	case errors.Is(err, unix.ENAMETOOLONG):
		return refuse(ErrInvalid, name, "path is too long")
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}
