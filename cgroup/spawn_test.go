package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
)

// spawnIn starts `sleep 30` with attr (nil for none) and SpawnIn on a
// locked thread and returns its /proc/PID/cgroup, and the thread's own
// before and after.
func spawnIn(t *testing.T, g *Group, attr *syscall.SysProcAttr) (child, before, after string, err error) {
	t.Helper()
	type result struct {
		child, before, after string
		err                  error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine if it could not go home
		var r result
		defer func() {
			b, err := os.ReadFile("/proc/thread-self/cgroup")
			r.after, r.err = string(b), errors.Join(r.err, err)
			// A thread left in the group (this may be the main thread, which
			// outlives its goroutine) must not be frozen by the cleanup's Kill.
			if home, err := cgroup1.ParseCgroupFile("/proc/thread-self/cgroup"); err == nil && len(inGroup(r.after, g.Path())) > 0 {
				for c, p := range home {
					moveSelf(filepath.Join(v1Mount, c, p))
				}
			}
			res <- r
		}()
		b, err := os.ReadFile("/proc/thread-self/cgroup")
		if err != nil {
			r.err = err
			return
		}
		r.before = string(b)
		cmd := exec.Command("sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{}
		if attr != nil {
			cmd.SysProcAttr = attr
		}
		done, err := g.SpawnIn(cmd.SysProcAttr)
		if err != nil {
			r.err = err
			return
		}
		startErr := cmd.Start()
		if err := errors.Join(startErr, done()); err != nil {
			r.err = err
			return
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		b, err = os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
		if err != nil {
			r.err = err
			return
		}
		r.child = string(b)
	}()
	r := <-res
	return r.child, r.before, r.after, r.err
}

// inGroup reports the hierarchies of a /proc/PID/cgroup text that place
// the process in path.
func inGroup(procCgroup, path string) []string {
	var in []string
	for _, l := range strings.Split(strings.TrimSpace(procCgroup), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && f[2] == path {
			in = append(in, f[1])
		}
	}
	return in
}

// A process started with SpawnIn is in the group in every hierarchy from
// its birth, and the thread that started it is back where it was.
func TestSpawnIn(t *testing.T) {
	parent := testParent(t)
	g := open(t, filepath.Join(parent, "born"), Resources{Pids: 8})
	child, before, after, err := spawnIn(t, g, chuteLike())
	if err != nil {
		t.Fatal(err)
	}
	want := 1
	if v1, ok := g.b.(*v1Group); ok {
		want = len(v1.subs)
	}
	if in := inGroup(child, g.Path()); len(in) != want {
		t.Errorf("child in %s in %v of its hierarchies, want %d:\n%s", g.Path(), in, want, child)
	}
	if before != after {
		t.Errorf("starting thread's cgroups changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	if in := inGroup(after, g.Path()); len(in) != 0 {
		t.Errorf("starting thread still in %s in %v", g.Path(), in)
	}
}

// SpawnIn's visit writes the hierarchies' tasks files without truncating
// them: a truncating open of a cgroupfs file is a setattr, under a lock of
// the whole hierarchy, which made up a third of a visit's CPU (14 moves a
// chute's start on v1). The kernel stamps a setattr in the file's times.
func TestSpawnInLeavesTasksFilesAlone(t *testing.T) {
	if Detect() == V2 {
		t.Skip("v2 spawns with CLONE_INTO_CGROUP: no visit")
	}
	parent := testParent(t)
	g := open(t, filepath.Join(parent, "visited"), Resources{Pids: 8})
	// The group's own: the thread's home ones, the hierarchies' roots
	// most likely, are written by any other process moving about.
	var files []string
	for _, s := range g.b.(*v1Group).subs {
		files = append(files, filepath.Join(v1Mount, string(s.Name()), g.Path(), "tasks"))
	}
	times := func() map[string]string {
		m := map[string]string{}
		for _, f := range files {
			var st syscall.Stat_t
			if err := syscall.Stat(f, &st); err != nil {
				t.Fatal(err)
			}
			m[f] = fmt.Sprint(st.Mtim, st.Ctim)
		}
		return m
	}
	before := times()
	time.Sleep(20 * time.Millisecond) // past the coarse clock's tick
	if _, _, _, err := spawnIn(t, g, nil); err != nil {
		t.Fatal(err)
	}
	after := times()
	for _, f := range files {
		if before[f] != after[f] {
			t.Errorf("%s: times %s, now %s: its attributes were set", f, before[f], after[f])
		}
	}
}

// With a pids limit of one the thread's own visit would leave the child no
// room: SpawnIn declines, for the caller to Add the process instead.
func TestSpawnInDeclinesPidsLimitOne(t *testing.T) {
	if Detect() == V2 {
		t.Skip("v2 spawns with CLONE_INTO_CGROUP: no visit")
	}
	parent := testParent(t)
	g := open(t, filepath.Join(parent, "one"), Resources{Pids: 1})
	_, before, after, err := spawnIn(t, g, nil)
	if !errors.Is(err, ErrSpawnInUnsupported) {
		t.Fatalf("SpawnIn with pids.max 1: %v, want ErrSpawnInUnsupported", err)
	}
	if before != after {
		t.Errorf("starting thread's cgroups changed:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// chuteLike asks for the namespaces a chute's init is cloned with, a user
// namespace mapped as the shim maps it among them.
func chuteLike() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0x7100_0000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0x7100_0000, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	}
}

// CLONE_INTO_CGROUP (clone3) on the controller-less v2 hierarchy of a
// hybrid host, with a chute's namespaces.
func TestSpawnInV2OnHybrid(t *testing.T) {
	g, _ := hybridV2Group(t)
	t.Cleanup(func() { g.Kill() })
	child, before, after, err := spawnIn(t, g, chuteLike())
	if err != nil {
		t.Fatal(err)
	}
	if in := inGroup(child, g.Path()); len(in) != 1 || in[0] != "" {
		t.Errorf("child not in v2 group %s:\n%s", g.Path(), child)
	}
	if before != after {
		t.Errorf("starting thread's cgroups changed:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// A thread that writes "0" to each of a group's TaskFiles is in the group
// in every hierarchy; on v2 there are none to give.
func TestTaskFiles(t *testing.T) {
	if Detect() == V2 {
		g := open(t, filepath.Join(testParent(t), "movers"), Resources{})
		if _, err := g.TaskFiles(); !errors.Is(err, ErrSpawnInUnsupported) {
			t.Fatalf("TaskFiles on v2: %v, want ErrSpawnInUnsupported", err)
		}
		return
	}
	g := open(t, filepath.Join(testParent(t), "movers"), Resources{Pids: 8})
	files, err := g.TaskFiles()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if want := len(g.b.(*v1Group).subs); len(files) != want {
		t.Fatalf("%d tasks files, want one per hierarchy: %d", len(files), want)
	}
	got := make(chan string, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		home, err := cgroup1.ParseCgroupFile("/proc/thread-self/cgroup")
		if err != nil {
			got <- err.Error()
			return
		}
		for _, f := range files {
			if _, err := f.Write([]byte("0")); err != nil {
				got <- err.Error()
				return
			}
		}
		b, _ := os.ReadFile("/proc/thread-self/cgroup")
		for c, p := range home {
			moveSelf(filepath.Join(v1Mount, c, p))
		}
		got <- string(b)
	}()
	if in := <-got; len(inGroup(in, g.Path())) != len(files) {
		t.Errorf("thread in %s in %v of its hierarchies, want %d:\n%s", g.Path(), inGroup(in, g.Path()), len(files), in)
	}
}
