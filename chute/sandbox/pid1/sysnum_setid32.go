//go:build 386 || arm

package pid1

import "syscall"

// setuid32(2) and setgid32(2): the plain numbers take 16-bit ids here.
const (
	sysSetuid = syscall.SYS_SETUID32
	sysSetgid = syscall.SYS_SETGID32
)
