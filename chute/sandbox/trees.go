package sandbox

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// hostTrees are detached copies (open_tree(2) with OPEN_TREE_CLONE) of the
// host directories a chute is made of: its rootfs, data and policy. The
// shim clones them as host root, in the host's mount namespace, where any
// path it can name works; init attaches them in the chute's own mount
// namespace (pid1.Plan.Attach) without a path lookup. The chute's root user
// could not have made them as bind mounts: in its user namespace it has no
// right to search host directories owned by an unmapped user, such as a
// data directory under /root or mktemp -d.
//
// A device node of Spec.Devices is passed the same way, a tree of one
// file, so that init never names a host path.
type hostTrees struct {
	root, data, policy *os.File // data and policy nil when not used
	devices            []*os.File
}

// treeFDs are the trees' descriptors in init; 0 for a tree not used.
type treeFDs struct {
	root, data, policy int
	devices            []int // in the order of Spec.Devices
}

func openHostTrees(s Spec) (*hostTrees, error) {
	t := &hostTrees{}
	for _, tr := range []struct {
		dir string
		f   **os.File
	}{{s.Rootfs, &t.root}, {s.DataDir, &t.data}, {s.PolicyDir, &t.policy}} {
		if tr.dir == "" {
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, tr.dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("clone mount tree of %s: %w", tr.dir, err)
		}
		*tr.f = os.NewFile(uintptr(fd), tr.dir)
	}
	for _, d := range s.Devices {
		f, err := openDeviceTree(d.Path)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.devices = append(t.devices, f)
	}
	return t, nil
}

// openDeviceTree clones the mount of the device node at path, refusing
// anything but a device node: a directory or a regular file would give
// the chute a piece of the host's filesystem.
func openDeviceTree(path string) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("clone device node %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("clone device node %s: %w", path, err)
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFCHR && t != unix.S_IFBLK {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a device node", path)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// pass appends the trees to files, the descriptors init gets from 3 on,
// and says which numbers they get there.
func (t *hostTrees) pass(files []*os.File) ([]*os.File, treeFDs) {
	var fds treeFDs
	for _, tr := range []struct {
		f  *os.File
		fd *int
	}{{t.root, &fds.root}, {t.data, &fds.data}, {t.policy, &fds.policy}} {
		if tr.f != nil {
			*tr.fd = 3 + len(files)
			files = append(files, tr.f)
		}
	}
	for _, f := range t.devices {
		fds.devices = append(fds.devices, 3+len(files))
		files = append(files, f)
	}
	return files, fds
}

// Close closes the shim's descriptors. A tree init attached stays; one it
// did not is dissolved once init's copy is gone too.
func (t *hostTrees) Close() {
	for _, f := range append([]*os.File{t.root, t.data, t.policy}, t.devices...) {
		if f != nil {
			f.Close()
		}
	}
}

// CheckHost says why chutes whose directories lie under dir could not
// start on this host, or nil: the shim must be able to clone their mount
// trees there. The daemon asks at start-up rather than fail every start.
func CheckHost(dir string) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return errors.New("this kernel cannot run chutes: it lacks open_tree (Linux 5.2 or later)")
	}
	if err != nil {
		return fmt.Errorf("chutes cannot run from %s: it cannot be cloned as a mount tree: %w", dir, err)
	}
	return unix.Close(fd)
}
