package main

import (
	"archive/tar"
	"bytes"
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
// dataGz gzips data.tar, which holds the binary (nil: gzipBest); the
// rest are small or already compressed.
func writeIPK(file string, m meta, entries []entry, dataGz gzipper) error {
	if dataGz == nil {
		dataGz = gzipBest
	}
	data, size, err := tarGz(entries, m.Epoch, dataGz)
	if err != nil {
		return err
	}
	ctl := []entry{
		{"/control", 0o644, []byte(m.control(size))},
		{"/conffiles", 0o644, []byte(strings.Join(m.Conffiles, "\n") + "\n")},
		{"/postinst", 0o755, []byte(postinst)},
		{"/prerm", 0o755, []byte(prerm)},
	}
	control, _, err := tarGz(ctl, m.Epoch, gzipBest)
	if err != nil {
		return err
	}
	outer, _, err := tarGzFlat([]entry{
		{"./debian-binary", 0o644, []byte("2.0\n")},
		{"./data.tar.gz", 0o644, data},
		{"./control.tar.gz", 0o644, control},
	}, m.Epoch, gzipBest)
	if err != nil {
		return err
	}
	return renameio.WriteFile(file, outer, 0o644)
}

// tarGz archives entries under ./ with every parent directory, sorted by
// name as ipkg-build's tar --sort=name; size is the uncompressed tar's, the
// Installed-Size ipkg-build reports.
func tarGz(entries []entry, mtime time.Time, gz gzipper) ([]byte, int64, error) {
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
	return tarGzFlat(all, mtime, gz)
}

// tarGzFlat archives entries as they are, in order.
func tarGzFlat(entries []entry, mtime time.Time, gz gzipper) ([]byte, int64, error) {
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
	b, err := gz(raw.Bytes())
	if err != nil {
		return nil, 0, err
	}
	return b, int64(raw.Len()), nil
}
