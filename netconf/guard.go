package netconf

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Guard is the host's side of chute isolation for one address family, a
// second line behind the switch's flows: whatever the flows let through
// to the host, chute traffic leaves by the WAN interface alone, and only
// from the prefixes allowed to.
type Guard struct {
	// Bridge is the interface the chutes' traffic reaches the host by.
	Bridge string
	// Chutes are the chutes' prefixes, all of one family.
	Chutes []netip.Prefix
	// WAN is the uplink that chute traffic may be forwarded out of; ""
	// for none.
	WAN string
	// WANFrom are the prefixes whose traffic may leave by WAN: the chute
	// subnet for IPv4 (masqueraded), the global prefix for IPv6 (routed).
	// Nothing leaves from the others.
	WANFrom []netip.Prefix
	// API is the chutes' API at the gateway (TCP), reached from the
	// chutes on Bridge and from nowhere else; invalid for none.
	API netip.AddrPort
}

// EnsureGuard makes the nftables table TABLE of g's family (ours alone,
// replaced whole and atomically) hold
//
//	forward: from WANFrom, accept only out of WAN; from Chutes, drop;
//	         to Chutes, only established/related
//	input:   from Chutes on Bridge, only established/related, ICMP (or
//	         ICMPv6), DNS and TCP to API reach the gateway itself; API is
//	         reached from nowhere else
//
// so chute traffic can never leave the host by any other interface, even
// with wrong flows, nothing unsolicited is forwarded to a chute, and the
// chutes' API is theirs alone. It acts on the calling thread's namespace.
func EnsureGuard(table string, g Guard) error {
	if err := g.validate(table); err != nil {
		return fmt.Errorf("nftables guard %q: %w", table, err)
	}
	if err := ensureGuard(table, g); err != nil {
		return fmt.Errorf("nftables guard %q: %w", table, err)
	}
	return nil
}

func (g Guard) validate(table string) error {
	switch {
	case table == "":
		return errors.New("no table name")
	case g.Bridge == "" || len(g.Bridge) > unix.IFNAMSIZ-1:
		return fmt.Errorf("bridge name must be 1 to %d bytes", unix.IFNAMSIZ-1)
	case len(g.WAN) > unix.IFNAMSIZ-1:
		return fmt.Errorf("WAN interface name must be at most %d bytes", unix.IFNAMSIZ-1)
	case len(g.Chutes) == 0:
		return errors.New("no chute prefix")
	}
	is4 := g.Chutes[0].Addr().Is4()
	for _, p := range append(append([]netip.Prefix{}, g.Chutes...), g.WANFrom...) {
		if !p.IsValid() || p.Addr().Is4() != is4 || p.Addr().Is4In6() {
			return fmt.Errorf("prefix %s is not of the family of %s", p, g.Chutes[0])
		}
	}
	if g.API.IsValid() && g.API.Addr().Is4() != is4 {
		return fmt.Errorf("API address %s is not of the family of %s", g.API, g.Chutes[0])
	}
	return nil
}

func ensureGuard(table string, g Guard) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	family := familyOf(g.Chutes[0])
	icmp := byte(unix.IPPROTO_ICMP)
	if family == nftables.TableFamilyIPv6 {
		icmp = unix.IPPROTO_ICMPV6
	}
	t := &nftables.Table{Name: table, Family: family}
	replaceTable(c, t)
	accept := nftables.ChainPolicyAccept
	chain := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	}
	rule := func(ch *nftables.Chain, exprs ...[]expr.Any) {
		var all []expr.Any
		for _, e := range exprs {
			all = append(all, e...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: all})
	}
	acceptV, dropV := verdict(expr.VerdictAccept), verdict(expr.VerdictDrop)

	fwd := chain("forward", nftables.ChainHookForward)
	if g.WAN != "" {
		for _, p := range g.WANFrom {
			rule(fwd, inPrefix(true, p), ifname(expr.MetaKeyOIFNAME, g.WAN), acceptV)
		}
	}
	for _, p := range g.Chutes {
		rule(fwd, inPrefix(true, p), dropV)
		rule(fwd, inPrefix(false, p), ctEstablished(), acceptV)
		rule(fwd, inPrefix(false, p), dropV)
	}

	in := chain("input", nftables.ChainHookInput)
	onBridge := ifname(expr.MetaKeyIIFNAME, g.Bridge)
	for _, p := range g.Chutes {
		from := inPrefix(true, p)
		rule(in, onBridge, from, ctEstablished(), acceptV)
		rule(in, onBridge, from, l4proto(icmp), acceptV)
		for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			rule(in, onBridge, from, l4proto(proto), dport(53), acceptV)
		}
	}
	if g.API.IsValid() {
		toAPI := [][]expr.Any{l4proto(unix.IPPROTO_TCP), isAddr(false, g.API.Addr()), dport(g.API.Port())}
		for _, p := range g.Chutes {
			rule(in, append([][]expr.Any{onBridge, inPrefix(true, p)}, append(toAPI, acceptV)...)...)
		}
		// The LAN, the host itself and anything else: as if it were
		// not there.
		rule(in, append(toAPI, dropV)...)
	}
	for _, p := range g.Chutes {
		rule(in, inPrefix(true, p), dropV)
	}
	return c.Flush()
}

// EnableForwarding6 turns IPv6 forwarding on in the calling thread's
// namespace (EnsureMasquerade does IPv4's). It is never turned off:
// something else on the gateway may rely on it. Linux then ignores router
// advertisements on interfaces whose accept_ra is 1: a WAN configured by
// them needs accept_ra 2.
func EnableForwarding6() error {
	if err := writeSysctl("net/ipv6/conf/all/forwarding", "1"); err != nil {
		return fmt.Errorf("IPv6 forwarding: %w", err)
	}
	return nil
}
