package pid1

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func fullPlan() *Plan {
	var p Plan
	p.Unshare("unshare", 0x02000000)
	p.Sethostname("hostname", "web")
	p.Mountpoint("mp", "/r/proc", true)
	p.Mount("mount", "proc", "/r/proc", "proc", 14, "")
	p.RemountRO("ro", "/r/paradrop")
	p.Create("create", "/r/dev/null", 0o666)
	p.Mkdir("mkdir", "/r/dev/pts", 0o755)
	p.Symlink("symlink", "/proc/self/fd", "/r/dev/fd")
	p.PivotRoot("pivot", "/r")
	p.Mask("mask", "/proc/kcore")
	p.Readonly("readonly", "/proc/sys")
	p.Unmount("unmount", "/r/tmp")
	p.Rlimit("rlimit", 7, 1024, 1<<63)
	p.Caps("caps", 0xa80425fb)
	p.SetIDs("ids", 1000, 1001)
	p.Chdir("chdir", "/data")
	p.Seccomp("seccomp", []byte{1, 2, 3, 4, 5, 6, 7, 8})
	p.Fchdir("fchdir", 5)
	p.Attach("attach", 5, "/")
	p.Door("door", 5, 6)
	p.Exec(`exec "sh"`, true, []string{"/bin/sh", "/usr/bin/sh"}, []string{"sh", "-c", ""}, nil)
	return &p
}

func TestPlanRoundTrip(t *testing.T) {
	steps, err := decode(fullPlan().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []step{
		{code: opUnshare, what: "unshare", n: []uint64{0x02000000}},
		{code: opSethostname, what: "hostname", s: []string{"web"}},
		{code: opMountpoint, what: "mp", s: []string{"/r/proc"}, n: []uint64{1}},
		{code: opMount, what: "mount", s: []string{"proc", "/r/proc", "proc", ""}, n: []uint64{14}},
		{code: opRemountRO, what: "ro", s: []string{"/r/paradrop"}},
		{code: opCreate, what: "create", s: []string{"/r/dev/null"}, n: []uint64{0o666}},
		{code: opMkdir, what: "mkdir", s: []string{"/r/dev/pts"}, n: []uint64{0o755}},
		{code: opSymlink, what: "symlink", s: []string{"/proc/self/fd", "/r/dev/fd"}},
		{code: opPivotRoot, what: "pivot", s: []string{"/r"}},
		{code: opMask, what: "mask", s: []string{"/proc/kcore"}},
		{code: opReadonly, what: "readonly", s: []string{"/proc/sys"}},
		{code: opUnmount, what: "unmount", s: []string{"/r/tmp"}},
		{code: opRlimit, what: "rlimit", n: []uint64{7, 1024, 1 << 63}},
		{code: opCaps, what: "caps", n: []uint64{0xa80425fb}},
		{code: opSetIDs, what: "ids", n: []uint64{1000, 1001}},
		{code: opChdir, what: "chdir", s: []string{"/data"}},
		{code: opSeccomp, what: "seccomp", s: []string{"\x01\x02\x03\x04\x05\x06\x07\x08"}},
		{code: opFchdir, what: "fchdir", n: []uint64{5}},
		{code: opAttach, what: "attach", n: []uint64{5}, s: []string{"/"}},
		{code: opDoor, what: "door", n: []uint64{5, 6}},
		{code: opExec, what: `exec "sh"`, n: []uint64{1}, l: [][]string{{"/bin/sh", "/usr/bin/sh"}, {"sh", "-c", ""}, {}}},
	}
	if !reflect.DeepEqual(steps, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", steps, want)
	}
}

// A plan cut anywhere, or with an unknown operation, is refused whole, so
// that init never carries out part of it.
func TestPlanMalformed(t *testing.T) {
	b := fullPlan().Bytes()
	for n := 1; n < len(b); n++ {
		if steps, err := decode(b[:n]); err == nil && len(steps) == 23 {
			t.Fatalf("a plan cut at %d of %d bytes decodes whole", n, len(b))
		}
	}
	for _, bad := range [][]byte{{0}, {byte(len(layouts)), 0, 0, 0, 0}, {opMount, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := decode(bad); err == nil {
			t.Errorf("plan %v decodes", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(fullPlan().Bytes())
	f.Add([]byte{opExec, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		steps, err := decode(b)
		if err != nil {
			return
		}
		for _, st := range steps {
			if len(st.n)+len(st.s)+len(st.l) != len(layouts[st.code]) {
				t.Fatalf("step %+v does not have its layout's arguments", st)
			}
		}
	})
}

// The syscall package does not number move_mount; ours must be the
// kernel's on every architecture (go vet with GOARCH set builds this).
func TestMoveMountNumber(t *testing.T) {
	if sysMoveMount != unix.SYS_MOVE_MOUNT {
		t.Errorf("sysMoveMount = %d, want %d", sysMoveMount, unix.SYS_MOVE_MOUNT)
	}
}
