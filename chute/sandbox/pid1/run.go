package pid1

import (
	"errors"
	"syscall"
	"unsafe"
)

// Kernel ABI numbers the syscall package lacks on some architectures.
const (
	prSetPdeathsig        = 1
	prSetSeccomp          = 22
	prCapbsetDrop         = 24
	prSetNoNewPrivs       = 38
	prCapAmbient          = 47
	prCapAmbientClearAll  = 4
	prSetName             = 15
	prSetChildSubreaper   = 36
	seccompModeFilter     = 2
	linuxCapabilityV3     = 0x20080522
	moveMountFEmptyPath   = 0x4
	mountFlagsKeptByRemnt = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC | syscall.MS_NOATIME |
		syscall.MS_NODIRATIME | syscall.MS_RELATIME | syscall.MS_RDONLY
)

// layouts gives each operation's arguments: n a number, s a string, l a
// list of strings.
var layouts = [...]string{
	opUnshare: "n", opSethostname: "s", opMountpoint: "sn",
	opMount: "sssns", opRemountRO: "s", opCreate: "sn", opMkdir: "sn", opSymlink: "ss",
	opPivotRoot: "s", opMask: "s", opReadonly: "s", opRlimit: "nnn",
	opCaps: "n", opSetIDs: "nn", opChdir: "s", opSeccomp: "s", opExec: "nlll",
	opFchdir: "n", opAttach: "ns", opDoor: "nn", opUnmount: "s",
}

type step struct {
	code byte
	what string
	s    []string
	n    []uint64
	l    [][]string
}

// decode reads the whole plan before any of it runs: a malformed plan
// changes nothing.
func decode(plan []byte) ([]step, error) {
	d := &decoder{b: plan}
	var steps []step
	for len(d.b) > 0 && !d.bad {
		st := step{code: d.b[0]}
		d.b = d.b[1:]
		if st.code == 0 || int(st.code) >= len(layouts) {
			return nil, errBadPlan
		}
		st.what = d.str()
		for _, k := range layouts[st.code] {
			switch k {
			case 'n':
				st.n = append(st.n, d.num())
			case 's':
				st.s = append(st.s, d.str())
			case 'l':
				st.l = append(st.l, d.list())
			}
		}
		steps = append(steps, st)
	}
	if d.bad {
		return nil, errBadPlan
	}
	return steps, nil
}

func execute(plan []byte) error {
	steps, err := decode(plan)
	if err != nil {
		return err
	}
	for _, st := range steps {
		if err := st.run(); err != nil {
			return errors.New(st.what + ": " + err.Error())
		}
	}
	return errors.New("plan ended without an exec")
}

func (st *step) run() error {
	switch st.code {
	case opUnshare:
		return syscall.Unshare(int(st.n[0]))
	case opSethostname:
		return syscall.Sethostname([]byte(st.s[0]))
	case opMountpoint:
		return mountpoint(st.s[0], st.n[0] == 1)
	case opMount:
		return syscall.Mount(st.s[0], st.s[1], st.s[2], uintptr(st.n[0]), st.s[3])
	case opRemountRO:
		return remountRO(st.s[0])
	case opCreate:
		return create(st.s[0], uint32(st.n[0]))
	case opMkdir:
		return syscall.Mkdir(st.s[0], uint32(st.n[0]))
	case opSymlink:
		return syscall.Symlink(st.s[0], st.s[1])
	case opPivotRoot:
		return pivotRoot(st.s[0])
	case opMask:
		return mask(st.s[0])
	case opReadonly:
		return readonly(st.s[0])
	case opUnmount:
		return syscall.Unmount(st.s[0], syscall.MNT_DETACH)
	case opRlimit:
		lim := [2]uint64{st.n[1], st.n[2]}
		_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, 0, uintptr(st.n[0]), uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
		return errnoErr(errno)
	case opCaps:
		return limitCaps(st.n[0])
	case opSetIDs:
		return setIDs(uintptr(st.n[0]), uintptr(st.n[1]))
	case opChdir:
		return syscall.Chdir(st.s[0])
	case opSeccomp:
		return loadSeccomp(st.s[0])
	case opExec:
		return execFirst(st.n[0] == 1, st.l[0], st.l[1], st.l[2])
	case opFchdir:
		return syscall.Fchdir(int(st.n[0]))
	case opAttach:
		return attach(int(st.n[0]), st.s[0])
	case opDoor:
		return startDoor(int(st.n[0]), int(st.n[1]))
	}
	return errBadPlan
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func prctl(option int, arg2, arg3 uintptr) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, uintptr(option), arg2, arg3, 0, 0, 0)
	return errnoErr(errno)
}

// mountpoint makes sure a mountpoint exists in the rootfs, creating it when
// the rootfs allows: the rootfs is the chute developer's, and the daemon
// prepares the standard mountpoints at install.
func mountpoint(path string, dir bool) error {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) == nil {
		return nil
	}
	if dir {
		return mkdirAll(path)
	}
	return create(path, 0o644)
}

func mkdirAll(path string) error {
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			continue
		}
		if err := syscall.Mkdir(path[:i], 0o755); err != nil && err != syscall.EEXIST {
			return err
		}
	}
	return nil
}

func create(path string, mode uint32) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, mode)
	if err != nil {
		return err
	}
	return syscall.Close(fd)
}

// attach moves the detached tree at fd onto target and closes fd, which
// the chute's command must not inherit.
func attach(fd int, target string) error {
	p, err := syscall.BytePtrFromString(target)
	if err != nil {
		return err
	}
	empty := [1]byte{}
	atFDCWD := -100
	_, _, errno := syscall.Syscall6(sysMoveMount, uintptr(fd), uintptr(unsafe.Pointer(&empty[0])),
		uintptr(atFDCWD), uintptr(unsafe.Pointer(p)), moveMountFEmptyPath, 0)
	if errno != 0 {
		return errno
	}
	return syscall.Close(fd)
}

// remountRO makes the bind mount at path read-only. It repeats the flags
// of the mount: in a user namespace the kernel refuses to clear flags
// inherited from a more privileged mount namespace.
func remountRO(path string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return err
	}
	flags := uintptr(st.Flags) & mountFlagsKeptByRemnt
	return syscall.Mount("", path, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|flags, "")
}

func pivotRoot(root string) error {
	if err := syscall.Chdir(root); err != nil {
		return err
	}
	if err := syscall.PivotRoot(".", "."); err != nil {
		return err
	}
	if err := syscall.Unmount(".", syscall.MNT_DETACH); err != nil {
		return err
	}
	return syscall.Chdir("/")
}

// stat is stat(2), with ok false (and no error) for a path the kernel does
// not have: masked and read-only paths are skipped then.
func stat(path string) (st syscall.Stat_t, ok bool, err error) {
	err = syscall.Stat(path, &st)
	if err == syscall.ENOENT {
		return st, false, nil
	}
	return st, err == nil, err
}

func mask(path string) error {
	st, ok, err := stat(path)
	if !ok {
		return err
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return syscall.Mount("tmpfs", path, "tmpfs", syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "")
	}
	return syscall.Mount("/dev/null", path, "", syscall.MS_BIND, "")
}

func readonly(path string) error {
	if _, ok, err := stat(path); !ok {
		return err
	}
	if err := syscall.Mount(path, path, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return err
	}
	return remountRO(path)
}

// limitCaps drops the bounding set to keep, clears the ambient set and
// sets permitted and effective to keep, inheritable to nothing, so that
// nothing survives an exec into a non-root uid by inheritance.
func limitCaps(keep uint64) error {
	for c := range 64 {
		if keep&(1<<c) != 0 {
			continue
		}
		if err := prctl(prCapbsetDrop, uintptr(c), 0); err == syscall.EINVAL {
			break // past the kernel's last capability
		} else if err != nil {
			return err
		}
	}
	if err := prctl(prCapAmbient, prCapAmbientClearAll, 0); err != nil && err != syscall.EINVAL {
		return err
	}
	hdr := struct {
		version uint32
		pid     int32
	}{linuxCapabilityV3, 0}
	var data [2]struct{ effective, permitted, inheritable uint32 }
	for i := range data {
		data[i].effective = uint32(keep >> (32 * i))
		data[i].permitted = data[i].effective
	}
	_, _, errno := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	return errnoErr(errno)
}

// setIDs sets the ids of the calling thread, the one that execs, as
// limitCaps sets its capabilities: the exec leaves no other thread, and
// until then only the runtime's run, no code of the chute's. (Package
// syscall's Setuid and Setgid change every thread of the process: a stop
// of the world and a signal each thread must be scheduled to answer, 0.12
// ms against 3 µs in a fresh Go process, 0.5 ms at p90, at load 21 on 2
// CPUs.)
//
// A change of ids also clears the parent-death signal: it is set again,
// or a chute (or warm init) whose shim died would live on, unreaped and
// unstoppable. The shim's thread is alive here: it waits for this
// init's word.
func setIDs(uid, gid uintptr) error {
	if _, _, errno := syscall.RawSyscall(sysSetgid, gid, 0, 0); errno != 0 {
		return errno
	}
	if _, _, errno := syscall.RawSyscall(sysSetuid, uid, 0, 0); errno != 0 {
		return errno
	}
	return prctl(prSetPdeathsig, uintptr(syscall.SIGKILL), 0)
}

// sockFilter and sockFprog are struct sock_filter and struct sock_fprog.
type sockFilter struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

type sockFprog struct {
	len    uint16
	filter *sockFilter
}

func loadSeccomp(raw string) error {
	const size = int(unsafe.Sizeof(sockFilter{}))
	if len(raw) == 0 || len(raw)%size != 0 || len(raw)/size > 0xffff {
		return errBadPlan
	}
	filter := make([]sockFilter, len(raw)/size)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&filter[0])), len(raw)), raw)
	prog := sockFprog{len: uint16(len(filter)), filter: &filter[0]}
	if err := prctl(prSetNoNewPrivs, 1, 0); err != nil {
		return err
	}
	return prctl(prSetSeccomp, seccompModeFilter, uintptr(unsafe.Pointer(&prog)))
}

var errNotInPath = errors.New("executable file not found in $PATH")

// execFirst execs the first of paths that exists, as execvp does; search
// tells that paths come from $PATH, so that none existing means not found
// there.
func execFirst(search bool, paths, argv, envv []string) error {
	return firstPath(search, paths, func(p string) error { return syscall.Exec(p, argv, envv) })
}

// firstPath calls try with each of paths until one is found, as execvp
// tries them, and returns what it said.
func firstPath(search bool, paths []string, try func(path string) error) error {
	if len(paths) == 0 {
		return errNotInPath
	}
	var denied bool
	for _, p := range paths {
		err := try(p)
		switch {
		case err == nil || !search:
			return err
		case errors.Is(err, syscall.EACCES):
			denied = true
		case !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENOTDIR):
			return err
		}
	}
	if denied {
		return syscall.EACCES
	}
	return errNotInPath
}

// startDoor starts the health door from the binary at exeFD, with sockFD
// as its socket to the shim and /dev/null for its standard streams: the
// chute's output pipes are the chute's, and must close when it ends.
// Neither descriptor outlives init.
func startDoor(exeFD, sockFD int) error {
	syscall.CloseOnExec(exeFD)
	syscall.CloseOnExec(sockFD)
	defer syscall.Close(exeFD)
	defer syscall.Close(sockFD)
	null, err := syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(null)
	fd := uintptr(null)
	// One P: the door runs one command at a time, and its threads are
	// tasks of the chute's pids limit. GOGC 10: it lives on the chute's
	// memory limit, and the garbage of its checks would otherwise pile up
	// to the runtime's first heap goal of 4 MiB (a thousand checks took
	// it from 0.6 to 5.6 MiB; now 2.6, the runtime's own once it collects).
	_, err = syscall.ForkExec("/proc/self/fd/"+itoa(exeFD), []string{"paradrop-door", DoorCommand},
		&syscall.ProcAttr{Env: []string{"GOMAXPROCS=1", "GOGC=10"}, Files: []uintptr{fd, fd, fd, uintptr(sockFD)}})
	return err
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func readAll(fd int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 16<<10)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

func writeAll(fd int, b []byte) {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b = b[n:]
	}
}
