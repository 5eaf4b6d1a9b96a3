package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// ent is one tar entry; typ defaults to a regular file, or a directory
// when the name ends in "/".
type ent struct {
	name, body, link string
	typ              byte
	mode             int64
}

func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)),
			Uid: 1234, Gid: 5678}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if strings.HasSuffix(e.name, "/") {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const manifest = "name: web\nversion: 1.0.0\ncommand: [/bin/sh]\n"

// sandbox returns dest, an empty directory, next to a victim file that no
// package may touch. check verifies that nothing but dest was created or
// changed beside it.
func sandbox(t *testing.T) (dest string, check func()) {
	parent := t.TempDir()
	dest = filepath.Join(parent, "dest")
	victim := filepath.Join(parent, "outside", "victim")
	if err := os.MkdirAll(filepath.Dir(victim), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("intact"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	return dest, func() {
		t.Helper()
		var found []string
		filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if rel, _ := filepath.Rel(parent, p); !strings.HasPrefix(rel, "dest") {
				found = append(found, rel)
			}
			return nil
		})
		if want := []string{".", "outside", "outside/victim"}; !slices.Equal(found, want) {
			t.Errorf("files outside dest: %v", found)
		}
		if b, err := os.ReadFile(victim); err != nil || string(b) != "intact" {
			t.Errorf("victim changed: %q, %v", b, err)
		}
		if fi, _ := os.Stat(victim); fi.Mode() != 0o644 {
			t.Errorf("victim mode changed: %v", fi.Mode())
		}
		// The caller must be able to clean up whatever was left.
		if err := os.RemoveAll(dest); err != nil {
			t.Errorf("cannot remove dest: %v", err)
		}
	}
}

func extract(t *testing.T, data []byte, lim Limits) (string, []byte, error) {
	t.Helper()
	dest, check := sandbox(t)
	m, err := Extract(context.Background(), bytes.NewReader(data), dest, lim)
	t.Cleanup(check)
	return dest, m, err
}

func TestExtractRootfs(t *testing.T) {
	pkg := mkTar(t,
		ent{name: "./"},
		ent{name: "./chute.yaml", body: manifest},
		ent{name: "README", body: "ignored"},
		ent{name: "rootfs/"},
		ent{name: "rootfs/bin/busybox", body: "ELF", mode: 0o4755}, // parent implicit, setuid dropped
		ent{name: "rootfs/bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
		ent{name: "rootfs/bin/ls", typ: tar.TypeSymlink, link: "busybox"},
		ent{name: "rootfs/usr/lib/x", typ: tar.TypeSymlink, link: "../../bin/busybox"},
		ent{name: "rootfs/bin/cat", typ: tar.TypeLink, link: "rootfs/bin/busybox"},
		ent{name: "rootfs/etc/", mode: 0o2755},
		ent{name: "rootfs/etc/shadow", body: "secret", mode: 0o600},
		ent{name: "rootfs/ro/", mode: 0o555},
		ent{name: "rootfs/ro/file", body: "r", mode: 0o444},
		ent{name: "rootfs/tmp/", mode: 0o1777},
		ent{name: "rootfs/dev/null", typ: tar.TypeChar, mode: 0o666},
		ent{name: "rootfs/fifo", typ: tar.TypeFifo},
		ent{name: "rootfs/etc/shadow", body: "replaced", mode: 0o640},
	)
	for _, data := range [][]byte{pkg, gz(t, pkg)} {
		dest, m, err := extract(t, data, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if string(m) != manifest {
			t.Errorf("manifest %q", m)
		}
		root := filepath.Join(dest, "rootfs")
		for p, want := range map[string]fs.FileMode{
			".": fs.ModeDir | 0o755, "bin": fs.ModeDir | 0o755, "bin/busybox": 0o755, "etc": fs.ModeDir | 0o755,
			"etc/shadow": 0o640, "ro": fs.ModeDir | 0o555, "ro/file": 0o444, "tmp": fs.ModeDir | fs.ModeSticky | 0o777,
			"bin/sh": fs.ModeSymlink | 0o777,
		} {
			fi, err := os.Lstat(filepath.Join(root, p))
			if err != nil {
				t.Error(err)
				continue
			}
			if fi.Mode() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
			}
		}
		for p, want := range map[string]string{"bin/sh": "/bin/busybox", "bin/ls": "busybox", "usr/lib/x": "../../bin/busybox"} {
			if got, err := os.Readlink(filepath.Join(root, p)); err != nil || got != want {
				t.Errorf("%s -> %q, %v; want %q", p, got, err, want)
			}
		}
		a, _ := os.Stat(filepath.Join(root, "bin/busybox"))
		b, _ := os.Stat(filepath.Join(root, "bin/cat"))
		if !os.SameFile(a, b) {
			t.Error("hard link not kept")
		}
		if got, _ := os.ReadFile(filepath.Join(root, "etc/shadow")); string(got) != "replaced" {
			t.Errorf("later entry did not replace: %q", got)
		}
		for _, p := range []string{"dev/null", "fifo"} {
			if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s was created: %v", p, err)
			}
		}
		if entries, _ := os.ReadDir(dest); len(entries) != 1 {
			t.Errorf("dest holds more than rootfs: %v", entries)
		}
	}
}

func TestExtractRefused(t *testing.T) {
	yaml := ent{name: "chute.yaml", body: manifest}
	rootfs := ent{name: "rootfs/"}
	for _, tc := range []struct {
		name string
		ents []ent
		want error
	}{
		{"dotdot top", []ent{yaml, rootfs, {name: "../evil", body: "x"}}, ErrUnsafe},
		{"dotdot rootfs", []ent{yaml, rootfs, {name: "rootfs/../../outside/victim", body: "x"}}, ErrUnsafe},
		{"dotdot inside", []ent{yaml, rootfs, {name: "rootfs/a/../b", body: "x"}}, ErrUnsafe},
		{"absolute", []ent{yaml, rootfs, {name: "/rootfs/etc/passwd", body: "x"}}, ErrUnsafe},
		{"relative symlink escapes", []ent{yaml, rootfs, {name: "rootfs/a/l", typ: tar.TypeSymlink, link: "../../x"}}, ErrUnsafe},
		{"write through absolute symlink", []ent{yaml, rootfs,
			{name: "rootfs/l", typ: tar.TypeSymlink, link: "/"},
			{name: "rootfs/l/evil", body: "x"}}, ErrUnsafe},
		{"write through relative symlink", []ent{yaml, rootfs,
			{name: "rootfs/l", typ: tar.TypeSymlink, link: "."},
			{name: "rootfs/l/evil", body: "x"}}, ErrUnsafe},
		{"mkdir through symlink", []ent{yaml, rootfs,
			{name: "rootfs/l", typ: tar.TypeSymlink, link: "/tmp"},
			{name: "rootfs/l/d/"}}, ErrUnsafe},
		{"rootfs is a symlink", []ent{yaml, {name: "rootfs", typ: tar.TypeSymlink, link: "/"}}, ErrInvalid},
		{"hard link absolute", []ent{yaml, rootfs, {name: "rootfs/h", typ: tar.TypeLink, link: "/etc/passwd"}}, ErrUnsafe},
		{"hard link dotdot", []ent{yaml, rootfs, {name: "rootfs/h", typ: tar.TypeLink, link: "rootfs/../outside/victim"}}, ErrUnsafe},
		{"hard link outside rootfs", []ent{yaml, rootfs, {name: "rootfs/h", typ: tar.TypeLink, link: "chute.yaml"}}, ErrUnsafe},
		{"hard link to symlink", []ent{yaml, rootfs,
			{name: "rootfs/s", typ: tar.TypeSymlink, link: "/etc/passwd"},
			{name: "rootfs/h", typ: tar.TypeLink, link: "rootfs/s"}}, ErrUnsafe},
		{"hard link forward", []ent{yaml, rootfs,
			{name: "rootfs/h", typ: tar.TypeLink, link: "rootfs/f"},
			{name: "rootfs/f", body: "x"}}, ErrUnsafe},
		{"hard link to replaced file", []ent{yaml, rootfs,
			{name: "rootfs/f", body: "x"},
			{name: "rootfs/f", typ: tar.TypeSymlink, link: "/etc/passwd"},
			{name: "rootfs/h", typ: tar.TypeLink, link: "rootfs/f"}}, ErrUnsafe},
		{"file under file", []ent{yaml, rootfs, {name: "rootfs/f", body: "x"}, {name: "rootfs/f/g", body: "x"}}, ErrInvalid},
		{"replace full dir", []ent{yaml, rootfs, {name: "rootfs/d/f", body: "x"}, {name: "rootfs/d", body: "x"}}, ErrInvalid},
		{"no manifest", []ent{rootfs, {name: "rootfs/f", body: "x"}}, ErrNoManifest},
		{"manifest in rootfs only", []ent{rootfs, {name: "rootfs/chute.yaml", body: manifest}}, ErrNoManifest},
		{"manifest not a file", []ent{{name: "chute.yaml", typ: tar.TypeSymlink, link: "/etc/passwd"}, rootfs}, ErrInvalid},
		{"manifest dir", []ent{{name: "chute.yaml/"}, rootfs}, ErrInvalid},
		{"duplicate manifest", []ent{yaml, rootfs, yaml}, ErrInvalid},
		{"no rootfs", []ent{yaml}, ErrInvalid},
		{"both", []ent{yaml, rootfs, {name: "image.tar", body: ""}}, ErrInvalid},
		{"duplicate image", []ent{yaml, {name: "image.tar"}, {name: "image.tar"}}, ErrInvalid},
		{"image not an image", []ent{yaml, {name: "image.tar", body: "junk"}}, ErrInvalid},
		{"huge manifest", []ent{{name: "chute.yaml", body: strings.Repeat("#", 2<<20)}}, ErrTooLarge},
		{"unknown type", []ent{yaml, rootfs, {name: "rootfs/v", typ: tar.TypeGNUSparse + 10}}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := extract(t, mkTar(t, tc.ents...), Limits{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not *Error", err)
			}
		})
	}
}

func TestSymlinkOverwriteDoesNotEscape(t *testing.T) {
	dest, check := sandbox(t)
	victim := filepath.Join(filepath.Dir(dest), "outside", "victim")
	data := mkTar(t,
		ent{name: "chute.yaml", body: manifest},
		ent{name: "rootfs/f", typ: tar.TypeSymlink, link: victim},
		ent{name: "rootfs/f", body: "pwned", mode: 0o777},
		ent{name: "rootfs/d", typ: tar.TypeSymlink, link: filepath.Dir(victim)},
		ent{name: "rootfs/d/", mode: 0o777},
	)
	if _, err := Extract(context.Background(), bytes.NewReader(data), dest, Limits{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dest, "rootfs/f"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("rootfs/f: %v %v", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "rootfs/d")); err != nil || !fi.IsDir() {
		t.Fatalf("rootfs/d: %v %v", fi, err)
	}
	check()
}

func TestLimits(t *testing.T) {
	big := mkTar(t, ent{name: "chute.yaml", body: manifest}, ent{name: "rootfs/f", body: strings.Repeat("x", 1<<20)})
	many := []ent{{name: "chute.yaml", body: manifest}}
	for i := range 20 {
		many = append(many, ent{name: "rootfs/d/f" + string(rune('a'+i)), body: "x"})
	}
	bomb := mkTar(t, ent{name: "chute.yaml", body: manifest}, ent{name: "rootfs/zeros", body: string(make([]byte, 8<<20))})
	for _, tc := range []struct {
		name string
		data []byte
		lim  Limits
		want error
	}{
		{"unpacked ok", big, Limits{MaxUnpacked: 2 << 20}, nil},
		{"unpacked", big, Limits{MaxUnpacked: 1 << 19}, ErrTooLarge},
		{"upload ok", big, Limits{MaxUpload: int64(len(big))}, nil},
		{"upload", big, Limits{MaxUpload: int64(len(big)) - 1025}, ErrTooLarge},
		{"upload gzip", gz(t, big), Limits{MaxUpload: 1000}, ErrTooLarge},
		{"files ok", mkTar(t, many...), Limits{MaxFiles: 21}, nil},
		{"files", mkTar(t, many...), Limits{MaxFiles: 20}, ErrTooLarge},
		{"gzip bomb", gz(t, bomb), Limits{MaxUnpacked: 1 << 20}, ErrTooLarge},
		{"gzip bomb in ignored entry", gz(t, mkTar(t, ent{name: "junk", body: string(make([]byte, 8<<20))})), Limits{MaxUnpacked: 1 << 20}, ErrTooLarge},
		{"garbage", []byte("this is not a tar archive, not at all, not even close........"), Limits{}, ErrInvalid},
		{"truncated", big[:len(big)/2], Limits{}, ErrInvalid},
		{"truncated gzip", gz(t, big)[:100], Limits{}, ErrInvalid},
		{"empty", nil, Limits{}, ErrNoManifest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := extract(t, tc.data, tc.lim)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dest, check := sandbox(t)
	defer check()
	data := mkTar(t, ent{name: "chute.yaml", body: manifest}, ent{name: "rootfs/f", body: "x"})
	if _, err := Extract(ctx, bytes.NewReader(data), dest, Limits{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestShift(t *testing.T) {
	dest, _, err := extract(t, mkTar(t,
		ent{name: "chute.yaml", body: manifest},
		ent{name: "rootfs/bin/busybox", body: "ELF", mode: 0o755},
		ent{name: "rootfs/bin/cat", typ: tar.TypeLink, link: "rootfs/bin/busybox"},
		ent{name: "rootfs/bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
	), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dest, "rootfs")
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	if err := Shift(root, 100000, 200000); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".", "bin", "bin/busybox", "bin/cat", "bin/sh"} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 100000 || st.Gid != 200000 {
			t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
		}
	}
	if err := Shift(root, -1, 0); err == nil {
		t.Error("negative offset accepted")
	}
}
