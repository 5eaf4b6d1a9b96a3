package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var lim = Limits{Package: 1 << 20, Data: 1 << 20, Files: 100}

// stream writes a package, a signature, the tree under root and a
// handover.
func stream(t *testing.T, root string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Blob(KindSignature, strings.NewReader("sig"), 3); err != nil {
		t.Fatal(err)
	}
	if err := w.Blob(KindPackage, strings.NewReader("the package"), 11); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Data(context.Background(), root, uint32(os.Getuid()), false); err != nil {
		t.Fatal(err)
	}
	if err := w.Handover(Handover{From: "gw-a"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close("c", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sampleTree(t *testing.T) string {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "sub/deeper"), 0o750)
	os.WriteFile(filepath.Join(root, "sub/deeper/counter"), []byte("count=41"), 0o640)
	os.WriteFile(filepath.Join(root, "blob"), bytes.Repeat([]byte("x"), 5000), 0o600)
	os.Symlink("sub/deeper/counter", filepath.Join(root, "link"))
	return root
}

// read reads a whole stream, extracting /data into a new directory.
func read(t *testing.T, b []byte, l Limits) (string, *Reader, map[string]string, error) {
	return readInto(t, b, l, t.TempDir())
}

// readInto reads a whole stream, extracting /data into dest.
func readInto(t *testing.T, b []byte, l Limits, dest string) (string, *Reader, map[string]string, error) {
	fd, err := unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	r := NewReader(bytes.NewReader(b), l)
	blobs := map[string]string{}
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return dest, r, blobs, nil
		}
		if err != nil {
			return dest, r, blobs, err
		}
		if tree(e.Kind) {
			if err := e.Extract(fd, uint32(os.Getuid())); err != nil {
				return dest, r, blobs, err
			}
			continue
		}
		raw, _ := io.ReadAll(e.Body)
		blobs[e.Kind] = string(raw)
	}
}

func digestTree(t *testing.T, root string) map[string]string {
	out := map[string]string{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "-> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			out[rel] = fmt.Sprintf("%s %x", fi.Mode(), sha256.Sum256(b))
		default:
			out[rel] = fi.Mode().String()
		}
		return nil
	})
	return out
}

// sameTree compares the trees under got and want: kinds, modes, contents,
// link targets.
func sameTree(t *testing.T, got, want string) {
	t.Helper()
	g, w := digestTree(t, got), digestTree(t, want)
	delete(g, ".")
	delete(w, ".")
	if len(g) != len(w) {
		t.Fatalf("got %d entries, want %d:\n%v\n%v", len(g), len(w), g, w)
	}
	for k, v := range w {
		if g[k] != v {
			t.Errorf("%s: got %q, want %q", k, g[k], v)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	src := sampleTree(t)
	dest, r, blobs, err := read(t, stream(t, src), lim)
	if err != nil {
		t.Fatal(err)
	}
	if blobs[KindPackage] != "the package" || blobs[KindSignature] != "sig" || !strings.Contains(blobs[KindHandover], `"from":"gw-a"`) {
		t.Errorf("blobs: %q", blobs)
	}
	if m := r.Manifest(); m.Chute != "c" || m.Version != "1.0.0" || len(m.Parts) != 4 || m.Parts[2].Kind != KindData || m.Parts[2].Bytes != 5008 {
		t.Errorf("manifest: %+v", m)
	}
	sameTree(t, dest, src)
}

// TestHeldPackage: a stream that names the package the target holds
// instead of carrying it brings /data all the same.
func TestHeldPackage(t *testing.T) {
	src := sampleTree(t)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Held(PackageHeld{SHA256: "ab12"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Data(context.Background(), src, uint32(os.Getuid()), false); err != nil {
		t.Fatal(err)
	}
	w.Close("c", "1")
	dest, r, blobs, err := read(t, buf.Bytes(), lim)
	if err != nil {
		t.Fatal(err)
	}
	if blobs[KindHeld] != `{"sha256":"ab12"}` || blobs[KindPackage] != "" {
		t.Errorf("blobs: %q", blobs)
	}
	if m := r.Manifest(); len(m.Parts) != 2 || m.Parts[0].Kind != KindHeld {
		t.Errorf("manifest: %+v", m)
	}
	sameTree(t, dest, src)
}

// TestPreCopy: /data sent while the chute runs, then what changed after
// it stopped (rewritten, grown, deleted, a directory become a file, new),
// arrives as the source's final tree; what did not change is not sent
// twice.
func TestPreCopy(t *testing.T) {
	src := sampleTree(t)
	for i := range 20 {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("still%d", i)), []byte("unchanged"), 0o600)
	}
	time.Sleep(2 * recent) // older than the coarse clock can hide a write in
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Blob(KindPackage, strings.NewReader("p"), 1)
	uid := uint32(os.Getuid())
	snap, _, err := w.Data(context.Background(), src, uid, true)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // while the chute is told, then stopped
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(src, "sub/deeper/counter"), []byte("42"), 0o640)
	os.WriteFile(filepath.Join(src, "blob"), bytes.Repeat([]byte("y"), 7000), 0o600)
	os.Remove(filepath.Join(src, "still3"))
	os.RemoveAll(filepath.Join(src, "sub"))
	os.WriteFile(filepath.Join(src, "sub"), []byte("now a file"), 0o600)
	os.WriteFile(filepath.Join(src, "new"), []byte("new"), 0o600)
	_, sent, err := w.Delta(context.Background(), src, uid, snap, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Close("c", "1")
	// Deleted: still3, sub and what was under it; sent again: the root's
	// changed entries only (blob, sub, new).
	if sent.Deleted != 4 || sent.Entries != 3 {
		t.Errorf("delta: %+v", sent)
	}
	dest, _, _, err := read(t, buf.Bytes(), lim)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dest, src)
}

// TestDeltaRounds: what changed after the pre-copy is sent in a round
// while the chute still runs (its handover, say); the last round, once it
// is stopped, sends only what changed after that one, deletions after
// changes included; the target ends with the source's tree.
func TestDeltaRounds(t *testing.T) {
	src := sampleTree(t)
	for i := range 20 {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("still%d", i)), []byte("unchanged"), 0o600)
	}
	time.Sleep(2 * recent)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Blob(KindPackage, strings.NewReader("p"), 1)
	uid := uint32(os.Getuid())
	snap, _, err := w.Data(context.Background(), src, uid, true)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "blob"), bytes.Repeat([]byte("y"), 70000), 0o600) // the handover
	os.WriteFile(filepath.Join(src, "new"), []byte("new"), 0o600)
	time.Sleep(2 * recent)
	snap, live, err := w.Delta(context.Background(), src, uid, snap, true)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(src, "still3"))
	os.WriteFile(filepath.Join(src, "still4"), []byte("changed at the stop"), 0o600)
	time.Sleep(2 * recent)
	_, last, err := w.Delta(context.Background(), src, uid, snap, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Close("c", "1")
	if live.Entries != 2 || live.Bytes != 70003 || live.Deleted != 0 {
		t.Errorf("the round while it runs: %+v", live)
	}
	if last.Entries != 1 || last.Deleted != 1 || last.Bytes != int64(len("changed at the stop")) {
		t.Errorf("the last round: %+v", last)
	}
	dest, r, _, err := read(t, buf.Bytes(), lim)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dest, src)
	if m := r.Manifest(); len(m.Parts) != 4 || m.Parts[2].Kind != KindDeleted || m.Parts[3].Kind != KindDelta {
		t.Errorf("manifest parts: %+v", m.Parts)
	}
}

// craft is a tar of hand-made entries, closed with a manifest that
// matches.
func craft(hdrs ...*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var d digests
	for _, h := range hdrs {
		kind, _ := kindOf(h.Name)
		s := d.of(kind)
		s.header(h)
		tw.WriteHeader(h)
		body := bytes.Repeat([]byte("a"), int(h.Size))
		tw.Write(body)
		s.h.Write(body)
		s.bytes += h.Size
	}
	m, _ := json.Marshal(d.manifest("c", "1"))
	tw.WriteHeader(&tar.Header{Name: manifestName, Typeflag: tar.TypeReg, Size: int64(len(m))})
	tw.Write(m)
	tw.Close()
	return buf.Bytes()
}

// TestRefused: a stream altered, cut, reordered, over its limits, or
// naming paths out of /data is refused, never half-taken as whole.
func TestRefused(t *testing.T) {
	good := stream(t, sampleTree(t))
	flip := func(b []byte, old, new string) []byte {
		i := bytes.Index(b, []byte(old))
		if i < 0 {
			t.Fatalf("%q not in the stream", old)
		}
		out := append([]byte(nil), b...)
		copy(out[i:], new)
		return out
	}
	pkg := &tar.Header{Name: KindPackage, Typeflag: tar.TypeReg, Size: 4}
	// A header that claims more than a whole /data, its body never sent.
	var huge bytes.Buffer
	tw := tar.NewWriter(&huge)
	tw.WriteHeader(pkg)
	tw.Write([]byte("pkg!"))
	tw.WriteHeader(&tar.Header{Name: "data/big", Typeflag: tar.TypeReg, Size: 1 << 40})
	for _, tc := range []struct {
		name   string
		stream []byte
		lim    Limits
		want   string
	}{
		{"a byte of /data changed", flip(good, "count=41", "count=42"), lim, "does not match the manifest"},
		{"the package changed", flip(good, "the package", "the pockage"), lim, "does not match the manifest"},
		{"cut short", good[:len(good)/2], lim, "stream"},
		{"no manifest", good[:1024], lim, ""},
		{"/data over its limit", good, Limits{Package: 100, Data: 4000, Files: 100}, "larger than 4000"},
		{"too many entries", good, Limits{Package: 100, Data: 1 << 20, Files: 2}, "more than 2 entries"},
		{"package over its limit", good, Limits{Package: 5, Data: 1 << 20, Files: 100}, "more than 5"},
		{"data before package", craft(&tar.Header{Name: "data/x", Typeflag: tar.TypeReg, Size: 1}, pkg), lim, "before the package"},
		{"package twice", craft(pkg, pkg), lim, "out of order"},
		{"package and held", craft(pkg, &tar.Header{Name: KindHeld, Typeflag: tar.TypeReg, Size: 2}), lim, "out of order"},
		{"held too large", craft(&tar.Header{Name: KindHeld, Typeflag: tar.TypeReg, Size: maxSmall + 1}), lim, "more than"},
		{"climbing out", craft(pkg, &tar.Header{Name: "data/../x", Typeflag: tar.TypeReg, Size: 1}), lim, "not a clean relative path"},
		{"absolute", craft(pkg, &tar.Header{Name: "data//etc/x", Typeflag: tar.TypeReg, Size: 1}), lim, "not a clean relative path"},
		{"device", craft(pkg, &tar.Header{Name: "data/sda", Typeflag: tar.TypeBlock}), lim, "not carried"},
		{"setuid", craft(pkg, &tar.Header{Name: "data/x", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 1}), lim, "mode"},
		{"setgid directory", craft(pkg, &tar.Header{Name: "data/d", Typeflag: tar.TypeDir, Mode: 0o2755}), lim, "mode"},
		{"hard link", craft(pkg, &tar.Header{Name: "data/h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}), lim, "not carried"},
		{"character device", craft(pkg, &tar.Header{Name: "data/mem", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1}), lim, "not carried"},
		{"FIFO", craft(pkg, &tar.Header{Name: "data/p", Typeflag: tar.TypeFifo}), lim, "not carried"},
		{"climbing out from below", craft(pkg, &tar.Header{Name: "data/a/../../x", Typeflag: tar.TypeReg, Size: 1}), lim, "not a clean relative path"},
		{"a file larger than /data", huge.Bytes(), lim, "larger than"},
		{"host root's file", craft(pkg, &tar.Header{Name: "data/x", Typeflag: tar.TypeReg, Uid: 1 << 20, Size: 1}), lim, "outside the chute's ids"},
		{"unknown part", craft(pkg, &tar.Header{Name: "criu", Typeflag: tar.TypeReg, Size: 1}), lim, "unknown part"},
		{"deleting through a symlink", craft(pkg,
			&tar.Header{Name: "data/l", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			&tar.Header{Name: "deleted/l/passwd", Typeflag: tar.TypeReg}), lim, "open its directory"},
		{"wait before the package", craft(&tar.Header{Name: "wait", Typeflag: tar.TypeReg, Size: waitSize}, pkg), lim, "wait before the package"},
		{"wait of another size", craft(pkg, &tar.Header{Name: "wait", Typeflag: tar.TypeReg, Size: 1 << 20}), lim, "wait entry of"},
		{"deleted with a body", craft(pkg, &tar.Header{Name: "deleted/x", Typeflag: tar.TypeReg, Size: 1}), lim, "not empty"},
		{"data after delta", craft(pkg,
			&tar.Header{Name: "delta/x", Typeflag: tar.TypeReg, Size: 1},
			&tar.Header{Name: "data/y", Typeflag: tar.TypeReg, Size: 1}), lim, "out of order"},
		{"through a symlink", craft(pkg,
			&tar.Header{Name: "data/l", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			&tar.Header{Name: "data/l/passwd", Typeflag: tar.TypeReg, Size: 1}), lim, "open its directory"},
		{"a file twice", craft(pkg,
			&tar.Header{Name: "data/f", Typeflag: tar.TypeReg, Size: 1},
			&tar.Header{Name: "data/f", Typeflag: tar.TypeReg, Size: 1}), lim, "file exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := read(t, tc.stream, tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if _, err := os.Lstat("/etc/passwd"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	root := f.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("data"), 0o600)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Blob(KindPackage, strings.NewReader("p"), 1)
	w.Data(context.Background(), root, uint32(os.Getuid()), false)
	w.Close("c", "1")
	f.Add(buf.Bytes())
	// The package held, /data in rounds.
	buf.Reset()
	w = NewWriter(&buf)
	w.Held(PackageHeld{SHA256: "ab"})
	snap, _, _ := w.Data(context.Background(), root, uint32(os.Getuid()), true)
	os.WriteFile(filepath.Join(root, "f"), []byte("more data"), 0o600)
	snap, _, _ = w.Delta(context.Background(), root, uint32(os.Getuid()), snap, true)
	os.Remove(filepath.Join(root, "f"))
	w.Delta(context.Background(), root, uint32(os.Getuid()), snap, false)
	w.Close("c", "1")
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b), Limits{Package: 1 << 10, Data: 1 << 10, Files: 10})
		for i := 0; i < 100; i++ {
			e, err := r.Next()
			if err != nil {
				return
			}
			io.Copy(io.Discard, e.Body)
		}
	})
}

// TestSwappedForALink: a running chute swaps a file the walk saw as
// regular for a symlink out of /data, or its directory for one, or the
// file for a FIFO or for another file, before the daemon (host root) opens it to send it.
// Nothing outside /data is read, and a FIFO does not block the sender:
// while the chute runs, the entry is sent as changed (Delta sends it
// again as what it is then); once it is stopped, that is an error.
func TestSwappedForALink(t *testing.T) {
	secret := []byte("host secret, not the chute's")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "f"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(secret))} // what the walk saw
	for _, c := range []struct {
		name, rel string
		swap      func(root string) error
	}{
		{"file to a symlink", "f", func(root string) error {
			return os.Symlink(filepath.Join(outside, "f"), filepath.Join(root, "f"))
		}},
		{"directory to a symlink", "d/f", func(root string) error { return os.Symlink(outside, filepath.Join(root, "d")) }},
		{"relative symlink", "f", func(root string) error {
			rel, err := filepath.Rel(root, filepath.Join(outside, "f"))
			if err != nil {
				return err
			}
			return os.Symlink(rel, filepath.Join(root, "f"))
		}},
		{"file to a FIFO", "f", func(root string) error { return unix.Mkfifo(filepath.Join(root, "f"), 0o600) }},
		// Another inode than the walk saw (0 here): a hard link to it.
		{"file to another file", "f", func(root string) error {
			return os.Link(filepath.Join(outside, "f"), filepath.Join(root, "f"))
		}},
	} {
		for _, live := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s live=%v", c.name, live), func(t *testing.T) {
				root := t.TempDir()
				if err := c.swap(root); err != nil {
					t.Fatal(err)
				}
				// Were the FIFO opened for reading, a writer ends the wait.
				defer func() {
					if fd, err := unix.Open(filepath.Join(root, "f"), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
						unix.Close(fd)
					}
				}()
				var buf bytes.Buffer
				w := NewWriter(&buf)
				type result struct {
					changed bool
					err     error
				}
				done := make(chan result, 1)
				go func() {
					_, changed, err := w.entry(KindData, root, c.rel, hdr, 0, live)
					done <- result{changed, err}
				}()
				var r result
				select {
				case r = <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("the sender is still opening the swapped file after 5 s")
				}
				if bytes.Contains(buf.Bytes(), secret) {
					t.Fatal("the stream carries the file outside /data")
				}
				switch {
				case live && (r.err != nil || !r.changed):
					t.Errorf("while the chute runs: changed %v, error %v; want it sent as changed", r.changed, r.err)
				case !live && r.err == nil:
					t.Error("once the chute is stopped: no error")
				}
			})
		}
	}
}

// TestWalkSwappedForALink: a running chute swaps a directory of /data the
// walk saw for a symlink to a host directory before the walk lists it, or
// before it lists a directory under it. Nothing of the host's directory
// reaches the stream: not its entries' names, nor a file's contents, nor
// a symlink's target.
func TestWalkSwappedForALink(t *testing.T) {
	outside := t.TempDir()
	secrets := []string{"host-name-secret", "host contents secret", "host-target-secret", "host-dir-secret"}
	for _, dir := range []string{outside, filepath.Join(outside, "e")} {
		if err := os.MkdirAll(filepath.Join(dir, secrets[3]), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, secrets[0]), []byte(secrets[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(secrets[2], filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ name, when string }{
		{"the directory listed", "d"},
		{"a directory above it", "d/e"},
	} {
		for _, live := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s live=%v", c.name, live), func(t *testing.T) {
				root := t.TempDir()
				if err := os.MkdirAll(filepath.Join(root, "d/e"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "d/f"), []byte("the chute's"), 0o600); err != nil {
					t.Fatal(err)
				}
				swapped := false
				beforeList = func(rel string) {
					if rel != c.when {
						return
					}
					d := filepath.Join(root, "d")
					if err := os.Rename(d, d+".old"); err != nil {
						t.Error(err)
					}
					if err := os.Symlink(outside, d); err != nil {
						t.Error(err)
					}
					swapped = true
				}
				defer func() { beforeList = nil }()
				var buf bytes.Buffer
				w := NewWriter(&buf)
				_, _, err := w.Data(context.Background(), root, uint32(os.Getuid()), live)
				if live && err != nil {
					t.Fatalf("while the chute runs: %v", err)
				}
				if !swapped {
					t.Fatalf("the walk listed no directory %s", c.when)
				}
				for _, s := range secrets {
					if bytes.Contains(buf.Bytes(), []byte(s)) {
						t.Errorf("the stream carries %q from the host's directory", s)
					}
				}
			})
		}
	}
}

// TestExtractConfined: what a hostile source sends (or a hostile chute's
// /data carried as it was) writes, changes or removes nothing outside the
// target's /data: no file or directory is made, chmod'ed or removed
// through a symlink, absolute or relative, however the entries and rounds
// are ordered. A symlink's own entry is replaced or removed, never what
// it names.
func TestExtractConfined(t *testing.T) {
	pkg := &tar.Header{Name: KindPackage, Typeflag: tar.TypeReg, Size: 4}
	link := func(name, target string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
	}
	file := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o666, Size: 3}
	}
	dir := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o777} }
	const hostDir = "HOST"
	for _, c := range []struct {
		name string
		hdrs []*tar.Header // hostDir in a link's target: the host's directory
		want string        // in the error; "" for a stream taken
		kind string        // of dest/l when taken; "" for none
	}{
		{"file under a symlink", []*tar.Header{link("data/l", hostDir), file("data/l/new")}, "open its directory", ""},
		{"file under a relative symlink", []*tar.Header{link("data/l", "../host"), file("data/l/new")}, "open its directory", ""},
		{"directory under a symlink", []*tar.Header{link("data/l", hostDir), dir("data/l/newdir")}, "open its directory", ""},
		{"directory over a symlink", []*tar.Header{link("data/l", hostDir), dir("data/l")}, "not a directory", ""},
		{"delta directory over a symlink", []*tar.Header{link("data/l", hostDir), dir("delta/l")}, "not a directory", ""},
		{"delta file under a symlink", []*tar.Header{link("data/l", hostDir), file("delta/l/passwd")}, "open its directory", ""},
		{"directory become a symlink, a file under it", []*tar.Header{dir("data/l"), {Name: "deleted/l", Typeflag: tar.TypeReg}, link("delta/l", hostDir), file("delta/l/passwd")}, "open its directory", ""},
		{"deleting under a symlink", []*tar.Header{link("data/l", hostDir), {Name: "deleted/l/passwd", Typeflag: tar.TypeReg}}, "open its directory", ""},
		{"delta file over a symlink to a host file", []*tar.Header{link("data/l", hostDir+"/passwd"), file("delta/l")}, "", "file"},
		{"deleting a symlink to a host directory", []*tar.Header{link("data/l", hostDir), {Name: "deleted/l", Typeflag: tar.TypeReg}}, "", ""},
		{"deleting a directory holding a symlink", []*tar.Header{dir("data/l"), link("data/l/x", hostDir), {Name: "deleted/l", Typeflag: tar.TypeReg}}, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			host, dest := filepath.Join(base, "host"), filepath.Join(base, "dest")
			for _, d := range []string{filepath.Join(host, "sub"), dest} {
				if err := os.MkdirAll(d, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(host, "passwd"), []byte("host file"), 0o600); err != nil {
				t.Fatal(err)
			}
			hostBefore := digestTree(t, host)
			hdrs := []*tar.Header{pkg}
			for _, h := range c.hdrs {
				h := *h
				h.Linkname = strings.Replace(h.Linkname, hostDir, host, 1)
				hdrs = append(hdrs, &h)
			}
			_, _, _, err := readInto(t, craft(hdrs...), lim, dest)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
			hostAfter := digestTree(t, host)
			if fmt.Sprint(hostAfter) != fmt.Sprint(hostBefore) {
				t.Errorf("the host's directory changed:\n%v\nwas\n%v", hostAfter, hostBefore)
			}
			if names, _ := os.ReadDir(base); len(names) != 2 {
				t.Errorf("beside /data: %v", names)
			}
			if c.want != "" || err != nil {
				return
			}
			fi, err := os.Lstat(filepath.Join(dest, "l"))
			switch {
			case c.kind == "" && !errors.Is(err, os.ErrNotExist):
				t.Errorf("l left: %v, %v", fi, err)
			case c.kind == "file" && (err != nil || !fi.Mode().IsRegular()):
				t.Errorf("l: %v, %v; want a regular file", fi, err)
			}
		})
	}
}

// BenchmarkData: a pass over a /data of 4000 small files in 40
// directories, as a pre-copy round would walk and send it.
func BenchmarkData(b *testing.B) {
	root := b.TempDir()
	for d := range 40 {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), []byte("small"), 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, sent, err := NewWriter(io.Discard).Data(context.Background(), root, uint32(os.Getuid()), true); err != nil || sent.Entries != 4040 {
			b.Fatal(sent, err)
		}
	}
}

// TestWalkDepth: the walk holds a descriptor a level; a /data nested
// deeper than maxDepth is an error, not a daemon out of descriptors, and
// one as deep as that is sent whole.
func TestWalkDepth(t *testing.T) {
	for _, c := range []struct {
		levels int
		ok     bool
	}{{maxDepth, true}, {maxDepth + 1, false}} {
		t.Run(fmt.Sprint(c.levels), func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, strings.Repeat("d/", c.levels)), 0o700); err != nil {
				t.Fatal(err)
			}
			_, sent, err := NewWriter(io.Discard).Data(context.Background(), root, uint32(os.Getuid()), true)
			switch {
			case c.ok && (err != nil || sent.Entries != c.levels):
				t.Errorf("sent %+v, %v; want %d entries", sent, err, c.levels)
			case !c.ok && (err == nil || !strings.Contains(err.Error(), "deeper than")):
				t.Errorf("sent %+v, %v; want an error", sent, err)
			}
		})
	}
}
