package sandbox_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"paradrop/cgroup"
	"paradrop/chute/sandbox"
	"paradrop/chute/sandbox/sandboxtest"
)

// nodeDir is a tmpfs (devices allowed, unlike t.TempDir's /tmp maybe)
// holding block device nodes anyone may open, as far as modes go.
func nodeDir(t *testing.T, nodes map[string][2]uint32) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755,size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	for name, n := range nodes {
		path := filepath.Join(dir, name)
		if err := unix.Mknod(path, unix.S_IFBLK|0o666, int(unix.Mkdev(n[0], n[1]))); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDevicePassthrough: a chute opens the device node it is given, with
// the access its cgroup grants, and no other: not a node of another number
// bound in on purpose, not one made with mknod, not the host's by path.
func TestDevicePassthrough(t *testing.T) {
	_, major, minor := sandboxtest.LoopDevice(t)
	// "other" is a loop minor far from any attached one: were the cgroup
	// to allow it, opening it would fail with ENXIO, not EPERM.
	dir := nodeDir(t, map[string][2]uint32{"sensor": {major, minor}, "other": {major, 1<<20 - 1}})
	path := fmt.Sprintf("/paradrop-sandbox-test-dev-%d", os.Getpid())
	g := testCgroup(t, path, cgroup.Resources{Pids: 64})
	allow := append(append([]cgroup.Device(nil), sandbox.DefaultDevices...), cgroup.Device{Type: 'b', Major: int64(major), Minor: int64(minor), Access: "r"})
	if err := g.LimitDevices(allow); err != nil {
		t.Fatal(err)
	}
	s := newSpec(t, "devices", fmt.Sprintf(`
		ls /dev /dev/usb
		head -c 8 /dev/usb/sensor
		(echo x > /dev/usb/sensor) 2>&1
		(cat /dev/other) 2>&1
		(mknod /tmp/sensor b %d %d) 2>&1
		(cat %s/sensor) 2>&1
		echo x > /dev/null && echo null ok`, major, minor, dir))
	s.CgroupPath = path
	s.Devices = []sandbox.DeviceNode{{Path: filepath.Join(dir, "sensor"), Inside: "/dev/usb/sensor"}, {Path: filepath.Join(dir, "other"), Inside: "/dev/other"}}
	_, lines := runScript(t, s)
	want := []string{
		"/dev:", "fd", "full", "null", "other", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "usb", "zero", "",
		"/dev/usb:", "sensor",
		"sensor!",
		"/bin/sh: can't create /dev/usb/sensor: Operation not permitted",
		"cat: can't open '/dev/other': Operation not permitted",
		"mknod: /tmp/sensor: Operation not permitted",
		fmt.Sprintf("cat: can't open '%s/sensor': No such file or directory", dir),
		"null ok",
	}
	var got []string
	for _, l := range lines {
		got = append(got, strings.TrimPrefix(l, "stdout "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("chute printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A chute without devices has only the sandbox's /dev, and the host's
// node is out of its reach.
func TestNoDeviceNoNode(t *testing.T) {
	_, major, minor := sandboxtest.LoopDevice(t)
	dir := nodeDir(t, map[string][2]uint32{"sensor": {major, minor}})
	s := newSpec(t, "nodevices", fmt.Sprintf(`ls /dev | tr '\n' ' '; echo; (cat %s/sensor) 2>&1; (mknod /tmp/s b %d %d) 2>&1`, dir, major, minor))
	_, lines := runScript(t, s)
	want := []string{
		"stdout fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ",
		fmt.Sprintf("stdout cat: can't open '%s/sensor': No such file or directory", dir),
		"stdout mknod: /tmp/s: Operation not permitted",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("chute printed\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestDeviceSpecRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		dev  sandbox.DeviceNode
		want string
	}{
		{"not a device", sandbox.DeviceNode{Path: "/etc", Inside: "/dev/etc"}, "not a device node"},
		{"regular file", sandbox.DeviceNode{Path: "/etc/hostname", Inside: "/dev/h"}, "not a device node"},
		{"over null", sandbox.DeviceNode{Path: "/dev/zero", Inside: "/dev/null"}, "the place is taken"},
		{"outside dev", sandbox.DeviceNode{Path: "/dev/zero", Inside: "/etc/zero"}, "clean path under /dev/"},
		{"dotdot", sandbox.DeviceNode{Path: "/dev/zero", Inside: "/dev/../etc/zero"}, "clean path under /dev/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpec(t, "refused", "true")
			s.Devices = []sandbox.DeviceNode{tc.dev}
			_, err := sandbox.Start(t.Context(), s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// An extra capability is in the chute's effective set only when asked for.
func TestExtraCapability(t *testing.T) {
	for _, tc := range []struct {
		caps []string
		want string
	}{
		{nil, "CapEff:\t00000000200405fb"},
		{[]string{"NET_RAW"}, "CapEff:\t00000000200425fb"},
	} {
		s := newSpec(t, "caps", `grep CapEff /proc/self/status`)
		s.Caps = tc.caps
		if _, lines := runScript(t, s); strings.Join(lines, "") != "stdout "+tc.want {
			t.Errorf("caps %v: %q, want %q", tc.caps, lines, tc.want)
		}
	}
	s := newSpec(t, "caps", "true")
	s.Caps = []string{"NET_RAWW"}
	if _, err := sandbox.Start(t.Context(), s); err == nil || !strings.Contains(err.Error(), "unknown capability") {
		t.Errorf("unknown capability: %v", err)
	}
}
