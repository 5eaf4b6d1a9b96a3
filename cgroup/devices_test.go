package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"
)

// The v2 filter is the library's compilation of our rules: deny all by
// default, then exactly the devices allowed, each with its access.
func TestDeviceRulesV2Filter(t *testing.T) {
	rules, err := deviceRules([]Device{{Type: 'c', Major: 1, Minor: 3, Access: "rwm"}, {Type: 'b', Major: 7, Minor: 42, Access: "r"}, {Type: 'c', Major: 136, Minor: -1, Access: "rw"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rules[0]; r.Allow || r.Type != "a" || r.Access != "rwm" {
		t.Fatalf("first rule %+v, want deny all", r)
	}
	insts, license, err := cgroup2.DeviceFilter(rules)
	if err != nil {
		t.Fatal(err)
	}
	if license == "" {
		t.Error("no license")
	}
	prog := insts.String()
	// Block 7:42 read only: the program compares the type with 1 (block),
	// masks the access with read (2), and checks major 7, minor 42.
	for _, want := range []string{"JNEImm dst: r2 off: -1 imm: 1", "JNEImm dst: r4 off: -1 imm: 7", "JNEImm dst: r5 off: -1 imm: 42", "JNEImm dst: r4 off: -1 imm: 136"} {
		if !strings.Contains(prog, want) {
			t.Errorf("program lacks %q:\n%s", want, prog)
		}
	}
	// The last instruction, reached by no rule, denies.
	last := insts[len(insts)-1]
	prev := insts[len(insts)-2]
	if !strings.Contains(fmt.Sprint(prev), "MovImm32 dst: r0 imm: 0") || last.OpCode.String() != "Exit" {
		t.Errorf("program does not end in a denial:\n%s", prog)
	}
}

func TestDeviceRulesInvalid(t *testing.T) {
	for _, d := range []Device{{Type: 'a', Access: "r"}, {Type: 'c', Major: -2, Access: "r"}, {Type: 'c', Access: ""}, {Type: 'c', Access: "rx"}} {
		if _, err := deviceRules([]Device{d}); err == nil {
			t.Errorf("%+v accepted", d)
		}
	}
}

// A process of a limited group opens the devices allowed, with the access
// allowed, and no other: the kernel says EPERM.
func TestLimitDevicesDenies(t *testing.T) {
	parent := testParent(t)
	g := open(t, parent+"/dev", Resources{})
	// /dev/null is 1:3, /dev/zero 1:5: allow null read-write, zero read.
	if err := g.LimitDevices([]Device{{Type: 'c', Major: 1, Minor: 3, Access: "rw"}, {Type: 'c', Major: 1, Minor: 5, Access: "r"}}); err != nil {
		t.Fatal(err)
	}
	if Detect() == V1 {
		list := strings.Fields(readCtl(t, g, "devices.list"))
		if want := []string{"c", "1:3", "rw", "c", "1:5", "r"}; !slices.Equal(list, want) {
			t.Errorf("devices.list %q, want %q", list, want)
		}
	}
	p := startIn(t, g, sh(`
		for f in "</dev/null" ">/dev/null" "</dev/zero" ">/dev/zero" "</dev/full"; do
			if (eval "exec 3$f") 2>/dev/null; then echo "$f ok"; else echo "$f denied"; fi
		done 2>&1 | tr '\n' ,; echo; read _`))
	want := "</dev/null ok,>/dev/null ok,</dev/zero ok,>/dev/zero denied,</dev/full denied,"
	if got := p.readLine(t); got != want {
		t.Errorf("opens: %s\nwant:  %s", got, want)
	}
	// A mknod'ed copy of a denied device is denied as well (root here may
	// mknod): the rule is on the device number, not the path.
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	if err := unix.Mknod(full, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 7))); err != nil {
		t.Fatal(err)
	}
	q := startIn(t, g, sh(`if (exec 3<`+full+`) 2>/dev/null; then echo opened; else echo denied; fi; read _`))
	if got := q.readLine(t); got != "denied" {
		t.Errorf("mknod'ed /dev/full: %s, want denied", got)
	}
	_ = os.Remove(full)
}

// The v2 backend's filter on this host's cgroup2 mount (a hybrid host's
// unified hierarchy runs device filters too): a second LimitDevices
// replaces the first, it does not add to it.
func TestLimitDevicesV2OnHybrid(t *testing.T) {
	requireRoot(t)
	const mount = "/sys/fs/cgroup/unified"
	if Detect() == V2 {
		t.Skip("v2 host: TestLimitDevicesDenies covers the v2 backend")
	}
	if _, err := os.Stat(filepath.Join(mount, "cgroup.procs")); err != nil {
		t.Skip("no cgroup2 mount at " + mount)
	}
	path := fmt.Sprintf("/paradrop-test-dev-%d", os.Getpid())
	b := newV2(mount, path)
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := &Group{path: path, b: b}
	t.Cleanup(func() { g.Kill(); _ = os.Remove(b.dir) })
	probe := `for f in "</dev/null" ">/dev/null" "</dev/zero" "</dev/full"; do
			if (eval "exec 3$f") 2>/dev/null; then echo "$f ok"; else echo "$f denied"; fi
		done 2>&1 | tr '\n' ,; echo; read _`
	for _, tc := range []struct {
		allow []Device
		want  string
	}{
		{[]Device{{Type: 'c', Major: 1, Minor: 3, Access: "rw"}}, "</dev/null ok,>/dev/null ok,</dev/zero denied,</dev/full denied,"},
		{[]Device{{Type: 'c', Major: 1, Minor: 3, Access: "rw"}, {Type: 'c', Major: 1, Minor: 5, Access: "r"}}, "</dev/null ok,>/dev/null ok,</dev/zero ok,</dev/full denied,"},
	} {
		if err := g.LimitDevices(tc.allow); err != nil {
			t.Fatal(err)
		}
		p := startIn(t, g, sh(probe))
		if got := p.readLine(t); got != tc.want {
			t.Errorf("allow %v: %s\nwant: %s", tc.allow, got, tc.want)
		}
		p.cmd.Process.Kill()
		<-p.done
	}
}
