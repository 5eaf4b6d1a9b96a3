package sandbox

import (
	"fmt"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

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

// dropCaps limits the calling thread to defaultCaps: bounding, permitted and
// effective become the set, inheritable and ambient are cleared (so nothing
// survives an exec into a non-root uid by inheritance). Capabilities are per
// thread: call it on the thread that will exec.
func dropCaps() error {
	c, err := capability.NewPid2(0)
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	if err := c.Load(); err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	c.Clear(capability.CAPS | capability.BOUNDS | capability.AMBS)
	c.Set(capability.BOUNDING|capability.PERMITTED|capability.EFFECTIVE, defaultCaps...)
	if err := c.Apply(capability.CAPS | capability.BOUNDS | capability.AMBS); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	return nil
}

// setIDs switches the process to uid/gid. Called after dropCaps, since a
// uid other than 0 loses the capabilities needed to drop the bounding set;
// such a chute ends up with no capabilities at all after its exec.
func setIDs(uid, gid uint32) error {
	if err := unix.Setgid(int(gid)); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := unix.Setuid(int(uid)); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	return nil
}
