package pid1

import (
	"errors"
	"syscall"
)

// WarmCommand is the argument that makes the process a warm init: an init
// a monitor clones before it has a chute for it, with its namespaces made
// and its runtime started, waiting on WarmFD for its assignment. Until
// then it runs no code but this package's and holds nothing of a chute's.
const WarmCommand = "__warm"

// WarmFD is a warm init's unix socket to the monitor. Its one message is
// the assignment: a byte n, and n+m descriptors (SCM_RIGHTS), of which the
// first n become fds 1 to n (stdout, stderr, PlanFD, StatusFD, then what
// the plan names), the other m being cgroup v1 tasks files, opened by the
// monitor, that init's thread moves itself into by writing "0" (the
// kernel checks the opener's credentials). The monitor has written init's
// uid and gid maps before it sends it; init becomes the namespace's root,
// then goes on as an init started with Command.
const WarmFD = 3

// maxAssigned bounds the descriptors of an assignment (SCM_MAX_FD).
const maxAssigned = 253

// awaitAssignment waits for the assignment and takes it: the descriptors
// in their places, the chute's cgroups, the namespace's root ids. It
// says whether init is to go on; once the descriptors are placed, it
// tells the monitor why not on StatusFD (before, there is no one to tell:
// the monitor sees the status pipe close without a word, and init's exit).
func awaitAssignment() bool {
	err := assigned()
	if err == errUnplaced {
		return false
	}
	if err != nil {
		writeAll(StatusFD, []byte(err.Error()))
		return false
	}
	return true
}

var errUnplaced = errors.New("no assignment")

func assigned() error {
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(maxAssigned*4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = syscall.Recvmsg(WarmFD, buf, oob, syscall.MSG_CMSG_CLOEXEC)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil || n != 1 {
		return errUnplaced
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return errUnplaced
	}
	var fds []int
	for i := range msgs {
		got, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			return errUnplaced
		}
		fds = append(fds, got...)
	}
	placed := int(buf[0])
	if placed < StatusFD || placed > len(fds) {
		return errUnplaced
	}
	if placeFDs(fds, placed) != nil {
		return errUnplaced
	}
	// From here on, errors reach the monitor on StatusFD.
	for _, fd := range fds[placed:] {
		_, err := syscall.Write(fd, []byte("0"))
		syscall.Close(fd)
		if err != nil {
			return errors.New("enter the chute's cgroup: " + err.Error())
		}
	}
	// The maps are written: become the namespace's root, as an init
	// cloned with them does (package syscall's Credential).
	if err := setIDs(0, 0); err != nil {
		return errors.New("become root of the user namespace: " + err.Error())
	}
	return nil
}

// placeFDs makes fds[i], for i < placed, descriptor i+1, inherited by the
// exec, and closes the originals; the others it only moves. Each is first
// moved above every target, so that placing one never closes another (the
// socket at WarmFD is closed by its replacement).
func placeFDs(fds []int, placed int) error {
	for i, fd := range fds {
		r, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, uintptr(placed+1))
		if errno != 0 {
			return errno
		}
		syscall.Close(fd)
		fds[i] = int(r)
	}
	for i, fd := range fds[:placed] {
		if err := syscall.Dup3(fd, i+1, 0); err != nil {
			return err
		}
		syscall.Close(fd)
	}
	return nil
}
