package sandboxtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// LoopDevice attaches a read-only loop device to a small image whose
// bytes are "sensor!\n" over and over, detached when the test ends, and
// returns its path and numbers: a real device node for passthrough tests.
func LoopDevice(t *testing.T) (path string, major, minor uint32) {
	t.Helper()
	return loopDevice(t, "--read-only")
}

func loopDevice(t *testing.T, flags ...string) (path string, major, minor uint32) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, []byte(strings.Repeat("sensor!\n", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", append([]string{"--find", "--show"}, append(flags, img)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	path = strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", path).Run() })
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return path, unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
}

// WritableLoopDevice is LoopDevice read-write: the chute's writes reach
// the image, and the host sees them through path.
func WritableLoopDevice(t *testing.T) (path string, major, minor uint32) {
	t.Helper()
	return loopDevice(t)
}

// NodeDir is a tmpfs (devices allowed, unlike /tmp maybe) holding block
// device nodes of the given numbers by name, as a host has them: root:disk
// 0660, which no uid of a chute's user namespace may open by its modes.
// (Nodes made by udev may be laxer: a test must not count on that.)
func NodeDir(t *testing.T, nodes map[string][2]uint32) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755,size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	for name, n := range nodes {
		diskNode(t, filepath.Join(dir, name), n[0], n[1])
	}
	return dir
}

// DevNode makes /dev/NAME-PID a block device node of the given number as
// NodeDir makes them, removed when the test ends: for manifests, which
// name devices under /dev only.
func DevNode(t *testing.T, name string, major, minor uint32) string {
	t.Helper()
	path := fmt.Sprintf("/dev/%s-%d", name, os.Getpid())
	t.Cleanup(func() { os.Remove(path) })
	diskNode(t, path, major, minor)
	return path
}

// diskNode makes path a block device node owned root:disk, mode 0660.
func diskNode(t *testing.T, path string, major, minor uint32) {
	t.Helper()
	if err := unix.Mknod(path, unix.S_IFBLK|0o660, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, diskGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		t.Fatal(err)
	}
}

// diskGID is Debian's disk group, the usual group of block devices.
const diskGID = 6
