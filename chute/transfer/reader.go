package transfer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Limits bound what a stream may make its reader take in.
type Limits struct {
	Package int64 // bytes of the package
	Data    int64 // bytes of /data's file contents
	Files   int   // entries of /data
}

// Entry is one entry of a part, its body to read before the next.
type Entry struct {
	Kind   string
	Header *tar.Header // Name without the data/ prefix for a data entry
	Body   io.Reader
}

// Reader reads a stream, refusing it as soon as it breaks a limit or the
// order of parts, and at its end unless it matches its manifest.
type Reader struct {
	tr       *tar.Reader
	lim      Limits
	sum      digests
	rank     int // of the last part seen
	body     *hashReader
	manifest *Manifest
	waited   int64 // bytes of wait entries
}

// NewReader reads a stream from r within lim.
func NewReader(r io.Reader, lim Limits) *Reader { return &Reader{tr: tar.NewReader(r), lim: lim} }

// nextHeader is the next entry's header but for wait entries, which it
// skips within their limit.
func (r *Reader) nextHeader() (*tar.Header, error) {
	for {
		hdr, err := r.tr.Next()
		if err != nil || hdr.Name != waitName {
			return hdr, err
		}
		r.waited += waitSize
		switch {
		case !r.hasPackage():
			return nil, invalid("wait before the package")
		case hdr.Typeflag != tar.TypeReg || hdr.Size != waitSize:
			return nil, invalid("wait entry of %d bytes", hdr.Size)
		case r.waited > maxWait:
			return nil, invalid("more than %d bytes of wait entries", maxWait)
		}
		if _, err := io.Copy(io.Discard, r.tr); err != nil {
			return nil, err
		}
	}
}

// rank is the order parts must come in; a blob comes once. Deleted and
// delta entries come in rounds, one after the other.
var rank = map[string]int{KindSignature: 1, KindPackage: 2, KindHeld: 2, KindData: 3, KindDeleted: 4, KindDelta: 4, KindHandover: 5, manifestName: 6}

// tree tells the kinds whose entries are paths under /data, many a part.
func tree(kind string) bool { return kind == KindData || kind == KindDeleted || kind == KindDelta }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Next returns the next entry. After the manifest, checked against what
// came, it returns io.EOF; any stream that ends otherwise is an error.
func (r *Reader) Next() (*Entry, error) {
	if r.body != nil {
		// What the caller left unread still counts.
		if _, err := io.Copy(io.Discard, r.body); err != nil {
			return nil, err
		}
		r.body = nil
	}
	if r.manifest != nil {
		return nil, io.EOF
	}
	hdr, err := r.nextHeader()
	switch {
	case errors.Is(err, io.EOF):
		return nil, invalid("stream ends without its manifest")
	case errors.Is(err, tar.ErrHeader):
		return nil, invalid("%v", err)
	case err != nil:
		return nil, err
	}
	kind, ok := kindOf(hdr.Name)
	if !ok {
		return nil, invalid("unknown part %q", hdr.Name)
	}
	rk := rank[kind]
	if rk < r.rank || rk == r.rank && !tree(kind) {
		return nil, invalid("part %q out of order", hdr.Name)
	}
	r.rank = rk
	if tree(kind) && !r.hasPackage() {
		return nil, invalid("/data before the package")
	}
	if kind == manifestName {
		if err := r.checkManifest(hdr); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	s := r.sum.of(kind)
	s.header(hdr)
	if err := r.check(kind, hdr, s); err != nil {
		return nil, err
	}
	r.body = &hashReader{r: io.LimitReader(r.tr, hdr.Size), s: s}
	e := &Entry{Kind: kind, Header: hdr, Body: r.body}
	if tree(kind) {
		h := *hdr
		h.Name = strings.TrimPrefix(hdr.Name, kind+"/")
		e.Header = &h
	}
	return e, nil
}

// check refuses an entry over its part's limits, or a data entry the
// gateway would not write as it is.
func (r *Reader) check(kind string, hdr *tar.Header, s *sum) error {
	switch kind {
	case KindSignature, KindHandover, KindHeld:
		if hdr.Size > maxSmall {
			return invalid("%s part of %d bytes, more than %d", kind, hdr.Size, maxSmall)
		}
	case KindPackage:
		if hdr.Size > r.lim.Package {
			return invalid("package of %d bytes, more than %d", hdr.Size, r.lim.Package)
		}
	case KindData, KindDelta, KindDeleted:
		if s.entries > r.lim.Files {
			return invalid("/data has more than %d entries", r.lim.Files)
		}
		if hdr.Size < 0 || hdr.Size > r.lim.Data-s.bytes {
			return invalid("/data is larger than %d bytes", r.lim.Data)
		}
		if kind == KindDeleted && (hdr.Typeflag != tar.TypeReg || hdr.Size != 0) {
			return invalid("deleted entry %q is not empty", hdr.Name)
		}
		return checkData(kind, hdr)
	}
	if hdr.Typeflag != tar.TypeReg {
		return invalid("part %q is not a file", kind)
	}
	return nil
}

// checkData refuses a data entry that is not a clean relative path, of a
// kind /data does not carry, owned outside the chute's ids or with a
// setuid or setgid bit.
func checkData(kind string, hdr *tar.Header) error {
	rel := strings.TrimPrefix(hdr.Name, kind+"/")
	if path.Clean(rel) != rel || rel == "." || strings.HasPrefix(rel, "/") || rel == ".." || strings.HasPrefix(rel, "../") || len(rel) > 4096 {
		return invalid("/data entry %q is not a clean relative path", rel)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
	default:
		return invalid("/data entry %q: type %q is not carried", rel, hdr.Typeflag)
	}
	if hdr.Typeflag != tar.TypeReg && hdr.Size != 0 {
		return invalid("/data entry %q: size %d", rel, hdr.Size)
	}
	if hdr.Uid < 0 || hdr.Uid >= idRange || hdr.Gid < 0 || hdr.Gid >= idRange {
		return invalid("/data entry %q: owner %d:%d outside the chute's ids", rel, hdr.Uid, hdr.Gid)
	}
	if hdr.Mode&^0o1777 != 0 {
		return invalid("/data entry %q: mode %o", rel, hdr.Mode)
	}
	return nil
}

func (r *Reader) checkManifest(hdr *tar.Header) error {
	var m Manifest
	if hdr.Typeflag != tar.TypeReg || hdr.Size > maxSmall {
		return invalid("manifest is not a file of at most %d bytes", maxSmall)
	}
	if err := decodeSmall(r.tr, &m); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if _, err := r.tr.Next(); !errors.Is(err, io.EOF) {
		return invalid("entries after the manifest")
	}
	if m.Format != Format {
		return invalid("format %d, this gateway reads %d", m.Format, Format)
	}
	got := r.sum.manifest(m.Chute, m.Version)
	if len(got.Parts) != len(m.Parts) {
		return invalid("manifest lists %d parts, %d came", len(m.Parts), len(got.Parts))
	}
	for i, p := range m.Parts {
		if p != got.Parts[i] {
			return invalid("part %s does not match the manifest (%d entries, %d bytes, sha256 %s; manifest: %d, %d, %s)",
				got.Parts[i].Kind, got.Parts[i].Entries, got.Parts[i].Bytes, got.Parts[i].SHA256, p.Entries, p.Bytes, p.SHA256)
		}
	}
	r.manifest = &m
	return nil
}

// hasPackage is whether the package, or the one held, came.
func (r *Reader) hasPackage() bool {
	return r.sum.parts[KindPackage] != nil || r.sum.parts[KindHeld] != nil
}

// LimitData sets the limits of /data, once the package that says them has
// been read.
func (r *Reader) LimitData(bytes int64, files int) { r.lim.Data, r.lim.Files = bytes, files }

// Manifest is the stream's manifest, once Next has returned io.EOF.
func (r *Reader) Manifest() *Manifest { return r.manifest }

// hashReader feeds what is read to a part's sum.
type hashReader struct {
	r io.Reader
	s *sum
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.s.h.Write(p[:n])
	h.s.bytes += int64(n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = invalid("stream cut short")
	}
	return n, err
}
