package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// plenty is a filesystem with room for anything the tests write.
func plenty(string) (free, size int64, err error) { return 1 << 40, 1 << 41, nil }

func newDest(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "dest")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// bomb is a gzipped package whose one file unpacks to size bytes of zeros.
func bomb(t *testing.T, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "chute.yaml", Mode: 0o644, Size: int64(len(manifest)), Typeflag: tar.TypeReg})
	tw.Write([]byte(manifest))
	tw.WriteHeader(&tar.Header{Name: "rootfs/zero", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
	if _, err := io.CopyN(tw, zeros{}, size); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return gz(t, buf.Bytes())
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// dirBytes is what the files under dir take.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// Two uploads being unpacked at once share one budget: what fits alone
// is refused while another holds the room, and fits again once it is done.
func TestSpaceSharedAcrossExtracts(t *testing.T) {
	sp := NewSpace(t.TempDir(), 1000)
	sp.statfs = plenty
	body := strings.Repeat("x", 600)

	// The first upload sends its file, then waits before its end.
	head := mkTar(t, ent{name: "chute.yaml", body: manifest}, ent{name: "rootfs/a", body: body})
	head = head[:len(head)-1024] // without the end-of-archive blocks
	pr, pw := io.Pipe()
	go func() {
		pw.Write(head)
	}()
	done := make(chan error, 1)
	go func() {
		_, err := Extract(context.Background(), pr, newDest(t), Limits{Space: sp})
		done <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		sp.mu.Lock()
		taken := sp.taken
		sp.mu.Unlock()
		if taken == 600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first upload took %d bytes, want 600", taken)
		}
	}

	second := mkTar(t, ent{name: "chute.yaml", body: manifest}, ent{name: "rootfs/b", body: body})
	_, err := Extract(context.Background(), bytes.NewReader(second), newDest(t), Limits{Space: sp})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "--max-unpacked") {
		t.Fatalf("second upload while the first holds 600 of 1000 bytes: %v, want ErrTooLarge naming --max-unpacked", err)
	}

	pw.Write(make([]byte, 1024))
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("first upload: %v", err)
	}
	if _, err := Extract(context.Background(), bytes.NewReader(second), newDest(t), Limits{Space: sp}); err != nil {
		t.Fatalf("second upload once the first is done: %v", err)
	}
	if sp.taken != 0 || sp.inFlight != 0 {
		t.Errorf("after both: %d taken, %d in flight, want 0", sp.taken, sp.inFlight)
	}
}

// A gzip bomb is refused before it is written once it does not fit in the
// free space, whatever the byte budget allows.
func TestSpaceBoundByFreeSpace(t *testing.T) {
	sp := NewSpace(t.TempDir(), 1<<40)
	sp.statfs = func(string) (int64, int64, error) { return 10 << 20, 100 << 20, nil }
	dest := newDest(t)
	_, err := Extract(context.Background(), bytes.NewReader(bomb(t, 64<<20)), dest, Limits{Space: sp})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "free on the data filesystem") {
		t.Fatalf("64 MiB into 10 MiB free: %v, want ErrTooLarge about free space", err)
	}
	if n := dirBytes(t, dest); n != 0 {
		t.Errorf("%d bytes written before the refusal", n)
	}
	// 4 MiB fit: 10 MiB free less the 5 MiB kept.
	if _, err := Extract(context.Background(), bytes.NewReader(bomb(t, 4<<20)), newDest(t), Limits{Space: sp}); err != nil {
		t.Errorf("4 MiB into 10 MiB free, 5 kept: %v", err)
	}
}

// The same on a real small filesystem: a bomb does not fill it.
func TestSpaceOnSmallFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	dest := filepath.Join(dir, "dest")
	os.Mkdir(dest, 0o700)
	_, err := Extract(context.Background(), bytes.NewReader(bomb(t, 100<<20)), dest, Limits{Space: NewSpace(dir, 1<<30)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("100 MiB bomb into a 16 MiB filesystem: %v, want ErrTooLarge", err)
	}
	var st unix.Statfs_t
	unix.Statfs(dir, &st)
	if used := (st.Blocks - st.Bfree) * uint64(st.Bsize); used > 1<<20 {
		t.Errorf("the refused bomb left %d bytes on the filesystem", used)
	}
}
