package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
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

// Data writes the tree under root, a chute's /data on the host, as the
// data part: directories, regular files and symlinks, with their owners
// made relative to base, the host id of the chute's root. Files owned
// outside the chute's range (the filesystem's lost+found) are left out.
// It returns the bytes of file content written.
func (w *Writer) Data(ctx context.Context, root string, base uint32) (int64, error) {
	s := w.sum.of(KindData)
	before := s.bytes
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == root {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid < base || st.Uid-base >= idRange || st.Gid < base || st.Gid-base >= idRange {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: KindData + "/" + filepath.ToSlash(rel), Mode: int64(fi.Mode().Perm()), Uid: int(st.Uid - base), Gid: int(st.Gid - base), ModTime: fi.ModTime()}
		var f *os.File
		switch {
		case fi.IsDir():
			hdr.Typeflag = tar.TypeDir
		case fi.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
			if f, err = os.Open(p); err != nil {
				return err
			}
			defer f.Close()
		case fi.Mode()&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			if hdr.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return nil // sockets, FIFOs: nothing to carry
		}
		s.header(hdr)
		if err := w.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if f == nil {
			return nil
		}
		// The chute is stopped: the size stays what it was.
		n, err := io.Copy(hashWriter{w.tw, s}, io.LimitReader(f, hdr.Size))
		if err == nil && n != hdr.Size {
			err = fmt.Errorf("%s changed size while sent", p)
		}
		return err
	})
	if err != nil {
		return s.bytes - before, fmt.Errorf("send /data: %w", err)
	}
	return s.bytes - before, nil
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
