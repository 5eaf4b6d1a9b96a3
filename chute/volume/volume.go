// Package volume manages a chute's persistent /data: an ext4 filesystem in a
// sparse image file, loop-mounted on the host. The image's size is the
// chute's disk quota, enforced by the filesystem boundary itself, with no
// quota tooling on the host filesystem.
package volume

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// MinSize is the smallest volume Ensure accepts: below it mkfs.ext4 has
// too little room for its metadata and journal.
const MinSize = 4 << 20

// Ensure makes the volume in image, created with size bytes if absent,
// mounted at mountpoint (nodev, nosuid) with its root owned by uid:gid. It
// is idempotent: a volume already mounted there is left as is, except that
// it grows when size exceeds the image's size: online, or, lacking
// CAP_SYS_RESOURCE, by unmounting it, which fails while files are open.
// Volumes never shrink.
func Ensure(ctx context.Context, image, mountpoint string, size int64, uid, gid int) error {
	if err := ensure(ctx, image, mountpoint, size, uid, gid); err != nil {
		return fmt.Errorf("ensure volume %s at %s: %w", image, mountpoint, err)
	}
	return nil
}

func ensure(ctx context.Context, image, mountpoint string, size int64, uid, gid int) error {
	switch {
	case !filepath.IsAbs(image) || !filepath.IsAbs(mountpoint):
		return errors.New("image and mountpoint must be absolute paths")
	case size < MinSize:
		return fmt.Errorf("size %d below minimum %d", size, MinSize)
	case uid < 0 || gid < 0:
		return fmt.Errorf("invalid owner %d:%d", uid, gid)
	}
	if _, err := os.Stat(image); errors.Is(err, fs.ErrNotExist) {
		if err := create(ctx, image, size); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	// The kernel reports backing files and mountpoints with symlinks
	// resolved.
	image, mountpoint = resolve(image), resolve(mountpoint)
	dev, err := mountedDevice(image, mountpoint)
	if err != nil {
		return err
	}
	st, err := os.Stat(image)
	if err != nil {
		return err
	}
	grow := size > st.Size()
	if dev != "" && grow && !canResizeOnline() {
		// Growing offline instead fails here if the chute holds files open,
		// which is the right answer: it is not to be pulled from under it.
		if err := unix.Unmount(mountpoint, 0); err != nil {
			return fmt.Errorf("unmount to grow offline (no CAP_SYS_RESOURCE to grow online): %w", err)
		}
		dev = ""
	}
	if dev == "" {
		if err := waitDetached(image); err != nil {
			return err
		}
		if grow {
			if err := growOffline(ctx, image, size); err != nil {
				return err
			}
		}
		if dev, err = mount(image, mountpoint); err != nil {
			return err
		}
	} else if grow {
		if err := growOnline(ctx, image, dev, size); err != nil {
			return err
		}
	}
	// Always, so a changed id mapping takes effect on the next start.
	return os.Chown(mountpoint, uid, gid)
}

// create makes a sparse image with an empty ext4 filesystem. It is built
// under a temporary name so a crash cannot leave a half-made image that a
// later Ensure would take for a good one.
func create(ctx context.Context, image string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(image), 0o700); err != nil {
		return err
	}
	tmp := image + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// -m 0: the chute's root is an unprivileged host uid, so blocks
		// reserved for root would only shrink its quota.
		err = run(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", tmp)
	}
	if err == nil {
		err = os.Rename(tmp, image)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create image: %w", err)
	}
	return nil
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mount attaches image to a free loop device and mounts it at mountpoint,
// returning the device.
func mount(image, mountpoint string) (string, error) {
	if err := os.MkdirAll(mountpoint, 0o755); err != nil {
		return "", err
	}
	loop, err := attach(image)
	if err != nil {
		return "", err
	}
	// Closing the loop device only after mounting: with autoclear, the last
	// close of an unmounted device detaches it.
	defer loop.Close()
	if err := unix.Mount(loop.Name(), mountpoint, "ext4", unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return "", fmt.Errorf("mount %s: %w", loop.Name(), err)
	}
	return loop.Name(), nil
}

// attach binds image to a free loop device with autoclear set, so the
// device is released by the kernel when the filesystem is unmounted.
func attach(image string) (*os.File, error) {
	img, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	// Another process may take the free device between asking and
	// binding; then ask again.
	for range 10 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("get free loop device: %w", err)
		}
		loop, err := os.OpenFile("/dev/loop"+strconv.Itoa(n), os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		err = configure(int(loop.Fd()), int(img.Fd()), image)
		if err == nil {
			return loop, nil
		}
		loop.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("attach %s: %w", loop.Name(), err)
		}
	}
	return nil, errors.New("no free loop device after 10 tries")
}

func configure(loopFd, imgFd int, image string) error {
	info := unix.LoopInfo64{Flags: unix.LO_FLAGS_AUTOCLEAR}
	copy(info.File_name[:unix.LO_NAME_SIZE-1], image)
	err := unix.IoctlLoopConfigure(loopFd, &unix.LoopConfig{Fd: uint32(imgFd), Info: info})
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return err
	}
	// Kernels before 5.8 lack LOOP_CONFIGURE.
	if err := unix.IoctlSetInt(loopFd, unix.LOOP_SET_FD, imgFd); err != nil {
		return err
	}
	if err := unix.IoctlLoopSetStatus64(loopFd, &info); err != nil {
		unix.IoctlSetInt(loopFd, unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}

// waitDetached makes sure no loop device is backed by image before it is
// attached or resized: one still attached after its mount went away is
// mounted in another mount namespace, or set up by hand, and a second
// mount or an offline resize would corrupt the filesystem. Autoclear may
// lag an unmount by a moment, hence the wait.
func waitDetached(image string) error {
	for try := 0; ; try++ {
		devs, err := loopsOf(image)
		if err != nil || len(devs) == 0 {
			return err
		}
		if try == 50 {
			return fmt.Errorf("image in use through loop device %s", strings.Join(devs, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// canResizeOnline reports whether this process may grow a mounted ext4,
// which needs CAP_SYS_RESOURCE: root in a restricted sandbox may lack it.
func canResizeOnline() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_RESOURCE/32].Effective&(1<<(unix.CAP_SYS_RESOURCE%32)) != 0
}

// growOffline enlarges an unmounted image and its filesystem to size.
func growOffline(ctx context.Context, image string, size int64) error {
	if err := os.Truncate(image, size); err != nil {
		return fmt.Errorf("grow image: %w", err)
	}
	// resize2fs insists on a freshly checked filesystem. e2fsck -p exits 1
	// when it fixed something, which is still a usable filesystem.
	if err := run(ctx, "e2fsck", "-f", "-p", image); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			return err
		}
	}
	return run(ctx, "resize2fs", image)
}

// growOnline enlarges the image of a mounted volume to size, tells the
// loop device, and grows the filesystem into the new space.
func growOnline(ctx context.Context, image, dev string, size int64) error {
	if err := os.Truncate(image, size); err != nil {
		return fmt.Errorf("grow image: %w", err)
	}
	loop, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer loop.Close()
	if err := unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("grow %s: %w", dev, err)
	}
	// resize2fs with no size fills the device.
	return run(ctx, "resize2fs", dev)
}

// Unmount unmounts the volume at mountpoint, which also releases its loop
// device. Nothing mounted there is not an error.
func Unmount(mountpoint string) error {
	mountpoint = resolve(mountpoint)
	m, err := mountAt(mountpoint)
	if err != nil || m == nil {
		return err
	}
	if err := unix.Unmount(mountpoint, 0); err != nil {
		return fmt.Errorf("unmount volume at %s: %w", mountpoint, err)
	}
	return nil
}

// Move makes the volume mounted at from mounted at to instead (nodev,
// nosuid), without unmounting its filesystem: an unmount writes back what
// the page cache holds of it, which on a volume just filled takes as long
// as writing it all. Its image may have been renamed since it was mounted.
func Move(from, to string) error {
	from = resolve(from)
	if m, err := mountAt(from); err != nil || m == nil {
		return fmt.Errorf("move volume at %s: not mounted (%v)", from, err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	// A bind mount, not MS_MOVE: that fails under a shared parent mount,
	// which is what systemd makes of /.
	if err := unix.Mount(from, to, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("move volume at %s to %s: %w", from, to, err)
	}
	if err := unix.Mount("", to, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		unix.Unmount(to, 0)
		return fmt.Errorf("move volume at %s to %s: %w", from, to, err)
	}
	if err := unix.Unmount(from, 0); err != nil {
		unix.Unmount(to, 0)
		return fmt.Errorf("move volume at %s to %s: %w", from, to, err)
	}
	return nil
}

// Usage reports the bytes used and the total size of the volume mounted at
// mountpoint.
func Usage(mountpoint string) (used, total int64, err error) {
	// statfs on an unmounted directory would report the host filesystem.
	// A mount root as named is one once resolved too (statx does not
	// follow a last symlink, and a symlink is no mount root): the usage
	// sampler's every-second call for each chute stops there, without
	// resolving the path a component at a time.
	root, known, err := isMountRoot(mountpoint)
	if err != nil || !root {
		mountpoint = resolve(mountpoint)
		root, known, err = isMountRoot(mountpoint)
	}
	if err == nil && !known {
		var m *mountInfo
		m, err = mountAt(mountpoint)
		root = m != nil
	}
	if err == nil && !root {
		err = errors.New("not mounted")
	}
	var st unix.Statfs_t
	if err == nil {
		err = unix.Statfs(mountpoint, &st)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("usage of volume at %s: %w", mountpoint, err)
	}
	// Field widths differ between architectures (int32 Bsize on 386 and arm).
	return int64(st.Blocks-st.Bfree) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

// Remove unmounts the volume and deletes its image and mountpoint; the
// chute's data is gone. Parts already gone are not an error.
func Remove(image, mountpoint string) error {
	if err := Unmount(mountpoint); err != nil {
		return err
	}
	for _, p := range []string{image, image + ".new", mountpoint} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove volume: %w", err)
		}
	}
	return nil
}

// resolve returns p with symlinks resolved, as far as it exists.
func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	dev        string // major:minor
	mountpoint string
	source     string
}

func mounts() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mountInfo
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		ms = append(ms, mountInfo{dev: fields[2], mountpoint: unescape(fields[4]), source: unescape(fields[sep+2])})
	}
	return ms, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for space and so on).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountAt returns the topmost mount at mountpoint, or nil.
func mountAt(mountpoint string) (*mountInfo, error) {
	ms, err := mounts()
	if err != nil {
		return nil, err
	}
	var top *mountInfo
	for i := range ms {
		if ms[i].mountpoint == mountpoint {
			top = &ms[i]
		}
	}
	return top, nil
}

// isMountRoot reports whether p is the root of a mount, from statx's
// STATX_ATTR_MOUNT_ROOT (Linux 5.8): one system call, where mountAt reads
// a line per mount of the host, and the usage sampler asks for every
// chute every second. known is false on a kernel that does not tell.
func isMountRoot(p string) (root, known bool, err error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, 0, &stx); err != nil {
		return false, false, err
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return false, false, nil
	}
	return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, true, nil
}

// mountedDevice returns the loop device through which image is mounted at
// mountpoint, "" if nothing is mounted there, and an error if something
// else is.
func mountedDevice(image, mountpoint string) (string, error) {
	m, err := mountAt(mountpoint)
	if err != nil || m == nil {
		return "", err
	}
	backing, err := os.ReadFile(filepath.Join("/sys/dev/block", m.dev, "loop", "backing_file"))
	if err != nil || strings.TrimSpace(string(backing)) != image {
		return "", fmt.Errorf("%s is already a mount of %s", mountpoint, m.source)
	}
	// /sys/dev/block/MAJ:MIN links to the device's directory, named as in /dev.
	sys, err := filepath.EvalSymlinks(filepath.Join("/sys/dev/block", m.dev))
	if err != nil {
		return "", err
	}
	return "/dev/" + filepath.Base(sys), nil
}

// loopsOf returns the major:minor of every loop device backed by image.
func loopsOf(image string) ([]string, error) {
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	var devs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || strings.TrimSpace(string(b)) != image {
			continue // detached meanwhile, or another image
		}
		dev, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(f)), "dev"))
		if err != nil {
			continue
		}
		devs = append(devs, strings.TrimSpace(string(dev)))
	}
	return devs, nil
}
