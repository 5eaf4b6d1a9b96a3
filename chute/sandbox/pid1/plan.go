// Package pid1 is a chute's init until it becomes the chute's command: the
// process the shim clones into the chute's namespaces, which carries out
// the shim's Plan (mounts, pivot_root, limits, capabilities, seccomp) and
// execs the command, which then is pid 1 of the chute.
//
// The role runs from this package's init function, before the rest of the
// binary is initialised. Go initialises, at each step, the first package
// by import path whose imports are all initialised; this package imports
// only what package os needs, so it comes right after os. The daemon's
// other dependencies (protobuf registries, regular expressions,
// Prometheus, seccomp tables...) cost a start 10 ms and more of package
// initialisation, and page faults, that init has no use for. That is also
// why the shim, with the whole binary at hand, decides everything and sends
// a plan of plain system calls: building it needs formatting, seccomp
// assembly and path handling that this package must not import.
//
// Do not add imports to it beyond errors, os, syscall, time and unsafe
// (time being one of os's own).
package pid1

import (
	"errors"
	"os"
	"syscall"
)

// Command is the argument (os.Args[1], the only one) that makes the
// process the chute's init.
const Command = "__init"

// File descriptors the shim passes to init.
const (
	PlanFD   = 3 // the Plan; arrives once the process is in its cgroup
	StatusFD = 4 // init writes why it failed; closed by a successful exec
)

func init() {
	if len(os.Args) == 2 && (os.Args[1] == Command || os.Args[1] == WarmCommand) {
		// Package initialisation runs on the main thread, locked to it:
		// capabilities, no_new_privs and the seccomp filter, which belong
		// to a thread, go to the one that execs, and so do the cgroups
		// and ids a warm init takes.
		if os.Args[1] == WarmCommand {
			if !awaitAssignment() {
				os.Exit(1)
			}
		}
		syscall.CloseOnExec(StatusFD)
		err := run()
		writeAll(StatusFD, []byte(err.Error()))
		os.Exit(1)
	}
	if len(os.Args) == 2 && os.Args[1] == DoorCommand {
		door()
		os.Exit(0)
	}
}

func run() error {
	plan, err := readAll(PlanFD)
	if err != nil {
		return errors.New("read plan from shim: " + err.Error())
	}
	syscall.Close(PlanFD)
	return execute(plan)
}

// Operations of a plan. Each is encoded as its code, a description for
// error messages, then its arguments: numbers as 8 bytes little endian,
// strings as a 4-byte length and the bytes, lists as a count and strings.
const (
	opUnshare     = iota + 1 // flags
	opSethostname            // name
	opMountpoint             // path, dir (0 or 1): create it if missing
	opMount                  // source, target, fstype, flags, data
	opRemountRO              // path
	opCreate                 // path, mode: an empty file
	opMkdir                  // path, mode
	opSymlink                // target, link
	opPivotRoot              // path
	opMask                   // path: hidden, if it exists
	opReadonly               // path: read-only, if it exists
	opRlimit                 // resource, soft, hard
	opCaps                   // mask of the capabilities kept
	opSetIDs                 // uid, gid
	opChdir                  // path
	opSeccomp                // filter: sock_filter array
	opExec                   // search (0 or 1), candidate paths, argv, envv
	opFchdir                 // fd
	opAttach                 // fd, target: a detached mount tree
	opDoor                   // binary fd, socket fd: start the health door
	opUnmount                // path: detached
)

// Plan is the list of operations init carries out, in order. The shim
// builds it; init runs it.
type Plan struct {
	b []byte
}

// Bytes is the encoded plan.
func (p *Plan) Bytes() []byte { return p.b }

func (p *Plan) num(v uint64) {
	for i := range 8 {
		p.b = append(p.b, byte(v>>(8*i)))
	}
}

func (p *Plan) str(s string) {
	n := uint32(len(s))
	p.b = append(p.b, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	p.b = append(p.b, s...)
}

func (p *Plan) list(ss []string) {
	p.num(uint64(len(ss)))
	for _, s := range ss {
		p.str(s)
	}
}

func (p *Plan) op(code byte, what string) {
	p.b = append(p.b, code)
	p.str(what)
}

// strOp is an operation whose one argument is a string.
func (p *Plan) strOp(code byte, what, arg string) {
	p.op(code, what)
	p.str(arg)
}

// Unshare moves init into new namespaces (flags are CLONE_NEW*).
func (p *Plan) Unshare(what string, flags uintptr) {
	p.op(opUnshare, what)
	p.num(uint64(flags))
}

// Sethostname sets the hostname of init's UTS namespace.
func (p *Plan) Sethostname(what, name string) { p.strOp(opSethostname, what, name) }

// Mountpoint makes sure path exists, creating a directory (dir) or an
// empty file if not.
func (p *Plan) Mountpoint(what, path string, dir bool) {
	p.op(opMountpoint, what)
	p.str(path)
	var d uint64
	if dir {
		d = 1
	}
	p.num(d)
}

// Mount is mount(2).
func (p *Plan) Mount(what, source, target, fstype string, flags uintptr, data string) {
	p.op(opMount, what)
	p.str(source)
	p.str(target)
	p.str(fstype)
	p.num(uint64(flags))
	p.str(data)
}

// RemountRO makes the bind mount at path read-only, keeping the flags the
// kernel locks in a user namespace.
func (p *Plan) RemountRO(what, path string) { p.strOp(opRemountRO, what, path) }

// Create creates an empty file.
func (p *Plan) Create(what, path string, mode uint32) {
	p.op(opCreate, what)
	p.str(path)
	p.num(uint64(mode))
}

// Mkdir creates a directory.
func (p *Plan) Mkdir(what, path string, mode uint32) {
	p.op(opMkdir, what)
	p.str(path)
	p.num(uint64(mode))
}

// Symlink creates link pointing to target.
func (p *Plan) Symlink(what, target, link string) {
	p.op(opSymlink, what)
	p.str(target)
	p.str(link)
}

// PivotRoot makes path the root and detaches the old one, with
// pivot_root(".", "."), which needs no directory for the old root.
func (p *Plan) PivotRoot(what, path string) { p.strOp(opPivotRoot, what, path) }

// Mask hides path, if it exists: a directory behind an empty read-only
// tmpfs, a file behind /dev/null.
func (p *Plan) Mask(what, path string) { p.strOp(opMask, what, path) }

// Unmount detaches the mount at path (umount2 with MNT_DETACH).
func (p *Plan) Unmount(what, path string) { p.strOp(opUnmount, what, path) }

// Readonly binds path over itself read-only, if it exists.
func (p *Plan) Readonly(what, path string) { p.strOp(opReadonly, what, path) }

// Rlimit sets a resource limit (an RLIMIT_* number).
func (p *Plan) Rlimit(what string, resource int, soft, hard uint64) {
	p.op(opRlimit, what)
	p.num(uint64(resource))
	p.num(soft)
	p.num(hard)
}

// Caps limits the thread to the capabilities in keep (bit n is capability
// n): bounding, permitted and effective become the set; inheritable and
// ambient are cleared.
func (p *Plan) Caps(what string, keep uint64) {
	p.op(opCaps, what)
	p.num(keep)
}

// SetIDs switches to gid and uid.
func (p *Plan) SetIDs(what string, uid, gid uint32) {
	p.op(opSetIDs, what)
	p.num(uint64(uid))
	p.num(uint64(gid))
}

// Chdir changes the working directory.
func (p *Plan) Chdir(what, path string) { p.strOp(opChdir, what, path) }

// Seccomp sets no_new_privs and loads filter, an array of struct
// sock_filter in the machine's byte order, on the thread.
func (p *Plan) Seccomp(what string, filter []byte) {
	p.op(opSeccomp, what)
	p.str(string(filter))
}

// Exec execs the first of paths that exists, as execvp does, with argv and
// envv; search says the paths come from $PATH, so that none existing (or
// none at all) fails as a command not found there.
func (p *Plan) Exec(what string, search bool, paths, argv, envv []string) {
	p.op(opExec, what)
	var s uint64
	if search {
		s = 1
	}
	p.num(s)
	p.list(paths)
	p.list(argv)
	p.list(envv)
}

// Fchdir changes the working directory to the directory open at fd.
func (p *Plan) Fchdir(what string, fd int) {
	p.op(opFchdir, what)
	p.num(uint64(fd))
}

// Attach mounts at target the detached mount tree open at fd (from
// open_tree(2) with OPEN_TREE_CLONE), with move_mount(2), and closes fd.
// The shim clones the trees, as host root, from paths the chute's root
// user may not be allowed to reach: attaching them needs no path but the
// target's.
func (p *Plan) Attach(what string, fd int, target string) {
	p.op(opAttach, what)
	p.num(uint64(fd))
	p.str(target)
}

// Door fork-execs the health door (see DoorCommand) from the binary open
// at exeFD, with sockFD as its socket to the shim; it closes both. As the
// step before Exec, it gives the door the confinement of the chute's
// command.
func (p *Plan) Door(what string, exeFD, sockFD int) {
	p.op(opDoor, what)
	p.num(uint64(exeFD))
	p.num(uint64(sockFD))
}

// decoder reads a plan; a malformed plan sets bad and yields zeros.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) num() uint64 {
	if len(d.b) < 8 {
		d.bad = true
		return 0
	}
	var v uint64
	for i := range 8 {
		v |= uint64(d.b[i]) << (8 * i)
	}
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string {
	if len(d.b) < 4 {
		d.bad = true
		return ""
	}
	n := uint64(d.b[0]) | uint64(d.b[1])<<8 | uint64(d.b[2])<<16 | uint64(d.b[3])<<24
	if uint64(len(d.b)-4) < n {
		d.bad = true
		return ""
	}
	s := string(d.b[4 : 4+n])
	d.b = d.b[4+n:]
	return s
}

func (d *decoder) list() []string {
	n := d.num()
	if n > uint64(len(d.b)) { // every string takes 4 bytes at least
		d.bad = true
		return nil
	}
	ss := make([]string, 0, n)
	for range n {
		ss = append(ss, d.str())
	}
	return ss
}

var errBadPlan = errors.New("malformed plan")
