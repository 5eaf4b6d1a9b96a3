package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"

	"paradrop/cgroup"
	"paradrop/chute/sandbox/pid1"
)

// A monitor keeps a warm init ready: an init cloned before any chute asks
// for it, in new mount, pid, uts, ipc, user and network namespaces, its
// Go runtime started, waiting for its assignment (see pid1.WarmCommand).
// A start then only does what depends on the chute: the uid and gid
// maps, written by the monitor after the clone; the cgroup, which init's
// thread enters itself through tasks files the monitor opened (v1); the
// daemon's eth0, if any, which the monitor moves into init's own network
// namespace (adoptNetwork: a process in a fresh user namespace could not
// join the daemon's), set up as the warm init was made; the descriptors
// and the plan. The clone and init's start-up, 3-4 ms, are taken off its
// path. The first is made once a chute that gains by one has started,
// the next once starts pause (keepWarmSoon).
// It waits in a root of its own (cloneWarmInRoot), holding nothing of the
// host's mounts but its devices, /proc and /sys.
//
// A warm init runs nothing of a chute's before its plan, and is a chute
// of none before its assignment. It dies with the thread that cloned it
// (its parent-death signal), which stays locked, waiting, and then runs
// the chute it becomes for that chute's whole life, as the thread of a
// start under the monitor does; and the monitor kills it as it exits.
//
// Each waiting warm init costs about 0.7 MiB of private memory (a Go
// process's least), counted in the monitor's cgroup, the daemon's.
//
// Not every chute can use one: on cgroup v2 a process cannot move itself
// into a group without the global lock SpawnIn avoids, and a warm init's
// group is known only at its birth, so v2 chutes with a cgroup keep the
// cold clone (born in their group by CLONE_INTO_CGROUP); so do chutes
// without a user namespace, and those that gain nothing (see
// warmEligible).
type warmInit struct {
	cmd  *exec.Cmd
	sock *os.File // the monitor's end of pid1.WarmFD
	// jobs gets the shim of the chute the warm init is to become, whose
	// run then goes on on the thread that cloned it; closed, the warm
	// init is killed.
	jobs chan warmJob
}

type warmJob struct {
	sh      *shim
	started chan<- error
}

// warmEligible says whether the chute of s can start from a warm init,
// and gains by it. A chute that joins the daemon's network namespace
// does not: its eth0 would have to move into the warm init's, which
// costs the kernel 14-22 ms on a 2-core VM (`ip link set eth0 netns`),
// against the 3-4 ms a warm init saves; it is cloned into the daemon's
// namespace at its start, unless it keeps NET_RAW or NET_ADMIN and its
// eth0 moves anyway.
func warmEligible(s Spec) bool {
	return s.UserNS && (s.CgroupPath == "" || cgroup.Detect() == cgroup.V1) &&
		(s.NetNS == "" || s.ownNetNS())
}

// cloneWarm clones a warm init from the calling thread, which must stay
// locked to its goroutine for the life of the chute the init becomes.
func cloneWarm() (*warmInit, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("warm init: %w", err)
	}
	mine, its := os.NewFile(uintptr(pair[0]), "warm init"), os.NewFile(uintptr(pair[1]), "warm init")
	defer its.Close()
	last, err := capability.LastCap()
	if err != nil {
		mine.Close()
		return nil, fmt.Errorf("warm init: %w", err)
	}
	// Its exec comes before its uid map: as an unmapped user it would
	// keep no capability in its namespace, not even to become the
	// namespace's root once mapped, but those it has as ambient ones.
	// Its plan clears them (pid1.Plan.Caps) before the chute's exec.
	var all []uintptr
	for c := range uintptr(last) + 1 {
		all = append(all, c)
	}
	w := &warmInit{sock: mine, jobs: make(chan warmJob, 1)}
	w.cmd = &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{"paradrop-init", pid1.WarmCommand},
		Env:  []string{},
		// Stdin, stdout and stderr are /dev/null: the chute's output
		// pipes come with the assignment.
		ExtraFiles: []*os.File{its},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC |
				syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
			Pdeathsig:   syscall.SIGKILL,
			AmbientCaps: all,
		},
	}
	if err := w.cmd.Start(); err != nil {
		mine.Close()
		return nil, fmt.Errorf("warm init: %w", err)
	}
	// Its network namespace is set up now, as a chute's is (lo, the
	// chute sysctls): a start has only its eth0, if any, left to move in.
	if err := setUpNetNSOf(w.cmd.Process.Pid); err != nil {
		w.discard()
		return nil, fmt.Errorf("warm init: %w", err)
	}
	return w, nil
}

// setUpNetNSOf brings lo up and applies the chute sysctls in the network
// namespace of pid, from the calling (locked) thread, which it takes
// there and back: no netlink handle, no other thread.
func setUpNetNSOf(pid int) error {
	here, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer here.Close()
	there, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return err
	}
	defer there.Close()
	if err := unix.Setns(int(there.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter its network namespace: %w", err)
	}
	err = setUpNetNS()
	if berr := unix.Setns(int(here.Fd()), unix.CLONE_NEWNET); berr != nil {
		// Not to serve a chute from there: the caller's thread ends.
		return errors.Join(err, fmt.Errorf("leave its network namespace: %w", berr))
	}
	return err
}

// cloneWarmInRoot clones a warm init (see cloneWarm) from the calling
// thread, placed for the time of the clone in a mount namespace of its
// own whose tree is only what an init needs of the host's: a root of
// its own (a small tmpfs), the host's device nodes a plan binds
// (hostDevices) and the host's /proc and /sys (the kernel lets a user
// namespace mount a proc or a sysfs only where one is fully visible).
// The warm init's copy of the host's mounts would otherwise hold, for as
// long as it waits, every chute's /data as it was then: a /data the host
// unmounts would keep its filesystem and loop device (see leaveMounts).
// The thread goes back to the host's mounts before it returns.
func cloneWarmInRoot() (*warmInit, error) {
	host, err := os.Open("/proc/thread-self/ns/mnt")
	if err != nil {
		return nil, fmt.Errorf("warm init: %w", err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		host.Close()
		return nil, fmt.Errorf("warm init: unshare mount namespace: %w", err)
	}
	leave := func() error { return leaveMounts(host) }
	if err := enterWarmRoot(); err != nil {
		return nil, errors.Join(fmt.Errorf("warm init: its root: %w", err), leave())
	}
	w, err := cloneWarm()
	if lerr := leave(); lerr != nil {
		// This thread is not to serve a chute from there.
		if w != nil {
			w.discard()
		}
		return nil, lerr
	}
	return w, err
}

// warmRootDir is where enterWarmRoot mounts the root it pivots into, in
// the calling thread's own mount namespace.
const warmRootDir = "/tmp"

// enterWarmRoot makes the calling thread's root a tmpfs holding only dev
// (hostDevices, bound), proc and sys (the host's, bound with what is
// mounted under them), in its mount namespace, whose other mounts go.
func enterWarmRoot() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := warmRootDir
	if err := unix.Mount("tmpfs", root, "tmpfs", sysFlags, "mode=755,size=16k,nr_inodes=32"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", root, err)
	}
	for _, dir := range []string{"dev", "proc", "sys"} {
		if err := os.Mkdir(filepath.Join(root, dir), 0o755); err != nil {
			return err
		}
	}
	for _, name := range hostDevices {
		target := filepath.Join(root, "dev", name)
		if err := os.WriteFile(target, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+name, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", name, err)
		}
	}
	for _, dir := range []string{"proc", "sys"} {
		if err := unix.Mount("/"+dir, filepath.Join(root, dir), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind /%s: %w", dir, err)
		}
	}
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	return unix.Chdir("/")
}

// discard kills a warm init that is to serve no chute, and reaps it.
func (w *warmInit) discard() {
	w.sock.Close()
	w.cmd.Process.Kill()
	w.cmd.Wait()
}

// assign gives the warm init the chute of s: its id maps, then files
// (which become its fds 1, 2, 3...) and the tasks files of the chute's
// cgroup g (nil: none). The warm init's socket is closed after.
func (w *warmInit) assign(s Spec, files []*os.File, g *cgroup.Group) error {
	defer w.sock.Close()
	if err := writeIDMaps(w.cmd.Process.Pid, s); err != nil {
		return err
	}
	fds := make([]int, 0, len(files))
	for _, f := range files {
		fds = append(fds, int(f.Fd()))
	}
	if g != nil {
		tasks, err := g.TaskFiles()
		if err != nil {
			return err
		}
		for _, f := range tasks {
			defer f.Close()
			fds = append(fds, int(f.Fd()))
		}
	}
	if len(files) > 255 {
		return errors.New("warm init: too many descriptors")
	}
	if err := unix.Sendmsg(int(w.sock.Fd()), []byte{byte(len(files))}, unix.UnixRights(fds...), nil, 0); err != nil {
		return fmt.Errorf("assign the warm init: %w", err)
	}
	return nil
}

// writeIDMaps maps the user namespace of pid as a cold clone's is mapped
// (see spawn), setgroups denied.
func writeIDMaps(pid int, s Spec) error {
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	for _, f := range [][2]string{
		{"setgroups", "deny"},
		{"uid_map", fmt.Sprintf("0 %d %d\n", s.HostUID, idRange)},
		{"gid_map", fmt.Sprintf("0 %d %d\n", s.HostGID, idRange)},
	} {
		if err := os.WriteFile(dir+f[0], []byte(f[1]), 0); err != nil {
			return fmt.Errorf("warm init: write %s: %w", f[0], err)
		}
	}
	return nil
}

// warmAfter is how long after the last start the monitor makes the next
// warm init: its clone and start-up (3-5 ms of CPU) would otherwise take
// a CPU from the chute that just started, or from the next starts of a
// burst, which the warm init could not serve all anyway.
const warmAfter = 100 * time.Millisecond

// keepWarmSoon has keepWarm run once starts pause for warmAfter.
func (m *monitor) keepWarmSoon() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.warmTimer == nil {
		m.warmTimer = time.AfterFunc(warmAfter, m.keepWarm)
	} else {
		m.warmTimer.Reset(warmAfter)
	}
}

// keepWarm makes a warm init in the background unless one is there or
// being made, or making one failed before.
func (m *monitor) keepWarm() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing || m.warm != nil || m.warming || m.warmFailed {
		return
	}
	m.warming = true
	m.warmMade = make(chan struct{})
	go m.warmThread()
}

// warmThread clones a warm init and, on its thread, runs the chute it is
// assigned to.
func (m *monitor) warmThread() {
	// Never unlocked: the thread is the warm init's parent, whose exit
	// kills it, and ends with this goroutine.
	runtime.LockOSThread()
	w, err := cloneWarmInRoot()
	if testHook != nil && err == nil {
		testHook(m.sock, "warm "+strconv.Itoa(w.cmd.Process.Pid))
	}
	m.mu.Lock()
	m.warming = false
	close(m.warmMade)
	switch {
	case err != nil:
		// Cold clones serve from now on; say it once.
		m.warmFailed = true
		m.mu.Unlock()
		fmt.Fprintf(os.Stderr, "monitor: %v; chutes are cloned at their start\n", err)
		return
	case m.closing:
		m.mu.Unlock()
		w.discard()
		return
	}
	m.warm = w
	m.warmWait.Add(1)
	m.mu.Unlock()
	job, ok := <-w.jobs
	if !ok {
		w.discard()
		m.warmWait.Done()
		return
	}
	job.sh.warm = w
	job.sh.run(job.started)
}

// warmMadeWait bounds how long a start waits for a warm init being made,
// which takes 3-4 ms on an idle 2-core VM.
const warmMadeWait = 100 * time.Millisecond

// takeWarm hands the waiting warm init, if any, to the chute of s. One
// being made is waited for: its clone is under way, and a second clone
// for this start would cost as much again.
func (m *monitor) takeWarm(s Spec) *warmInit {
	if !warmEligible(s) {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.warming {
		made := m.warmMade
		m.mu.Unlock()
		select {
		case <-made:
		case <-time.After(warmMadeWait):
		}
		m.mu.Lock()
	}
	w := m.warm
	if w != nil {
		m.warm = nil
		m.warmWait.Done()
	}
	return w
}

// dropWarmLocked kills the waiting warm init, as the monitor exits.
func (m *monitor) dropWarmLocked() {
	if m.warm != nil {
		close(m.warm.jobs)
		m.warm = nil
	}
}
