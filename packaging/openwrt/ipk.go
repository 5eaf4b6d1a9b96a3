package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/renameio/v2"
)

// writeIPK writes an .ipk as OpenWrt's ipkg-build does: a gzipped tar of
// ./debian-binary, ./data.tar.gz and ./control.tar.gz, each inner tar
// holding ./-relative paths owned by root. It is the only form OpenWrt's
// opkg (opkg-lede, whose deb_extract gunzips the outer file and walks it
// as a tar) reads; the ar archive of Debian and Yocto's opkg is not.
func writeIPK(file string, m meta, entries []entry) error {
	data, size, err := tarGz(entries, m.Epoch)
	if err != nil {
		return err
	}
	ctl := []entry{
		{"/control", 0o644, []byte(m.control(size))},
		{"/conffiles", 0o644, []byte(strings.Join(m.Conffiles, "\n") + "\n")},
		{"/postinst", 0o755, []byte(postinst)},
		{"/prerm", 0o755, []byte(prerm)},
	}
	control, _, err := tarGz(ctl, m.Epoch)
	if err != nil {
		return err
	}
	outer, _, err := tarGzFlat([]entry{
		{"./debian-binary", 0o644, []byte("2.0\n")},
		{"./data.tar.gz", 0o644, data},
		{"./control.tar.gz", 0o644, control},
	}, m.Epoch)
	if err != nil {
		return err
	}
	return renameio.WriteFile(file, outer, 0o644)
}

// tarGz archives entries under ./ with every parent directory, sorted by
// name as ipkg-build's tar --sort=name; size is the uncompressed tar's, the
// Installed-Size ipkg-build reports.
func tarGz(entries []entry, mtime time.Time) ([]byte, int64, error) {
	dirs := map[string]bool{".": true}
	var all []entry
	for _, e := range entries {
		for d := path.Dir(e.path); d != "/"; d = path.Dir(d) {
			dirs["."+d] = true
		}
		all = append(all, entry{"." + e.path, e.mode, e.data})
	}
	for d := range dirs {
		all = append(all, entry{d + "/", os.ModeDir | 0o755, nil})
	}
	sort.Slice(all, func(i, j int) bool {
		return strings.TrimSuffix(all[i].path, "/") < strings.TrimSuffix(all[j].path, "/")
	})
	return tarGzFlat(all, mtime)
}

// tarGzFlat archives entries as they are, in order.
func tarGzFlat(entries []entry, mtime time.Time) ([]byte, int64, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		h := &tar.Header{Name: e.path, Mode: int64(e.mode.Perm()), ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatGNU}
		if e.mode.IsDir() {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, 0, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, 0, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, 0, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return gz.Bytes(), int64(raw.Len()), nil
}
