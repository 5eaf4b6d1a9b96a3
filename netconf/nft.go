package netconf

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The nftables expressions our tables are made of (the masquerade and the
// guard), and the way we own a table: replaced whole, atomically.

// replaceTable queues, in c's batch, the table t emptied: add+delete+add
// replaces it whether or not it existed, in the one transaction Flush
// commits, so no packet sees it half-built.
func replaceTable(c *nftables.Conn, t *nftables.Table) {
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
}

// familyOf is the nftables family of prefix p.
func familyOf(p netip.Prefix) nftables.TableFamily {
	if p.Addr().Is4() {
		return nftables.TableFamilyIPv4
	}
	return nftables.TableFamilyIPv6
}

// inPrefix matches the packet's source (or destination) address against
// p, of either family.
func inPrefix(src bool, p netip.Prefix) []expr.Any {
	n := uint32(p.Addr().BitLen() / 8)
	offset := map[bool]uint32{true: 12, false: 16}[src] // IPv4
	if n == 16 {
		offset = map[bool]uint32{true: 8, false: 24}[src]
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n,
			Mask: net.CIDRMask(p.Bits(), int(n*8)), Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// isAddr matches the packet's source (or destination) address.
func isAddr(src bool, a netip.Addr) []expr.Any {
	return inPrefix(src, netip.PrefixFrom(a, a.BitLen()))
}

// ifname matches the input or output (key) interface's name.
func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// ctEstablished matches packets of a connection the host's tracker knows
// (established or related to one).
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

func verdict(v expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: v}} }
