package ovs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paradrop/sdn/ovsdb"
)

// requireOVS fails (not skips) without the binaries: CI installs them, and a
// silently skipped test would hide a broken setup.
func requireOVS(t *testing.T) {
	t.Helper()
	if err := Installed(); err != nil {
		t.Fatalf("these tests need Open vSwitch: %v", err)
	}
}

func startOVS(t *testing.T, dir string) *Daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return d
}

func pids(t *testing.T, dir string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, p := range []process{dbServer, vswitchd} {
		if pid, ok := p.running(dir); ok {
			m[p.name] = pid
		}
	}
	return m
}

func TestStartAdoptStop(t *testing.T) {
	requireOVS(t)
	dir := t.TempDir()
	d := startOVS(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if got, want := d.DBSocket(), "unix:"+filepath.Join(dir, "db.sock"); got != want {
		t.Errorf("DBSocket() = %q, want %q", got, want)
	}
	if got, want := d.MgmtSocket("br0"), filepath.Join(dir, "br0.mgmt"); got != want {
		t.Errorf("MgmtSocket() = %q, want %q", got, want)
	}
	before := pids(t, dir)
	if len(before) != 2 {
		t.Fatalf("running after Start: %v, want both daemons", before)
	}

	// The root row exists, as after `ovs-vsctl init`: the real ovs-vsctl
	// can read it without --no-wait problems.
	out, err := exec.CommandContext(ctx, "ovs-vsctl", "--db="+d.DBSocket(), "--timeout=5", "get", "Open_vSwitch", ".", "_uuid").CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-vsctl get Open_vSwitch .: %v: %s", err, out)
	}

	// A second Start (as after a daemon restart) adopts the instance.
	d2, err := Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	after := pids(t, dir)
	if after["ovsdb-server"] != before["ovsdb-server"] || after["ovs-vswitchd"] != before["ovs-vswitchd"] {
		t.Fatalf("Start on a running instance: pids %v, want the adopted %v", after, before)
	}
	c, err := ovsdb.Dial(ctx, d2.DBSocket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Transact(ctx, ovsdb.VSwitchDB, ovsdb.Select("Open_vSwitch", nil, "_uuid"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res[0].Rows); n != 1 {
		t.Fatalf("Open_vSwitch rows after re-adoption: %d, want 1", n)
	}

	// If only ovs-vswitchd died, Start keeps the server and restarts it.
	if err := vswitchd.stop(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, dir); err != nil {
		t.Fatal(err)
	}
	after = pids(t, dir)
	if after["ovsdb-server"] != before["ovsdb-server"] || after["ovs-vswitchd"] == 0 || after["ovs-vswitchd"] == before["ovs-vswitchd"] {
		t.Fatalf("Start after ovs-vswitchd died: pids %v, before %v", after, before)
	}
	before = after

	if err := d2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if left := pids(t, dir); len(left) != 0 {
		t.Fatalf("processes left after Stop: %v", left)
	}
	for name, pid := range before {
		if isOurs(pid, filepath.Join(dir, name+".pid")) {
			t.Errorf("%s (pid %d) still runs after Stop", name, pid)
		}
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Error("client connection still up after Stop")
	}

	// Start after Stop reuses the database and brings both back.
	d3, err := Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := pids(t, dir); len(got) != 2 {
		t.Fatalf("running after restart: %v", got)
	}
	if err := d3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFind(t *testing.T) {
	requireOVS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	own := startOVS(t, t.TempDir())

	tests := []struct {
		name    string
		flag    string
		wantDB  func(dir string) string
		started bool
	}{
		{"answering socket is used", own.DBSocket(), func(string) string { return own.DBSocket() }, false},
		{"dead socket falls back to our own", "unix:" + filepath.Join(t.TempDir(), "none.sock"),
			func(dir string) string { return "unix:" + filepath.Join(dir, "db.sock") }, true},
		{"no flag starts our own", "", func(dir string) string { return "unix:" + filepath.Join(dir, "db.sock") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d, err := Find(ctx, tt.flag, dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Stop(context.Background()) })
			if got := d.DBSocket(); got != tt.wantDB(dir) {
				t.Errorf("DBSocket() = %q, want %q", got, tt.wantDB(dir))
			}
			if got := len(pids(t, dir)) == 2; got != tt.started {
				t.Errorf("started own instance = %v, want %v", got, tt.started)
			}
			if !tt.started && d.MgmtSocket("x") != own.MgmtSocket("x") {
				t.Errorf("MgmtSocket of found instance = %q, want %q", d.MgmtSocket("x"), own.MgmtSocket("x"))
			}
		})
	}
}

func TestHasKernelModule(t *testing.T) {
	// Ground truth: a loaded module, or (as on this project's VMs, whose
	// kernel lacks CONFIG_OPENVSWITCH) no module anywhere.
	_, loaded := os.Stat("/sys/module/openvswitch")
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	_, modDir := os.Stat(filepath.Join("/lib/modules", strings.TrimSpace(string(release))))
	switch {
	case loaded == nil && !HasKernelModule():
		t.Error("module loaded but HasKernelModule() = false")
	case loaded != nil && modDir != nil && HasKernelModule():
		t.Error("no module loaded nor installed but HasKernelModule() = true")
	}
}

func TestInstalledError(t *testing.T) {
	if _, err := lookBinary("ovs-no-such-binary"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("lookBinary(missing) = %v, want ErrNotInstalled", err)
	}
}
