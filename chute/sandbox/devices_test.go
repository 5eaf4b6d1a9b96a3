package sandbox_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paradrop/cgroup"
	"paradrop/chute/sandbox"
	"paradrop/chute/sandbox/sandboxtest"
)

// deviceCgroup makes a test cgroup, named for the test, that allows the
// sandbox's devices and dev, and returns its path.
func deviceCgroup(t *testing.T, name string, dev cgroup.Device) string {
	t.Helper()
	path := fmt.Sprintf("/paradrop-sandbox-test-%s-%d", name, os.Getpid())
	g := testCgroup(t, path, cgroup.Resources{Pids: 64})
	if err := g.LimitDevices(append(append([]cgroup.Device(nil), sandbox.DefaultDevices...), dev)); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDevicePassthrough: a chute opens the device node it is given, with
// the access its cgroup grants, and no other: not a node of another number
// bound in on purpose, not one made with mknod, not the host's by path.
func TestDevicePassthrough(t *testing.T) {
	_, major, minor := sandboxtest.LoopDevice(t)
	// "other" is a loop minor far from any attached one: were the cgroup
	// to allow it, opening it would fail with ENXIO, not EPERM.
	dir := sandboxtest.NodeDir(t, map[string][2]uint32{"sensor": {major, minor}, "other": {major, 1<<20 - 1}})
	path := deviceCgroup(t, "dev", cgroup.Device{Type: 'b', Major: int64(major), Minor: int64(minor), Access: "r"})
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
	dir := sandboxtest.NodeDir(t, map[string][2]uint32{"sensor": {major, minor}})
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

// TestDeviceUsableByChuteUser: a device the chute is given is usable by
// the user the chute runs as, although the host's node is root:disk 0660:
// the chute reads and writes the very device (the host sees the write),
// while another device of its /dev, with the same owner but no cgroup
// rule, stays closed, and it can make no node of its own.
func TestDeviceUsableByChuteUser(t *testing.T) {
	host, major, minor := sandboxtest.WritableLoopDevice(t)
	dir := sandboxtest.NodeDir(t, map[string][2]uint32{"disk": {major, minor}, "other": {major, 1<<20 - 1}})
	path := deviceCgroup(t, "devrw", cgroup.Device{Type: 'b', Major: int64(major), Minor: int64(minor), Access: "rw"})
	s := newSpec(t, "devrw", fmt.Sprintf(`
		id -u
		stat -c '%%u:%%g %%a' /dev/disk /dev/other
		head -c 7 /dev/disk; echo
		printf 'written!' > /dev/disk && echo write ok
		(cat /dev/other) 2>&1
		(mknod /tmp/disk b %d %d) 2>&1
		grep ' /dev/disk ' /proc/self/mountinfo | cut -d' ' -f6`, major, minor))
	s.UID, s.GID = 1000, 1000
	s.CgroupPath = path
	s.Devices = []sandbox.DeviceNode{{Path: filepath.Join(dir, "disk"), Inside: "/dev/disk"}, {Path: filepath.Join(dir, "other"), Inside: "/dev/other"}}
	_, lines := runScript(t, s)
	want := []string{
		"1000",
		"1000:1000 660", "1000:1000 660",
		"sensor!",
		"write ok",
		"cat: can't open '/dev/other': Operation not permitted",
		"mknod: /tmp/disk: Operation not permitted",
		"rw,nosuid,noexec,relatime", // devices allowed on that one file's mount only
	}
	var got []string
	for _, l := range lines {
		got = append(got, strings.TrimPrefix(l, "stdout "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("chute printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	f, err := os.Open(host)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 8)
	if _, err := io.ReadFull(f, buf); err != nil || string(buf) != "written!" {
		t.Errorf("host reads %q (%v) from %s, want the chute's write", buf, err, host)
	}
}
