package sandbox

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/sys/capability"
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

// capMask is caps as a bit mask, bit n for capability n.
func capMask(caps []capability.Cap) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << uint(c)
	}
	return m
}

// extraCaps resolves the names of Spec.Caps ("NET_RAW").
func extraCaps(names []string) ([]capability.Cap, error) {
	var caps []capability.Cap
	for _, n := range names {
		i := slices.IndexFunc(capability.ListKnown(), func(c capability.Cap) bool {
			return strings.EqualFold("CAP_"+c.String(), n) || strings.EqualFold(c.String(), n)
		})
		if i < 0 {
			return nil, fmt.Errorf("spec: unknown capability %q", n)
		}
		caps = append(caps, capability.ListKnown()[i])
	}
	return caps, nil
}

// netCaps act on the chute's network namespace; the kernel checks them
// against the user namespace that owns it.
var netCaps = []capability.Cap{capability.CAP_NET_RAW, capability.CAP_NET_ADMIN}

// ownNetNS says whether the chute keeps a capability of netCaps in a user
// namespace of its own, and so needs a network namespace that user
// namespace owns: in one the daemon made (owned by the host's), such a
// capability would act on nothing.
func (s Spec) ownNetNS() bool {
	if s.ownNet {
		return true
	}
	caps, _ := extraCaps(s.Caps)
	return s.UserNS && slices.ContainsFunc(caps, func(c capability.Cap) bool { return slices.Contains(netCaps, c) })
}
