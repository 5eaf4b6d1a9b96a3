package volume

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The chute's root as seen from the host: the start of its uid range.
const chuteID = 100000

// prerequisites fails the test, rather than skipping it, when the machine
// cannot run volumes: that is a broken gateway, not an optional feature.
func prerequisites(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("volume tests need root")
	}
	for _, tool := range []string{"mkfs.ext4", "resize2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing: install e2fsprogs", tool)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Fatalf("no loop device support: %v", err)
	}
}

// newVolume returns an image path and mountpoint in a fresh directory,
// removed with the volume when the test ends.
func newVolume(t *testing.T) (image, mnt string) {
	t.Helper()
	prerequisites(t)
	dir := t.TempDir()
	// The chute's root must be able to reach its volume.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	image, mnt = filepath.Join(dir, "images", "data.img"), filepath.Join(dir, "data")
	t.Cleanup(func() {
		if err := Remove(image, mnt); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return image, mnt
}

func mustEnsure(t *testing.T, image, mnt string, size int64, id int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Ensure(ctx, image, mnt, size, id, id); err != nil {
		t.Fatalf("Ensure(%d): %v", size, err)
	}
}

// mountCount is how many mounts sit at mnt.
func mountCount(t *testing.T, mnt string) int {
	t.Helper()
	ms, err := mounts()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if m.mountpoint == mnt {
			n++
		}
	}
	return n
}

// asChute runs a shell command as the chute's root.
func asChute(script string) *exec.Cmd {
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: chuteID, Gid: chuteID}}
	return cmd
}

func TestQuotaEnforced(t *testing.T) {
	image, mnt := newVolume(t)
	const size = 16 << 20
	mustEnsure(t, image, mnt, size, chuteID)
	// Writing as the chute's root also shows the ownership took effect.
	out, err := asChute("dd if=/dev/zero of=" + mnt + "/fill bs=1M count=32").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "No space left on device") {
		t.Fatalf("dd of 32 MiB into a 16 MiB volume: %v, %s; want ENOSPC", err, out)
	}
	st, err := os.Stat(filepath.Join(mnt, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() >= size || st.Size() < 8<<20 {
		t.Fatalf("wrote %d bytes before ENOSPC, want 8 MiB..16 MiB", st.Size())
	}
	used, total, err := Usage(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if total > size || total < size*3/4 || used < total*9/10 {
		t.Fatalf("Usage = %d/%d after filling a %d volume", used, total, size)
	}
	// Named through a symlink to it or to its parent, it is the same
	// volume; a symlink to a plain directory is not mounted.
	links := t.TempDir()
	for name, target := range map[string]string{"vol": mnt, "parent": filepath.Dir(mnt), "plain": t.TempDir()} {
		if err := os.Symlink(target, filepath.Join(links, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(links, "vol"), filepath.Join(links, "parent", filepath.Base(mnt))} {
		if u, tot, err := Usage(p); err != nil || u != used || tot != total {
			t.Errorf("Usage(%s) = %d/%d, %v; want %d/%d", p, u, tot, err, used, total)
		}
	}
	if _, _, err := Usage(filepath.Join(links, "plain")); err == nil || !strings.Contains(err.Error(), "not mounted") {
		t.Errorf("Usage through a symlink to a plain directory: %v, want not mounted", err)
	}
	// The image stays sparse: the quota is a ceiling, not an allocation.
	img, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	if img.Size() != size {
		t.Fatalf("image size %d, want %d", img.Size(), size)
	}
}

func TestOwnerAndMountFlags(t *testing.T) {
	image, mnt := newVolume(t)
	for _, id := range []int{chuteID, chuteID + 65536} {
		mustEnsure(t, image, mnt, 16<<20, id)
		st, err := os.Stat(mnt)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if int(sys.Uid) != id || int(sys.Gid) != id {
			t.Fatalf("volume root owned by %d:%d, want %d:%d", sys.Uid, sys.Gid, id, id)
		}
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(mnt, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type != unix.EXT4_SUPER_MAGIC {
		t.Fatalf("filesystem type %#x, want ext4", sfs.Type)
	}
	// Flags is int32 on 386, arm and mipsle, int64 elsewhere.
	if want := int64(unix.ST_NODEV | unix.ST_NOSUID); int64(sfs.Flags)&want != want {
		t.Fatalf("mount flags %#x, want nodev and nosuid", sfs.Flags)
	}
}

func TestDataSurvivesRemount(t *testing.T) {
	image, mnt := newVolume(t)
	mustEnsure(t, image, mnt, 16<<20, chuteID)
	data := []byte(rand.Text())
	if err := os.WriteFile(filepath.Join(mnt, "keep"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // Unmount is idempotent
		if err := Unmount(mnt); err != nil {
			t.Fatal(err)
		}
	}
	if n := mountCount(t, mnt); n != 0 {
		t.Fatalf("%d mounts left at %s after Unmount", n, mnt)
	}
	if _, err := os.Stat(filepath.Join(mnt, "keep")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file visible with the volume unmounted: %v", err)
	}
	// Autoclear must have released the loop device.
	deadline := time.Now().Add(2 * time.Second)
	for {
		devs, err := loopsOf(resolve(image))
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("loop devices %v still hold the image after Unmount", devs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustEnsure(t, image, mnt, 16<<20, chuteID)
	got, err := os.ReadFile(filepath.Join(mnt, "keep"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after remount read %q, %v; want %q", got, err, data)
	}
}

func TestEnsureIdempotent(t *testing.T) {
	image, mnt := newVolume(t)
	for range 3 {
		mustEnsure(t, image, mnt, 16<<20, chuteID)
	}
	if n := mountCount(t, mnt); n != 1 {
		t.Fatalf("%d mounts at %s after three Ensures, want 1", n, mnt)
	}
	devs, err := loopsOf(resolve(image))
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 {
		t.Fatalf("image attached to %v, want one loop device", devs)
	}
	// A smaller size must neither shrink nor fail.
	mustEnsure(t, image, mnt, 8<<20, chuteID)
	if _, total, err := Usage(mnt); err != nil || total < 12<<20 {
		t.Fatalf("Usage after a smaller Ensure: total %d, %v", total, err)
	}
}

// A mounted volume grows online where this process has CAP_SYS_RESOURCE,
// and otherwise by unmounting and growing offline. The sandbox these tests
// were written in lacks that capability, so there only the offline path
// ran.
func TestGrow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mounted bool
	}{
		{"mounted", true},
		{"unmounted", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image, mnt := newVolume(t)
			mustEnsure(t, image, mnt, 16<<20, chuteID)
			data := []byte(strings.Repeat(rand.Text(), 1000))
			if err := os.WriteFile(filepath.Join(mnt, "keep"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, before, err := Usage(mnt)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.mounted {
				if err := Unmount(mnt); err != nil {
					t.Fatal(err)
				}
			}
			mustEnsure(t, image, mnt, 48<<20, chuteID)
			_, after, err := Usage(mnt)
			if err != nil {
				t.Fatal(err)
			}
			if after < before+28<<20 {
				t.Fatalf("total %d after growing from %d to 48 MiB", after, before)
			}
			if n := mountCount(t, mnt); n != 1 {
				t.Fatalf("%d mounts after growing, want 1", n)
			}
			got, err := os.ReadFile(filepath.Join(mnt, "keep"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("data changed by growing: %v", err)
			}
			// The new space is really usable.
			if out, err := asChute("dd if=/dev/zero of=" + mnt + "/more bs=1M count=24").CombinedOutput(); err != nil {
				t.Fatalf("writing 24 MiB into the grown volume: %v, %s", err, out)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	image, mnt := newVolume(t)
	mustEnsure(t, image, mnt, 16<<20, chuteID)
	for range 2 { // Remove is idempotent
		if err := Remove(image, mnt); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{image, mnt} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Remove: %v, want gone", p, err)
		}
	}
	if _, _, err := Usage(mnt); err == nil {
		t.Error("Usage of a removed volume succeeded")
	}
}

func TestEnsureRefuses(t *testing.T) {
	image, mnt := newVolume(t)
	other := filepath.Join(filepath.Dir(mnt), "other")
	// A mountpoint holding something else.
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", other, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(other, 0) })
	ctx := context.Background()
	if err := Ensure(ctx, image, other, 16<<20, chuteID, chuteID); err == nil {
		t.Fatal("Ensure over a tmpfs mount succeeded")
	}
	// The same image at a second mountpoint: two ext4 mounts of one image
	// through two loop devices would corrupt it.
	mustEnsure(t, image, mnt, 16<<20, chuteID)
	second := filepath.Join(filepath.Dir(mnt), "second")
	t.Cleanup(func() { os.Remove(second) })
	if err := Ensure(ctx, image, second, 16<<20, chuteID, chuteID); err == nil {
		unix.Unmount(second, 0)
		t.Fatal("Ensure mounted one image twice")
	}
	for _, tc := range []struct {
		name        string
		image, mnt  string
		size        int64
		uid         int
		errContains string
	}{
		{"relative image", "data.img", mnt, 16 << 20, 0, "absolute"},
		{"relative mountpoint", image, "data", 16 << 20, 0, "absolute"},
		{"too small", image, mnt, 1 << 20, 0, "below minimum"},
		{"negative owner", image, mnt, 16 << 20, -1, "invalid owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Ensure(ctx, tc.image, tc.mnt, tc.size, tc.uid, tc.uid)
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("Ensure = %v, want error containing %q", err, tc.errContains)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/plain", "/plain"},
		{`/with\040space`, "/with space"},
		{`/tab\011and\134backslash`, "/tab\tand\\backslash"},
		{`/short\04`, `/short\04`},
	} {
		if got := unescape(tc.in); got != tc.want {
			t.Errorf("unescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A volume moved to another mountpoint, its image renamed, keeps what was
// written to it (not yet written back), is mounted once, nodev and nosuid,
// at the new place only, and Ensure takes it as the image's mount there.
func TestMove(t *testing.T) {
	image, mnt := newVolume(t)
	staged, stagedImage := filepath.Join(filepath.Dir(mnt), "staged"), filepath.Join(filepath.Dir(image), "staged.img")
	mustEnsure(t, stagedImage, staged, 8<<20, chuteID)
	if err := os.WriteFile(filepath.Join(staged, "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(stagedImage, image); err != nil {
		t.Fatal(err)
	}
	if err := Move(staged, mnt); err != nil {
		t.Fatal(err)
	}
	if n := mountCount(t, resolve(staged)); n != 0 {
		t.Errorf("still mounted at the staged place: %d", n)
	}
	if n := mountCount(t, resolve(mnt)); n != 1 {
		t.Errorf("%d mounts at %s, want 1", n, mnt)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil || st.Flags&unix.ST_NODEV == 0 || st.Flags&unix.ST_NOSUID == 0 {
		t.Errorf("mount at %s: flags %#x %v, want nodev and nosuid", mnt, st.Flags, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "f")); string(b) != "kept" {
		t.Errorf("after the move: %q %v", b, err)
	}
	mustEnsure(t, image, mnt, 8<<20, chuteID)
	if n := mountCount(t, resolve(mnt)); n != 1 {
		t.Errorf("Ensure after the move: %d mounts, want 1", n)
	}
	if err := Move(staged, mnt); err == nil {
		t.Error("moved a volume that is not mounted")
	}
}

// Usage tells a mount point from the directory under it without reading
// the host's mount table: an existing directory that is not mounted must
// not report the filesystem it sits on.
func TestUsageNeedsAMount(t *testing.T) {
	if _, _, err := Usage(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not mounted") {
		t.Errorf("Usage of a plain directory: %v, want not mounted", err)
	}
	for p, want := range map[string]bool{"/proc": true, "/": true, t.TempDir(): false} {
		root, known, err := isMountRoot(p)
		if err != nil {
			t.Fatal(err)
		}
		if known && root != want {
			t.Errorf("isMountRoot(%s) = %v, want %v", p, root, want)
		}
		if m, err := mountAt(p); err == nil && known && (m != nil) != root {
			t.Errorf("isMountRoot(%s) = %v, mountinfo says %v", p, root, m != nil)
		}
	}
}
