package sandbox

import "github.com/moby/sys/capability"

// defaultCaps is what a chute keeps: Docker's default set without MKNOD,
// NET_RAW and SETFCAP, which a gateway app has no use for.
var defaultCaps = []capability.Cap{
	capability.CAP_CHOWN,
	capability.CAP_DAC_OVERRIDE,
	capability.CAP_FOWNER,
	capability.CAP_FSETID,
	capability.CAP_KILL,
	capability.CAP_SETGID,
	capability.CAP_SETUID,
	capability.CAP_SETPCAP,
	capability.CAP_NET_BIND_SERVICE,
	capability.CAP_SYS_CHROOT,
	capability.CAP_AUDIT_WRITE,
}

// capMask is caps as a bit mask, bit n for capability n.
func capMask(caps []capability.Cap) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << uint(c)
	}
	return m
}
