package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"paradrop/cgroup"
	"paradrop/chute/sandbox/pid1"
)

// hostDevices are bound from the host into the chute's /dev: a user
// namespace cannot mknod, and a chute needs no other device.
var hostDevices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// DefaultDevices are what a chute's cgroup must allow of devices for the
// sandbox's /dev to work: hostDevices, the devpts instance's ptmx and its
// ptys. The chute's cgroup should allow no other but Spec.Devices.
var DefaultDevices = []cgroup.Device{
	{Type: 'c', Major: 1, Minor: 3, Access: "rwm"},    // null
	{Type: 'c', Major: 1, Minor: 5, Access: "rwm"},    // zero
	{Type: 'c', Major: 1, Minor: 7, Access: "rwm"},    // full
	{Type: 'c', Major: 1, Minor: 8, Access: "rwm"},    // random
	{Type: 'c', Major: 1, Minor: 9, Access: "rwm"},    // urandom
	{Type: 'c', Major: 5, Minor: 0, Access: "rwm"},    // tty
	{Type: 'c', Major: 5, Minor: 2, Access: "rwm"},    // ptmx
	{Type: 'c', Major: 136, Minor: -1, Access: "rwm"}, // pts/*
}

var devSymlinks = [][2]string{
	{"/proc/self/fd", "fd"},
	{"/proc/self/fd/0", "stdin"},
	{"/proc/self/fd/1", "stdout"},
	{"/proc/self/fd/2", "stderr"},
	{"pts/ptmx", "ptmx"},
}

// maskedPaths and readonlyPaths are runc's defaults for /proc (/sys is
// built by the shim, see buildSys): kernel interfaces that leak host
// information or let root in the chute reconfigure the host.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi",
		// Not runc's: the host's swap files are host paths, its boot
		// command line is the host's, and its disks list every chute's
		// data image's loop device.
		"/proc/swaps", "/proc/cmdline", "/proc/diskstats", "/proc/partitions",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// initPlan is what the chute's init does, in order, from its fresh
// namespaces to the exec of the chute's command (see package pid1).
func initPlan(s Spec, trees treeFDs) (*pid1.Plan, error) {
	filter, err := seccompFilter()
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	var p pid1.Plan
	// The shim sends the plan only after putting init in the chute's
	// cgroup, so that is what the new cgroup namespace has as its root.
	p.Unshare("unshare cgroup namespace", unix.CLONE_NEWCGROUP)
	p.Sethostname("set hostname", s.Hostname)
	rootfsPlan(&p, s, trees)
	for _, r := range s.Rlimits {
		p.Rlimit(fmt.Sprintf("setrlimit %d", r.Resource), r.Resource, r.Soft, r.Hard)
	}
	// Before the ids: a uid other than 0 loses the capabilities needed to
	// drop the bounding set; such a chute ends up with none after its exec.
	extra, err := extraCaps(s.Caps)
	if err != nil {
		return nil, err
	}
	p.Caps("drop capabilities", capMask(append(extra, defaultCaps...)))
	p.SetIDs(fmt.Sprintf("set uid/gid %d/%d", s.UID, s.GID), s.UID, s.GID)
	p.Chdir("chdir "+s.Cwd, s.Cwd)
	p.Seccomp("load seccomp filter", filter)
	if s.Health != nil {
		p.Door("start the health door", doorExeFD, doorSockFD)
	}
	paths, search := execPaths(s.Args[0], s.Env)
	p.Exec(fmt.Sprintf("exec %q", s.Args[0]), search, paths, s.Args, s.Env)
	return &p, nil
}

// execPaths are where init looks for the command: in the chute's PATH, as
// the shell would, unless the name has a slash.
func execPaths(file string, env []string) (paths []string, search bool) {
	if strings.Contains(file, "/") {
		return []string{file}, false
	}
	var path string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		paths = append(paths, filepath.Join(dir, file))
	}
	return paths, true
}

func mount(p *pid1.Plan, source, target, fstype string, flags uintptr, data string) {
	what := source
	if fstype != "" {
		what = fstype
	}
	p.Mount(fmt.Sprintf("mount %s on %s", what, target), source, target, fstype, flags, data)
}

func mountpoint(p *pid1.Plan, path string, dir bool) {
	p.Mountpoint(fmt.Sprintf("mountpoint %s missing in rootfs", path), path, dir)
}

func remountRO(p *pid1.Plan, path string) {
	p.RemountRO("make "+path+" read-only", path)
}

// rootfsPlan builds the chute's view of the filesystem from the trees the
// shim cloned (see hostTrees), switches root into it and locks it down. It
// runs in the chute's fresh mount namespace, while the host's tree is
// still visible.
func rootfsPlan(p *pid1.Plan, s Spec, trees treeFDs) {
	// Nothing mounted here may propagate back to the host, nor host mounts in.
	mount(p, "", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
	// The rootfs tree goes over the host's root, a mount point init can
	// always reach, and init works in it: the chute's root user may not be
	// allowed to look s.Rootfs up, so everything up to the pivot_root
	// below names paths relative to the new root. Being a mount, it can
	// become the root.
	p.Fchdir("enter rootfs "+s.Rootfs, trees.root)
	p.Attach("attach rootfs "+s.Rootfs, trees.root, "/")
	root := "."
	in := func(path string) string { return filepath.Join(root, path) }
	// A tree cloned from a shared host mount is a peer of it: made private
	// before anything is mounted on it, or the chute's mounts would appear
	// on the host (and pivot_root refuses a shared mount).
	private := func(path string) { mount(p, "", path, "", unix.MS_REC|unix.MS_PRIVATE, "") }
	private(root)

	mountpoint(p, in("proc"), true)
	mount(p, "proc", in("proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")

	dev := in("dev")
	mountpoint(p, dev, true)
	mount(p, "tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=65536k")
	for _, name := range hostDevices {
		target := filepath.Join(dev, name)
		p.Create("create "+target, target, 0o666)
		mount(p, "/dev/"+name, target, "", unix.MS_BIND, "")
	}
	for _, sub := range []string{"pts", "shm"} {
		p.Mkdir("mkdir "+filepath.Join(dev, sub), filepath.Join(dev, sub), 0o755)
	}
	devicesPlan(p, root, s.Devices, trees.devices)
	mount(p, "devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=0620")
	mount(p, "shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"mode=1777,size=65536k")
	for _, l := range devSymlinks {
		p.Symlink("symlink "+filepath.Join(dev, l[1]), l[0], filepath.Join(dev, l[1]))
	}

	// /sys is the shim's (see buildSys), already under root; its links
	// are init's to mount when the chute owns its network namespace.
	if s.ownNetNS() {
		sysNetPlan(p, in("tmp"), in("sys"))
	}

	mountpoint(p, in("tmp"), true)
	mount(p, "tmpfs", in("tmp"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=1777,size=%d", s.TmpSize))
	attach := func(fd int, source, target string, readonly bool) {
		mountpoint(p, target, true)
		p.Attach(fmt.Sprintf("mount %s on /%s", source, target), fd, target)
		private(target)
		if readonly {
			remountRO(p, target)
		}
	}
	if s.DataDir != "" {
		attach(trees.data, s.DataDir, in("data"), false)
	}
	if s.PolicyDir != "" {
		attach(trees.policy, s.PolicyDir, in("paradrop"), true)
	}
	if len(s.Etc) > 0 {
		// The shim checked etc is no symlink; the chute manager makes it
		// at install when the image has none.
		mountpoint(p, in("etc"), true)
		p.Attach("mount the gateway's /etc files", trees.etc, in("etc"))
	}

	p.PivotRoot("pivot_root "+s.Rootfs, root)
	for _, path := range maskedPaths {
		p.Mask("mask "+path, path)
	}
	for _, path := range readonlyPaths {
		p.Readonly("make "+path+" read-only", path)
	}
	p.RemountRO("make rootfs read-only", "/")
}

// sysNetPlan binds at sys the sysNetDirs of a sysfs init mounts at
// staging, an empty directory it unmounts again: a sysfs shows the links
// of its mounter's network namespace, and only a process of the user
// namespace that owns a network namespace may mount one for it.
func sysNetPlan(p *pid1.Plan, staging, sys string) {
	mountpoint(p, staging, true)
	mount(p, "sysfs", staging, "sysfs", sysFlags|unix.MS_RDONLY, "")
	for _, dir := range sysNetDirs {
		mount(p, filepath.Join(staging, dir), filepath.Join(sys, dir), "", unix.MS_BIND, "")
	}
	p.Unmount("unmount sysfs from "+staging, staging)
}

// devicesPlan attaches the device nodes of Spec.Devices, cloned by the
// shim, in the chute's /dev under root, making the directories they need.
func devicesPlan(p *pid1.Plan, root string, devs []DeviceNode, fds []int) {
	made := map[string]bool{"/dev": true}
	var mkdirs func(dir string)
	mkdirs = func(dir string) {
		if made[dir] {
			return
		}
		mkdirs(filepath.Dir(dir))
		made[dir] = true
		p.Mkdir("mkdir "+dir, filepath.Join(root, dir), 0o755)
	}
	for i, d := range devs {
		mkdirs(filepath.Dir(d.Inside))
		target := filepath.Join(root, d.Inside)
		p.Create("create "+d.Inside, target, 0o600)
		p.Attach(fmt.Sprintf("mount device %s on %s", d.Path, d.Inside), fds[i], target)
	}
}

// seccompFilter is the chute's seccomp program as an array of struct
// sock_filter, the same for every chute: a monitor assembles it once, as
// it starts.
var seccompFilter = sync.OnceValues(func() ([]byte, error) {
	raw, err := seccompProgram()
	if err != nil {
		return nil, err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	size := len(filter) * int(unsafe.Sizeof(filter[0]))
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&filter[0])), size)...), nil
})
