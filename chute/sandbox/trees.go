package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strconv"

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
// file, so that init never names a host path; the node is the chute's own
// (see openDeviceTrees).
type hostTrees struct {
	root, data, policy *os.File // data and policy nil when not used
	devices            []*os.File
	etc                *os.File // nil without Spec.Etc
}

// treeFDs are the trees' descriptors in init; 0 for a tree not used.
type treeFDs struct {
	root, data, policy int
	devices            []int // in the order of Spec.Devices
	etc                int
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
	var err error
	if t.devices, err = openDeviceTrees(s); err != nil {
		t.Close()
		return nil, err
	}
	if t.etc, err = openEtcTree(s, t.root); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// openEtcTree makes the chute's /etc when s.Etc gives it files: an
// overlay whose lower layer is the rootfs's etc (none if it has none) and
// whose upper layer, on a small tmpfs mounted nowhere, gets the files,
// replacing whatever the image has by those names (a symlink included:
// the shim works on the detached overlay, relative to its root, and
// follows none). The image is not written to; the tree is read-only,
// nosuid and nodev before the chute ever sees it (not noexec: an image
// may run programs from its etc).
func openEtcTree(s Spec, root *os.File) (*os.File, error) {
	if len(s.Etc) == 0 {
		return nil, nil
	}
	lower, err := openRootfsEtc(root)
	if err != nil {
		return nil, err
	}
	if lower >= 0 {
		defer unix.Close(lower)
	}
	size := 0
	for _, e := range s.Etc {
		size += len(e.Data) + 4096
	}
	tmp, err := newTmpfs([][2]string{{"mode", "0755"}, {"size", strconv.Itoa(size + 16<<10)}, {"nr_inodes", strconv.Itoa(2*len(s.Etc) + 8)}},
		unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return nil, fmt.Errorf("chute /etc: %w", err)
	}
	defer unix.Close(tmp)
	top, err := etcOverlay(tmp, lower)
	if err != nil {
		return nil, fmt.Errorf("chute /etc: %w", err)
	}
	f := os.NewFile(uintptr(top), "chute /etc")
	for _, e := range s.Etc {
		if err := replaceEtcFile(top, e); err != nil {
			f.Close()
			return nil, fmt.Errorf("chute /etc/%s: %w", e.Name, err)
		}
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(top, "", unix.AT_EMPTY_PATH, attr); err != nil {
		f.Close()
		return nil, fmt.Errorf("chute /etc: make read-only: %w", err)
	}
	return f, nil
}

// openRootfsEtc opens the rootfs's etc (O_PATH), following no symlink;
// -1 when it has none.
func openRootfsEtc(root *os.File) (int, error) {
	fd, err := openRootfsDir(int(root.Fd()), "etc")
	switch {
	case errors.Is(err, unix.ENOENT):
		return -1, nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return -1, fmt.Errorf("%w: etc is not a directory (a symlink?)", errEtcMountpoint)
	case err != nil:
		return -1, fmt.Errorf("rootfs etc: %w", err)
	}
	return fd, nil
}

// openRootfsDir opens the directory name of the rootfs open at root
// (O_PATH), following no symlink.
func openRootfsDir(root int, name string) (int, error) {
	return unix.Openat2(root, name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
}

// checkMountpoints refuses a rootfs in which a directory mounted over is
// anything but a directory (etc has openRootfsEtc). The trees'
// move_mount(2) follows no symlink, but mount(2) does: the shim, host
// root, would mount the chute's /sys through a symlink in the mount
// namespace where it then opens the chute's trees, device nodes and
// cgroup by host path, and init mounts before pivot_root, where an
// absolute symlink names the host's tree. One missing is made (by the
// shim, or init). Nothing writes the rootfs between this check and those
// mounts: the chute manager made it, and the chute sees it read-only.
func checkMountpoints(s Spec) error {
	root, err := unix.Open(s.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("rootfs %s: %w", s.Rootfs, err)
	}
	defer unix.Close(root)
	names := []string{"proc", "dev", "sys", "tmp"}
	for _, tr := range [][2]string{{s.DataDir, "data"}, {s.PolicyDir, "paradrop"}} {
		if tr[0] != "" {
			names = append(names, tr[1])
		}
	}
	for _, name := range names {
		fd, err := openRootfsDir(root, name)
		switch {
		case err == nil:
			unix.Close(fd)
		case errors.Is(err, unix.ENOENT):
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
			return fmt.Errorf("%w: /%s is not a directory (a symlink?)", errMountpoint, name)
		default:
			return fmt.Errorf("rootfs /%s: %w", name, err)
		}
	}
	return nil
}

// errMountpoint is why a chute whose rootfs has a mountpoint that is no
// directory does not start (see checkMountpoints).
var errMountpoint = errors.New("rootfs: a mountpoint is not a directory")

// newTmpfs mounts a tmpfs with opts nowhere, with the MOUNT_ATTR_*
// flags attrs, and returns its mount's descriptor.
func newTmpfs(opts [][2]string, attrs int) (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fs)
	for _, o := range opts {
		if err := unix.FsconfigSetString(fs, o[0], o[1]); err != nil {
			return -1, fmt.Errorf("tmpfs %s=%s: %w", o[0], o[1], err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("create tmpfs: %w", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, fmt.Errorf("mount tmpfs: %w", err)
	}
	return mnt, nil
}

// etcOverlay mounts, nowhere, an overlay of lower (an O_PATH descriptor)
// under a directory of tmp, and returns its mount's descriptor; without
// lower, a clone of that directory of tmp itself. The layers are named by
// /proc/self/fd paths: nothing is looked up from the host's root.
func etcOverlay(tmp, lower int) (int, error) {
	for _, d := range []string{"upper", "work"} {
		if err := unix.Mkdirat(tmp, d, 0o755); err != nil {
			return -1, fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	if lower < 0 {
		fd, err := unix.OpenTree(tmp, "upper", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return -1, fmt.Errorf("clone tmpfs: %w", err)
		}
		return fd, nil
	}
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fs)
	tmpDir := "/proc/self/fd/" + strconv.Itoa(tmp)
	for _, o := range [][2]string{{"lowerdir", "/proc/self/fd/" + strconv.Itoa(lower)}, {"upperdir", tmpDir + "/upper"}, {"workdir", tmpDir + "/work"}} {
		if err := unix.FsconfigSetString(fs, o[0], o[1]); err != nil {
			return -1, fmt.Errorf("overlay %s: %w", o[0], err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("create overlay: %w", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("mount overlay: %w", err)
	}
	return mnt, nil
}

// replaceEtcFile puts e in the directory dir (the overlay's root), in
// place of anything but a directory the image has by that name.
func replaceEtcFile(dir int, e EtcFile) error {
	if err := unix.Unlinkat(dir, e.Name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%w: %v", errEtcMountpoint, err)
	}
	fd, err := unix.Openat(dir, e.Name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), e.Name)
	if _, err := f.Write(e.Data); err != nil {
		f.Close()
		return err
	}
	if err := unix.Fchmod(fd, 0o644); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// errEtcMountpoint is why a chute given Spec.Etc does not start: its
// rootfs's etc is not a directory (a symlink init would follow, out of
// the chute's root before it pivots), or has a directory by the name of
// one of the files. The shim reports it as text.
var errEtcMountpoint = errors.New("rootfs: no place for the gateway's /etc files")

// openDeviceTrees makes the chute its own node of each of s.Devices and
// clones each as a tree of one file. The host's node keeps its owner and
// mode (root:disk 0660, say), which no uid of the chute's user namespace
// may open, and a user namespace cannot change them nor make a node (nor
// use one on a file system it mounts). So the shim, as host root, makes a
// node of the same type and number, owned by the uid and gid the chute
// runs as, on a tmpfs of the chute's own that is mounted nowhere: only
// these single-file clones of it ever appear in the chute. Their mount
// allows devices (unlike the chute's /dev) but not suid nor exec. What
// the chute may do with such a node is still what its cgroup allows of
// that number, nothing more.
func openDeviceTrees(s Spec) ([]*os.File, error) {
	if len(s.Devices) == 0 {
		return nil, nil
	}
	uid, gid := s.UID, s.GID
	if s.UserNS {
		uid, gid = s.HostUID+s.UID, s.HostGID+s.GID
	}
	mnt, err := newTmpfs([][2]string{{"mode", "0700"}, {"size", "4k"}, {"nr_inodes", strconv.Itoa(len(s.Devices) + 1)}},
		unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return nil, fmt.Errorf("device nodes: %w", err)
	}
	defer unix.Close(mnt)
	var trees []*os.File
	for i, d := range s.Devices {
		f, err := makeDeviceTree(mnt, strconv.Itoa(i), d.Path, uid, gid)
		if err != nil {
			for _, f := range trees {
				f.Close()
			}
			return nil, err
		}
		trees = append(trees, f)
	}
	return trees, nil
}

// makeDeviceTree makes name in the directory dir a node of the type and
// number of the host's device node at path, owned by uid:gid, and clones
// it. Anything but a device node is refused: the chute gets no file of
// the host's.
func makeDeviceTree(dir int, name, path string, uid, gid uint32) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("device node %s: %w", path, err)
	}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFCHR && typ != unix.S_IFBLK {
		return nil, fmt.Errorf("%s is not a device node", path)
	}
	if err := unix.Mknodat(dir, name, typ|0o600, int(st.Rdev)); err != nil {
		return nil, fmt.Errorf("device node %s: mknod: %w", path, err)
	}
	// Owner first: chown clears nothing a device node has, and the mode
	// is then set whatever the shim's umask was.
	if err := unix.Fchownat(dir, name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("device node %s: chown: %w", path, err)
	}
	if err := unix.Fchmodat(dir, name, 0o660, 0); err != nil {
		return nil, fmt.Errorf("device node %s: chmod: %w", path, err)
	}
	fd, err := unix.OpenTree(dir, name, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("device node %s: clone: %w", path, err)
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
	if t.etc != nil {
		fds.etc = 3 + len(files)
		files = append(files, t.etc)
	}
	return files, fds
}

// Close closes the shim's descriptors. A tree init attached stays; one it
// did not is dissolved once init's copy is gone too.
func (t *hostTrees) Close() {
	for _, f := range append([]*os.File{t.root, t.data, t.policy, t.etc}, t.devices...) {
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
