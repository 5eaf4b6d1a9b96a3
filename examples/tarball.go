package examples

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// tarball writes a chute package: a gzipped tar whose entries are stamped
// with one time and whose parent directories are added before their
// children, once.
type tarball struct {
	buf  bytes.Buffer
	gz   *gzip.Writer
	tw   *tar.Writer
	now  time.Time
	dirs map[string]bool
}

func newTarball() *tarball {
	t := &tarball{now: time.Now(), dirs: map[string]bool{}}
	t.gz = gzip.NewWriter(&t.buf)
	t.tw = tar.NewWriter(t.gz)
	return t
}

func (t *tarball) add(h *tar.Header, body []byte) error {
	h.ModTime = t.now
	if err := t.tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := t.tw.Write(body)
	return err
}

// mkdirs adds the missing parent directories of p.
func (t *tarball) mkdirs(p string) error {
	var parents []string
	for d := path.Dir(p); d != "." && !t.dirs[d]; d = path.Dir(d) {
		parents = append(parents, d)
	}
	for i := len(parents) - 1; i >= 0; i-- {
		t.dirs[parents[i]] = true
		if err := t.add(&tar.Header{Name: parents[i] + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil); err != nil {
			return err
		}
	}
	return nil
}

func (t *tarball) file(p string, mode int64, body []byte) error {
	if err := t.mkdirs(p); err != nil {
		return err
	}
	return t.add(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(body))}, body)
}

func (t *tarball) symlink(p, target string) error {
	if err := t.mkdirs(p); err != nil {
		return err
	}
	return t.add(&tar.Header{Name: p, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}, nil)
}

// tree adds the files, directories and symlinks under dir at prefix,
// leaving out the subtrees (relative to dir) in skip.
func (t *tarball) tree(dir, prefix string, skip []string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := prefix + "/" + rel
		mode := int64(info.Mode().Perm())
		switch {
		case d.IsDir():
			if err := t.mkdirs(name + "/x"); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return t.symlink(name, target)
		case info.Mode().IsRegular():
			body, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return t.file(name, mode, body)
		}
		return nil
	})
}

func (t *tarball) bytes() ([]byte, error) {
	if err := t.tw.Close(); err != nil {
		return nil, err
	}
	if err := t.gz.Close(); err != nil {
		return nil, err
	}
	return t.buf.Bytes(), nil
}
