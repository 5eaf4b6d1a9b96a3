package chute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/cgroup"
	"paradrop/chute/manifest"
	"paradrop/chute/sandbox/sandboxtest"
)

// Following a LAN device is a privilege: refused unless allowed, named in
// the error, and nothing to allow for a chute that follows none.
func TestPermitsFollow(t *testing.T) {
	man := &manifest.Manifest{Follow: &manifest.Follow{MAC: "02:00:00:00:00:0a"}}
	var pe *PrivilegeError
	if err := (Privileges{}).Permits(man); !errors.As(err, &pe) || !pe.Follow || !errors.Is(err, ErrForbidden) ||
		!strings.Contains(err.Error(), "follow") || pe.Devices != nil || pe.Capabilities != nil {
		t.Errorf("follow not allowed: %v", err)
	}
	if err := (Privileges{Follow: true}).Permits(man); err != nil {
		t.Errorf("follow allowed: %v", err)
	}
	if err := (Privileges{}).Permits(&manifest.Manifest{}); err != nil {
		t.Errorf("no follow: %v", err)
	}
}

func TestPermits(t *testing.T) {
	man := &manifest.Manifest{
		Devices:      []manifest.Device{{Path: "/dev/ttyUSB0", Access: "rw"}, {Path: "/dev/video0", Access: "r"}},
		Capabilities: []string{"NET_RAW", "NET_ADMIN"},
	}
	for _, tc := range []struct {
		name  string
		allow Privileges
		devs  []string
		caps  []string
	}{
		{"nothing allowed", Privileges{}, []string{"/dev/ttyUSB0", "/dev/video0"}, []string{"NET_RAW", "NET_ADMIN"}},
		{"some", Privileges{Devices: []string{"/dev/video0"}, Capabilities: []string{"cap_net_raw"}}, []string{"/dev/ttyUSB0"}, []string{"NET_ADMIN"}},
		{"all", Privileges{Devices: []string{"/dev/ttyUSB0", "/dev/video0"}, Capabilities: []string{"NET_RAW", "NET_ADMIN"}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.allow.Permits(man)
			var pe *PrivilegeError
			if tc.devs == nil && tc.caps == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.As(err, &pe) || !errors.Is(err, ErrForbidden) {
				t.Fatalf("error %v, want a PrivilegeError", err)
			}
			if !slices.Equal(pe.Devices, tc.devs) || !slices.Equal(pe.Capabilities, tc.caps) {
				t.Errorf("refused %v %v, want %v %v", pe.Devices, pe.Capabilities, tc.devs, tc.caps)
			}
			for _, w := range append(tc.devs, tc.caps...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not name %s", err, w)
				}
			}
		})
	}
}

const deviceProbe = `#!/bin/sh
head -c 7 /dev/sensor > /data/read 2>&1
(echo x > /dev/sensor) 2> /data/write
ls /dev | tr '\n' ' ' > /data/dev
grep CapEff /proc/self/status | cut -f2 > /data/caps
exec sleep 1000
`

// TestDeviceGate: a chute asking for a device and a capability is refused
// unless they are allowed; allowed, it reads its device (only: its access
// is r) and has the capability.
func TestDeviceGate(t *testing.T) {
	// The node has the host's usual owner and mode, root:disk 0660: the
	// chute still opens it, through its own node (see package sandbox).
	_, major, minor := sandboxtest.LoopDevice(t)
	dev := sandboxtest.DevNode(t, "paradrop-test-sensor", major, minor)
	man := fmt.Sprintf(`
name: sensor
version: 1.0.0
command: ["/probe.sh"]
devices: [{path: %s, inside: /dev/sensor, access: r}]
capabilities: [NET_RAW]
`, dev)
	p := pkg(t, man, map[string]string{"probe.sh": deviceProbe})

	g := newGateway(t, t.TempDir())
	_, err := g.m.Install(context.Background(), bytes.NewReader(p), Origin{})
	var pe *PrivilegeError
	if !errors.As(err, &pe) || !errors.Is(err, ErrForbidden) || !slices.Equal(pe.Devices, []string{dev}) || !slices.Equal(pe.Capabilities, []string{"NET_RAW"}) {
		t.Fatalf("install without allow: %v, want refused naming %s and NET_RAW", err, dev)
	}
	if len(g.m.List()) != 0 {
		t.Errorf("refused install left %v", g.m.List())
	}
	g.removeAll()

	g = newGatewayWith(t, t.TempDir(), func(c *Config) {
		c.Allow = Privileges{Devices: []string{dev}, Capabilities: []string{"NET_RAW"}}
	})
	defer g.removeAll()
	// The operator's installs have Config.Allow; another caller's, its own.
	if _, err := g.m.Install(context.Background(), bytes.NewReader(p), Origin{Allow: &Privileges{Devices: []string{dev}}}); !errors.As(err, &pe) || pe.Devices != nil {
		t.Fatalf("install allowed the device only: %v, want refused for NET_RAW only", err)
	}
	g.install(p)
	eventually(t, 10*time.Second, "probe results", func() bool { return readData(g, "sensor", "caps") != "" })
	for file, want := range map[string]string{
		"read":  "sensor!",
		"write": "/probe.sh: line 3: can't create /dev/sensor: Operation not permitted",
		"dev":   "fd full null ptmx pts random sensor shm stderr stdin stdout tty urandom zero",
		"caps":  "00000000200425fb",
	} {
		if got := readData(g, "sensor", file); got != want {
			t.Errorf("%s: %q, want %q", file, got, want)
		}
	}
	// The chute's cgroup allows the sandbox's devices and this one, read
	// only, and no other.
	if cgroup.Detect() == cgroup.V1 {
		list, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/devices", g.m.paths.cgroup("sensor"), "devices.list"))
		var st unix.Stat_t
		if err == nil {
			err = unix.Stat(dev, &st)
		}
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("c 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\nc 5:2 rwm\nc 136:* rwm\nb %d:%d r\n",
			unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
		if string(list) != want {
			t.Errorf("devices.list:\n%s\nwant\n%s", list, want)
		}
	}
	// An update asking for more than allowed is refused before anything
	// changes.
	more := strings.Replace(strings.Replace(man, "1.0.0", "1.1.0", 1), "[NET_RAW]", "[NET_RAW, NET_ADMIN]", 1)
	_, err = g.m.Update(context.Background(), "sensor", bytes.NewReader(pkg(t, more, map[string]string{"probe.sh": deviceProbe})), false, Origin{})
	if !errors.As(err, &pe) || !slices.Equal(pe.Capabilities, []string{"NET_ADMIN"}) {
		t.Errorf("update asking for NET_ADMIN: %v, want refused", err)
	}
}
