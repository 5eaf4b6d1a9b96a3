// Package archive unpacks an uploaded chute package into a staging
// directory without trusting anything in it.
//
// A package is a tar archive, optionally gzip-compressed (recognised by its
// magic number), holding chute.yaml at its root and either a rootfs/
// directory tree or image.tar, an OCI image layout or `docker save` archive
// that is flattened into the root filesystem. Other top-level entries are
// ignored. Extract writes the root filesystem to dest/rootfs and returns the
// bytes of chute.yaml for the caller to parse.
//
// What is refused, and how:
//
//   - Entry names that are absolute, contain "..", or are too long: ErrUnsafe.
//   - Entries that would be written through a symbolic link or outside the
//     tree: ErrUnsafe. Extraction never follows a symlink: every path is
//     resolved with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS).
//   - Symlinks are kept as they are when their target, read with the root
//     filesystem as /, stays inside it: any absolute target (/bin/busybox is
//     normal, and is resolved against the chute's root at run time) and any
//     relative target that does not climb above the root. Others: ErrUnsafe.
//   - Hard links must name a regular file extracted earlier in the same
//     tree: ErrUnsafe otherwise.
//   - Device nodes and FIFOs are skipped, since the runtime provides the
//     chute's /dev; other unknown entry types are ErrInvalid.
//   - Setuid and setgid bits are dropped; the other permission bits are
//     kept. Owners in the archive are ignored: files belong to the user
//     running Extract (root), and [Shift] later moves them into the chute's
//     user-namespace range.
//   - More than Limits.MaxUpload bytes read, Limits.MaxUnpacked bytes written
//     (ignored entries count as written) or Limits.MaxFiles entries written:
//     ErrTooLarge. So is an entry that does not fit in Limits.Space, the
//     budget shared with other Extracts and bound by the free space.
//   - No chute.yaml: ErrNoManifest. Two of them, both or neither of rootfs/
//     and image.tar, or a corrupt archive or image: ErrInvalid.
//
// On error dest may hold a partial tree, all of it inside dest and removable
// by the caller (directories are only given their final modes at the end).
package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors that Extract wraps in an *Error, to be tested with errors.Is. An
// API maps ErrTooLarge to 413 and the others to 400; any other error is the
// gateway's own (500).
var (
	ErrUnsafe     = errors.New("unsafe entry")
	ErrTooLarge   = errors.New("package too large")
	ErrNoManifest = errors.New("no chute.yaml")
	ErrInvalid    = errors.New("invalid package")
)

// Error is a refusal of the package, about one entry if Path is set.
type Error struct {
	Path   string // name of the entry in the package, "" for the whole package
	Reason string
	Err    error // ErrUnsafe, ErrTooLarge, ErrNoManifest or ErrInvalid
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "chute package: " + e.Reason
	}
	return fmt.Sprintf("chute package: %s: %s", e.Path, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

func refuse(kind error, name, format string, args ...any) *Error {
	return &Error{Path: name, Reason: fmt.Sprintf(format, args...), Err: kind}
}

// Limits bound what a package may cost. Zero fields take the defaults:
// 256Mi uploaded, 1Gi unpacked (Space's Max if there is a Space), 100000
// files.
type Limits struct {
	MaxUpload   int64  // bytes read from the upload, compressed
	MaxUnpacked int64  // bytes written to dest, including a temporary copy of image.tar
	MaxFiles    int    // entries written to dest
	Space       *Space // shared with concurrent Extracts; nil: none
}

const maxManifest = 1 << 20 // chute.yaml is held in memory

func (l Limits) withDefaults() Limits {
	if l.MaxUpload <= 0 {
		l.MaxUpload = 256 << 20
	}
	if l.MaxUnpacked <= 0 && l.Space != nil {
		l.MaxUnpacked = l.Space.Max()
	}
	if l.MaxUnpacked <= 0 {
		l.MaxUnpacked = 1 << 30
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 100000
	}
	return l
}

// Names inside dest. The image is staged inside dest so that nothing is
// written elsewhere and the caller's cleanup of dest removes it.
const (
	rootfsDir   = "rootfs"
	imageTar    = ".image.tar"
	imageLayout = ".image"
)

// Extract reads a chute package from r into dest, an existing empty
// directory, and returns the contents of chute.yaml. See the package
// documentation for what it refuses.
func Extract(ctx context.Context, r io.Reader, dest string, lim Limits) (manifestYAML []byte, err error) {
	lim = lim.withDefaults()
	destFD, err := unix.Open(dest, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dest, err)
	}
	defer unix.Close(destFD)
	defer func() {
		// The staged image is never part of the result.
		os.Remove(filepath.Join(dest, imageTar))
		os.RemoveAll(filepath.Join(dest, imageLayout))
	}()

	upload := &countingReader{r: r, max: lim.MaxUpload}
	br := bufio.NewReader(upload)
	var src io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, readError(ctx, upload, "", err)
		}
		defer gz.Close()
		src = gz
	}

	p := &pkg{ctx: ctx, dest: dest, destFD: destFD, budget: newBudget(lim)}
	defer p.budget.release()
	defer p.close()
	if err := p.read(tar.NewReader(src), upload); err != nil {
		return nil, err
	}
	switch {
	case p.manifest == nil:
		return nil, refuse(ErrNoManifest, "", "chute.yaml is missing at the top of the package")
	case p.rootfs != nil && p.image:
		return nil, refuse(ErrInvalid, "", "package has both rootfs/ and image.tar")
	case p.image:
		if err := p.flatten(); err != nil {
			return nil, err
		}
	case p.rootfs == nil:
		return nil, refuse(ErrInvalid, "", "package has neither rootfs/ nor image.tar")
	}
	if err := p.rootfs.finish(); err != nil {
		return nil, err
	}
	return p.manifest, nil
}

// pkg is the state of one Extract.
type pkg struct {
	ctx      context.Context
	dest     string
	destFD   int
	budget   *budget
	manifest []byte
	rootfs   *tree // nil until the first rootfs/ entry
	image    bool
}

func (p *pkg) close() {
	if p.rootfs != nil {
		p.rootfs.close()
	}
}

// read walks the package's top-level entries.
func (p *pkg) read(tr *tar.Reader, upload *countingReader) error {
	for {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return readError(p.ctx, upload, "", err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		src := &trackedReader{r: tr}
		if err := p.entry(hdr, name, src); err != nil {
			if src.err != nil {
				return readError(p.ctx, upload, hdr.Name, src.err)
			}
			return err
		}
	}
}

func (p *pkg) entry(hdr *tar.Header, name string, r io.Reader) error {
	top, rest, _ := strings.Cut(name, "/")
	switch {
	case name == "." || hdr.Typeflag == tar.TypeXGlobalHeader:
		return nil
	case name == "chute.yaml":
		if p.manifest != nil {
			return refuse(ErrInvalid, hdr.Name, "second chute.yaml")
		}
		if !isRegular(hdr) {
			return refuse(ErrInvalid, hdr.Name, "chute.yaml is not a regular file")
		}
		if hdr.Size > maxManifest {
			return refuse(ErrTooLarge, hdr.Name, "chute.yaml is larger than %d bytes", maxManifest)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		p.manifest = data
		return nil
	case name == "image.tar":
		if p.image {
			return refuse(ErrInvalid, hdr.Name, "second image.tar")
		}
		if !isRegular(hdr) {
			return refuse(ErrInvalid, hdr.Name, "image.tar is not a regular file")
		}
		p.image = true
		return p.saveImage(hdr, r)
	case top == rootfsDir:
		if p.rootfs == nil {
			t, err := newTree(p.ctx, p.destFD, rootfsDir, p.budget, true)
			if err != nil {
				return err
			}
			p.rootfs = t
		}
		if rest == "" {
			if hdr.Typeflag != tar.TypeDir {
				return refuse(ErrInvalid, hdr.Name, "rootfs is not a directory")
			}
			return nil
		}
		return p.rootfs.entry(hdr, hdr.Name, rest, rootfsDir+"/", r)
	}
	// Not part of a chute package: ignored, but its size is charged so that
	// a gzip bomb cannot hide in it.
	return p.budget.charge(hdr)
}

// saveImage stages image.tar in dest, since go-containerregistry reads it
// more than once.
func (p *pkg) saveImage(hdr *tar.Header, r io.Reader) error {
	fd, err := unix.Openat(p.destFD, imageTar, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", imageTar, err)
	}
	f := os.NewFile(uintptr(fd), imageTar)
	defer f.Close()
	return p.budget.copy(p.ctx, f, r, hdr)
}

// cleanName turns an entry name into a relative slash path, refusing
// anything that could point outside the tree it is extracted into.
func cleanName(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", refuse(ErrUnsafe, name, "name contains a NUL byte")
	}
	if strings.HasPrefix(name, "/") {
		return "", refuse(ErrUnsafe, name, "absolute path")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", refuse(ErrUnsafe, name, "path contains ..")
		}
		if len(c) > 255 {
			return "", refuse(ErrInvalid, name, "name component longer than 255 bytes")
		}
	}
	if len(name) > 4000 {
		return "", refuse(ErrInvalid, name, "path longer than 4000 bytes")
	}
	return path.Clean(name), nil
}

func isRegular(hdr *tar.Header) bool {
	return hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA //nolint:staticcheck // old archives use TypeRegA
}

// readError classifies an error from reading the upload: too large, a
// failure to receive it (returned wrapped, for the caller to tell a limit
// of its own or a stalled client), the context's, or a corrupt archive.
func readError(ctx context.Context, upload *countingReader, name string, err error) error {
	switch {
	case upload.over:
		return refuse(ErrTooLarge, "", "upload is larger than %d bytes", upload.max)
	case upload.err != nil:
		return fmt.Errorf("read upload: %w", upload.err)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return &Error{Path: name, Reason: "corrupt archive: " + err.Error(), Err: ErrInvalid}
}

// countingReader fails once more than max bytes have been read, and
// remembers the error of the upload itself.
type countingReader struct {
	r    io.Reader
	n    int64
	max  int64
	over bool
	err  error // other than io.EOF
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		c.over = true
		return 0, ErrTooLarge
	}
	// Read at most one byte past max, enough to tell that it is exceeded.
	if rem := c.max - c.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// trackedReader remembers a read error, to tell a corrupt archive from a
// failure to write.
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}
