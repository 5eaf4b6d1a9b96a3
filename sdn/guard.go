package sdn

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ensureGuard makes the nftables table `ip TABLE` (ours alone, replaced
// whole and atomically) hold the host's side of chute isolation, a second
// line behind the flows:
//
//	forward: from the chute subnet, accept only out of wanIf ("" = nowhere),
//	         drop otherwise; to the chute subnet, only established/related
//	input:   from the chute subnet on the bridge, only established/related,
//	         ICMP, DNS and, with api valid, TCP to api reach the gateway
//	         itself; api is reached from nowhere else
//
// so chute traffic can never leave the host by any other interface, even
// with wrong flows, and the chutes' API is theirs alone. The table `ip6
// TABLE` does the same for the chutes' IPv6 subnet6 (ICMPv6 for ICMP),
// which leaves by no interface and has no API yet.
func ensureGuard(table, bridge string, subnet, subnet6 netip.Prefix, wanIf string, api netip.AddrPort) error {
	if err := ensureGuardTable(table, bridge, subnet, wanIf, api); err != nil {
		return fmt.Errorf("nftables guard %q: %w", table, err)
	}
	if err := ensureGuardTable(table, bridge, subnet6, "", netip.AddrPort{}); err != nil {
		return fmt.Errorf("nftables guard ip6 %q: %w", table, err)
	}
	return nil
}

func ensureGuardTable(table, bridge string, subnet netip.Prefix, wanIf string, api netip.AddrPort) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	family, icmp := nftables.TableFamilyIPv4, byte(unix.IPPROTO_ICMP)
	if subnet.Addr().Is6() {
		family, icmp = nftables.TableFamilyIPv6, unix.IPPROTO_ICMPV6
	}
	t := &nftables.Table{Name: table, Family: family}
	// add+delete+add in one batch replaces the table atomically.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
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
	verdict := func(v expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: v}} }
	from, to := inSubnet(true, subnet), inSubnet(false, subnet)

	fwd := chain("forward", nftables.ChainHookForward)
	if wanIf != "" {
		rule(fwd, from, ifname(expr.MetaKeyOIFNAME, wanIf), verdict(expr.VerdictAccept))
	}
	rule(fwd, from, verdict(expr.VerdictDrop))
	rule(fwd, to, ctEstablished(), verdict(expr.VerdictAccept))
	rule(fwd, to, verdict(expr.VerdictDrop))

	in := chain("input", nftables.ChainHookInput)
	onBridge := ifname(expr.MetaKeyIIFNAME, bridge)
	rule(in, onBridge, from, ctEstablished(), verdict(expr.VerdictAccept))
	rule(in, onBridge, from, l4proto(icmp), verdict(expr.VerdictAccept))
	for _, p := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		rule(in, onBridge, from, l4proto(p), dport(53), verdict(expr.VerdictAccept))
	}
	if api.IsValid() {
		toAPI := [][]expr.Any{l4proto(unix.IPPROTO_TCP), isAddr(false, api.Addr()), dport(api.Port())}
		rule(in, append([][]expr.Any{onBridge, from}, append(toAPI, verdict(expr.VerdictAccept))...)...)
		// The LAN, the host itself and anything else: as if it were
		// not there.
		rule(in, append(toAPI, verdict(expr.VerdictDrop))...)
	}
	rule(in, from, verdict(expr.VerdictDrop))
	return c.Flush()
}

// inSubnet matches the packet's source (or destination) address against
// subnet, of either family.
func inSubnet(src bool, subnet netip.Prefix) []expr.Any {
	n := uint32(subnet.Addr().BitLen() / 8)
	offset := map[bool]uint32{true: 12, false: 16}[src] // IPv4
	if n == 16 {
		offset = map[bool]uint32{true: 8, false: 24}[src]
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n,
			Mask: net.CIDRMask(subnet.Bits(), int(n*8)), Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: subnet.Masked().Addr().AsSlice()},
	}
}

// isAddr matches the packet's source (or destination) address.
func isAddr(src bool, a netip.Addr) []expr.Any {
	return inSubnet(src, netip.PrefixFrom(a, a.BitLen()))
}

func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

func ctEstablished() []expr.Any {
	bits := expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func dport(port uint16) []expr.Any {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, port)
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}
