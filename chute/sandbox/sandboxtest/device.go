package sandboxtest

import (
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
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, []byte(strings.Repeat("sensor!\n", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", img).CombinedOutput()
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
