package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// hostDevices are bound from the host into the chute's /dev: a user
// namespace cannot mknod, and a chute needs no other device.
var hostDevices = []string{"null", "zero", "full", "random", "urandom", "tty"}

var devSymlinks = [][2]string{
	{"/proc/self/fd", "fd"},
	{"/proc/self/fd/0", "stdin"},
	{"/proc/self/fd/1", "stdout"},
	{"/proc/self/fd/2", "stderr"},
	{"pts/ptmx", "ptmx"},
}

// maskedPaths and readonlyPaths are runc's defaults: kernel interfaces that
// leak host information or let root in the chute reconfigure the host.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstypeOr(fstype, source), target, err)
	}
	return nil
}

func fstypeOr(fstype, source string) string {
	if fstype != "" {
		return fstype
	}
	return source
}

// lockedFlags are the flags of the mount at path that a bind remount must
// repeat: in a user namespace the kernel refuses to clear flags inherited
// from a more privileged mount namespace.
func lockedFlags(path string) (uintptr, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	const keep = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME |
		unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_RDONLY
	return uintptr(st.Flags) & keep, nil
}

// remountRO makes the bind mount at path read-only.
func remountRO(path string) error {
	flags, err := lockedFlags(path)
	if err != nil {
		return err
	}
	return mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|flags, "")
}

// mountpoint checks that a mountpoint exists in the rootfs, creating it
// when the rootfs allows: the rootfs belongs to the chute's developer and
// the daemon prepares the standard ones at install.
func mountpoint(path string, dir bool) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	var err error
	if dir {
		err = os.MkdirAll(path, 0o755)
	} else {
		err = os.WriteFile(path, nil, 0o644)
	}
	if err != nil {
		return fmt.Errorf("mountpoint %s missing in rootfs: %w", path, err)
	}
	return nil
}

// setupRootfs builds the chute's view of the filesystem under s.Rootfs,
// switches root into it and locks it down. It runs in the chute's fresh
// mount namespace, while the host's tree is still visible.
func setupRootfs(s *Spec) error {
	// Nothing mounted here may propagate back to the host, nor host mounts in.
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	root := s.Rootfs
	// pivot_root needs the new root to be a mount point.
	if err := mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	in := func(p string) string { return filepath.Join(root, p) }
	steps := []func() error{
		func() error { return mountProc(in("proc")) },
		func() error { return mountDev(in("dev")) },
		func() error { return mountSys(in("sys")) },
		func() error {
			if err := mountpoint(in("tmp"), true); err != nil {
				return err
			}
			return mount("tmpfs", in("tmp"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV,
				fmt.Sprintf("mode=1777,size=%d", s.TmpSize))
		},
	}
	if s.DataDir != "" {
		steps = append(steps, func() error { return bindDir(s.DataDir, in("data"), false) })
	}
	if s.PolicyDir != "" {
		steps = append(steps, func() error { return bindDir(s.PolicyDir, in("paradrop"), true) })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	if err := pivotRoot(root); err != nil {
		return err
	}
	for _, p := range maskedPaths {
		if err := maskPath(p); err != nil {
			return err
		}
	}
	for _, p := range readonlyPaths {
		if err := readonlyPath(p); err != nil {
			return err
		}
	}
	if err := remountRO("/"); err != nil {
		return fmt.Errorf("make rootfs read-only: %w", err)
	}
	return nil
}

func mountProc(target string) error {
	if err := mountpoint(target, true); err != nil {
		return err
	}
	return mount("proc", target, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

func mountDev(dev string) error {
	if err := mountpoint(dev, true); err != nil {
		return err
	}
	if err := mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, name := range hostDevices {
		target := filepath.Join(dev, name)
		if err := os.WriteFile(target, nil, 0o666); err != nil {
			return err
		}
		if err := mount("/dev/"+name, target, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, sub := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, sub), 0o755); err != nil {
			return err
		}
	}
	if err := mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"mode=1777,size=65536k"); err != nil {
		return err
	}
	for _, l := range devSymlinks {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return err
		}
	}
	return nil
}

// mountSys mounts a read-only sysfs. The kernel only allows that to the
// owner of the network namespace, which a chute joining the daemon's netns
// is not; it then gets the host's /sys bound read-only instead, whose
// net class shows the host's view rather than its own.
func mountSys(target string) error {
	if err := mountpoint(target, true); err != nil {
		return err
	}
	const flags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	err := unix.Mount("sysfs", target, "sysfs", flags, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("mount sysfs on %s: %w", target, err)
	}
	if err := mount("/sys", target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return remountRO(target)
}

func bindDir(source, target string, readonly bool) error {
	if err := mountpoint(target, true); err != nil {
		return err
	}
	if err := mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if readonly {
		return remountRO(target)
	}
	return nil
}

// pivotRoot makes root the root directory and detaches the host's tree,
// using pivot_root(".", ".") so that no directory is needed for the old root
// inside a rootfs that may be read-only.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("chdir %s: %w", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// maskPath hides a file behind /dev/null, a directory behind an empty
// read-only tmpfs. Paths the kernel does not have are skipped.
func maskPath(p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	if st.IsDir() {
		return mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	return mount("/dev/null", p, "", unix.MS_BIND, "")
}

func readonlyPath(p string) error {
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return remountRO(p)
}
