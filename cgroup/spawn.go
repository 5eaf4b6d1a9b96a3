package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"
)

// ErrSpawnInUnsupported: the group cannot take a process at its birth
// (see SpawnIn); Add it once started instead.
var ErrSpawnInUnsupported = errors.New("cannot start a process directly in the cgroup")

// SpawnIn arranges for the process about to be started with attr, by the
// calling OS thread, to be born in the group, so that it never runs
// outside and needs no Add. Add is the slow way on a chute's start: on v1
// a pid written to cgroup.procs takes the kernel's global threadgroup lock
// for writing, which waits for an RCU grace period (8 ms for a chute's six
// hierarchies on a loaded 2-CPU VM, against 0.2 ms this way).
//
// On v2, attr gets clone3's CLONE_INTO_CGROUP (Linux 5.7). On v1, the
// calling thread, which must stay locked to its goroutine until done is
// called, moves itself into the group (a thread writing 0 to tasks takes
// no global lock), so that what it forks is born there; done moves it back
// to the groups it came from. Call done once the process is started,
// whether or not that worked; a thread done fails to move back must not be
// reused (let its goroutine end locked). An error wrapping
// ErrSpawnInUnsupported says to start the process outside and Add it.
func (g *Group) SpawnIn(attr *syscall.SysProcAttr) (done func() error, err error) {
	switch b := g.b.(type) {
	case *v2Group:
		return b.spawnIn(attr)
	case *v1Group:
		return b.spawnIn()
	}
	return nil, ErrSpawnInUnsupported
}

func (g *v2Group) spawnIn(attr *syscall.SysProcAttr) (func() error, error) {
	if !kernelAtLeast(5, 7) {
		return nil, fmt.Errorf("%w: CLONE_INTO_CGROUP needs Linux 5.7", ErrSpawnInUnsupported)
	}
	fd, err := unix.Open(g.dir, unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spawn in cgroup %q: %w", g.path, err)
	}
	attr.UseCgroupFD, attr.CgroupFD = true, fd
	return func() error { return syscall.Close(fd) }, nil
}

func (g *v1Group) spawnIn() (func() error, error) {
	// The thread counts in pids.current while it is in there: with a limit
	// of one, the process could not be forked.
	if b, err := os.ReadFile(filepath.Join(g.dir(string(cgroup1.Pids)), "pids.max")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < 2 {
			return nil, fmt.Errorf("%w: pids.max %d", ErrSpawnInUnsupported, n)
		}
	}
	home, err := cgroup1.ParseCgroupFile("/proc/thread-self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("spawn in cgroup %q: %w", g.path, err)
	}
	var entered []string
	leave := func() error {
		var errs []error
		for _, c := range entered {
			errs = append(errs, moveSelf(filepath.Join(v1Mount, c, home[c])))
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("leave cgroup %q: %w", g.path, err)
		}
		return nil
	}
	for _, s := range g.subs {
		c := string(s.Name())
		if _, ok := home[c]; !ok {
			leave()
			return nil, fmt.Errorf("spawn in cgroup %q: this thread has no %s cgroup", g.path, c)
		}
		if err := moveSelf(g.dir(c)); err != nil {
			if lerr := leave(); lerr != nil {
				err = errors.Join(err, lerr)
			}
			return nil, fmt.Errorf("spawn in cgroup %q: %w", g.path, err)
		}
		entered = append(entered, c)
	}
	return leave, nil
}

// moveSelf moves the calling thread, alone, into the v1 group at dir.
func moveSelf(dir string) error {
	return writeControl(filepath.Join(dir, "tasks"), "0")
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(major, minor int) bool {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return false
	}
	var rel []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	var ma, mi int
	if _, err := fmt.Sscanf(string(rel), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// TaskFiles opens, write-only, the tasks file of each v1 hierarchy of the
// group, for a thread of another process to move itself into the group by
// writing "0" to each (as SpawnIn's own thread does, with no global
// lock). The kernel checks such a write against the credentials of the
// file's opener, so a process that could not open them (a chute's init in
// its user namespace) can still be handed them. On v2, where a thread
// cannot move alone and moving a process takes the global lock, it
// returns an error wrapping ErrSpawnInUnsupported.
func (g *Group) TaskFiles() ([]*os.File, error) {
	b, ok := g.b.(*v1Group)
	if !ok {
		return nil, fmt.Errorf("%w: tasks files are cgroup v1's", ErrSpawnInUnsupported)
	}
	var files []*os.File
	for _, s := range b.subs {
		f, err := os.OpenFile(filepath.Join(b.dir(string(s.Name())), "tasks"), os.O_WRONLY, 0)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("cgroup %q: %w", g.path, err)
		}
		files = append(files, f)
	}
	return files, nil
}
