package sandbox

import (
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// reap waits for cmd's process to end, then reaps it with cmd.Wait. The
// daemon waits for every shim it starts for as long as the shim lives;
// os.Process.Wait blocks an OS thread in waitid all that time, and the Go
// runtime never lets go of a thread it made, so each running chute kept
// one (its stacks, 48 KiB, in the daemon's private memory). The exit is
// awaited instead on a pidfd in the runtime's poller, which holds no
// thread; Wait then finds a zombie and returns at once.
func reap(cmd *exec.Cmd) error {
	awaitExit(cmd.Process.Pid)
	return cmd.Wait()
}

// awaitExit returns once the child pid has exited (and is not yet
// reaped: only its parent's wait does that, so the pid cannot be another
// process's meanwhile). Where pidfds cannot be polled (Linux before 5.3)
// it returns at once, leaving the wait to block a thread as before.
func awaitExit(pid int) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return
	}
	// Non-blocking, so os registers it with the poller.
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	// A pidfd is readable once its process has exited. An error from
	// Read (not pollable) leaves the wait to cmd.Wait.
	rc.Read(func(fd uintptr) bool {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		return n > 0 || (err != nil && err != unix.EINTR)
	})
}
