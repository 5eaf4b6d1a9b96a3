package netconf

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// MoveNetNS moves the chute's network from the namespace pinned at path
// (by EnsureNetNS, or by an earlier MoveNetNS) into the namespace target
// (a /proc/PID/ns/net), then pins path on target.
//
// It exists for chutes whose network namespace must belong to their own
// user namespace, so that capabilities they hold there (NET_RAW,
// NET_ADMIN) apply to it: such a namespace can only be made with the
// chute's process, at each start. The chute's eth0 (see Link), if there
// is one, goes across with its addresses, routes and state; the host end
// of its veth stays where it is, so the chute's bridge port and its flows
// are untouched. Links the chute made itself stay behind: a new instance
// starts without them, as it starts with an empty /tmp. Target's lo is
// brought up and the chute sysctls are applied, as EnsureNetNS does.
// Nothing is moved back: the namespace pinned before is dropped, and goes
// once nothing else holds it. With path empty, target only gets lo up and
// the sysctls.
func MoveNetNS(path, target string) error {
	if path == "" {
		if err := InNetNS(target, setUpNetNS); err != nil {
			return fmt.Errorf("set up netns %s: %w", target, err)
		}
		return nil
	}
	if err := moveChuteIf(path, target); err != nil {
		return fmt.Errorf("move netns %s to %s: %w", path, target, err)
	}
	if err := InNetNS(target, setUpNetNS); err != nil {
		return fmt.Errorf("move netns %s to %s: %w", path, target, err)
	}
	if err := repin(path, target); err != nil {
		return fmt.Errorf("move netns %s to %s: %w", path, target, err)
	}
	return nil
}

// MoveNetNSPrepared is MoveNetNS into a target that MoveNetNS("", target)
// set up beforehand (lo up, the chute sysctls): only the chute's eth0
// goes across, and path is pinned on target. A sandbox that makes a
// chute's namespace before it knows the chute (a warm init) so takes
// the set-up off the chute's start. With path empty, it does nothing.
func MoveNetNSPrepared(path, target string) error {
	if path == "" {
		return nil
	}
	if err := moveChuteIf(path, target); err != nil {
		return fmt.Errorf("move netns %s to %s: %w", path, target, err)
	}
	if err := repin(path, target); err != nil {
		return fmt.Errorf("move netns %s to %s: %w", path, target, err)
	}
	return nil
}

// moveChuteIf moves eth0 from the namespace at path to target with what
// it loses on the way: addresses, routes, up state.
func moveChuteIf(path, target string) error {
	from, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := netns.GetFromPath(target)
	if err != nil {
		return err
	}
	defer to.Close()
	fh, err := netlink.NewHandleAt(from)
	if err != nil {
		return err
	}
	defer fh.Close()
	th, err := netlink.NewHandleAt(to)
	if err != nil {
		return err
	}
	defer th.Close()

	l, err := lookupLink(fh, chuteIf)
	if err != nil || l == nil {
		return err
	}
	addrs, err := fh.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", chuteIf, err)
	}
	routes, err := fh.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("routes of %s: %w", chuteIf, err)
	}
	// The kernel's own (those of the addresses, IPv6 link-local) come
	// back by themselves.
	addrs = slices.DeleteFunc(addrs, func(a netlink.Addr) bool { return a.IP.IsLinkLocalUnicast() })
	routes = slices.DeleteFunc(routes, func(r netlink.Route) bool { return r.Protocol == unix.RTPROT_KERNEL || r.Table == unix.RT_TABLE_LOCAL })
	up := l.Attrs().Flags&net.FlagUp != 0
	if err := fh.LinkSetNsFd(l, int(to)); err != nil {
		return fmt.Errorf("move %s: %w", chuteIf, err)
	}

	if l, err = th.LinkByName(chuteIf); err != nil {
		return err
	}
	for _, a := range addrs {
		a.LinkIndex = 0
		if err := th.AddrAdd(l, &a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("address %s of %s: %w", a.IPNet, chuteIf, err)
		}
	}
	if up {
		if err := th.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", chuteIf, err)
		}
	}
	// Narrowest scope first: a route via a gateway needs the on-link
	// route that reaches it.
	slices.SortStableFunc(routes, func(a, b netlink.Route) int { return int(b.Scope) - int(a.Scope) })
	for _, r := range routes {
		r.LinkIndex = l.Attrs().Index
		if err := th.RouteReplace(&r); err != nil {
			return fmt.Errorf("route %s: %w", r, err)
		}
	}
	return nil
}

// setUpNetNS is what every chute namespace has: lo up, the chute sysctls.
// It runs in the namespace (see InNetNS).
func setUpNetNS() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return ApplyChuteSysctls()
}

// ApplyChuteSysctls sets the chute sysctls (see chuteSysctls) in the
// network namespace of the calling thread: for a caller that made a
// chute's namespace itself and entered it on a locked thread.
func ApplyChuteSysctls() error {
	for _, s := range chuteSysctls {
		if err := writeSysctl(s.key, s.value); err != nil {
			return err
		}
	}
	return nil
}

// repin makes path a pin of target, and of it only.
func repin(path, target string) error {
	for range maxStacked {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return fmt.Errorf("unpin: %w", err)
		}
	}
	if err := unix.Mount(target, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	return nil
}
