//go:build !386 && !arm

package pid1

import "syscall"

// setuid(2) and setgid(2) with 32-bit ids.
const (
	sysSetuid = syscall.SYS_SETUID
	sysSetgid = syscall.SYS_SETGID
)
