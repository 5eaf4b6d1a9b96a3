package ofsim

import (
	"net/netip"

	"paradrop/sdn/ofp"
)

// tuple is a connection's identity as one direction's packets carry it.
// ICMP echoes use their identifier as both ports.
type tuple struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
}

func (t tuple) reverse() tuple {
	return tuple{src: t.dst, dst: t.src, proto: t.proto, sport: t.dport, dport: t.sport}
}

func tupleOf(p *Packet) tuple {
	t := tuple{src: p.Src, dst: p.Dst, proto: p.Proto}
	switch {
	case p.Proto == ProtoTCP || p.Proto == ProtoUDP:
		t.sport, t.dport = p.SrcPort, p.DstPort
	case p.isICMP():
		t.sport, t.dport = p.ICMPID, p.ICMPID
	}
	return t
}

func (p *Packet) setTuple(t tuple) {
	p.Src, p.Dst = t.src, t.dst
	if p.Proto == ProtoTCP || p.Proto == ProtoUDP {
		p.SrcPort, p.DstPort = t.sport, t.dport
	}
}

// conn is a committed connection: orig as its first packet was sent,
// reply as the answers are sent (the reverse of orig after NAT).
type conn struct {
	zone        uint16
	orig, reply tuple
	snat, dnat  bool
	// seenReply: a packet of the reply direction has passed. Until then
	// the connection's packets are new, as the kernel's tracker has them
	// (IP_CT_NEW until IPS_SEEN_REPLY): a UDP flow's second datagram
	// before any answer is +new, with its NAT applied (+dnat).
	seenReply bool
}

// tracker is Open vSwitch's connection tracker, reduced to the states the
// flows match on: a packet of no committed connection is new (a SYN-ACK,
// a TCP segment of impossible flags, or an echo reply, is invalid
// instead),
// one of a committed connection is established once a reply has passed
// (new before that), in the reply direction also rpl, and an ICMP error quoting a connection's packet is related.
type tracker struct {
	conns []*conn
}

func (tk *tracker) find(zone uint16, t tuple) (c *conn, reply bool) {
	for _, c := range tk.conns {
		if c.zone != zone {
			continue
		}
		switch t {
		case c.orig:
			return c, false
		case c.reply:
			return c, true
		}
	}
	return nil, false
}

// tcpValidNew says whether a TCP segment of these flags may start a
// connection, as Open vSwitch's userspace tracker has it (tcp_valid_new):
// a SYN, and also a segment of a connection already under way (an ACK, a
// RST, a FIN with its ACK: the tracker picks it up, as Linux's does with
// nf_conntrack_tcp_loose), but not a SYN-ACK nor impossible flags.
func tcpValidNew(flags uint16) bool {
	syn, ack := flags&TCPSyn != 0, flags&TCPAck != 0
	switch {
	case syn && (ack || flags&(TCPRst|TCPFin) != 0):
		return false
	case !syn && !ack && flags&TCPRst == 0:
		return false
	case !ack && flags&TCPFin != 0:
		return false
	}
	return true
}

// track passes p through the tracker as the ct action a does, rewriting
// it for NAT, and returns its ct_state.
func (tk *tracker) track(a *ofp.NXActionCT, p *Packet) uint32 {
	zone := a.ZoneOfsNbits
	var nat *ofp.NXActionNAT
	for _, x := range a.Actions {
		if n, ok := x.(*ofp.NXActionNAT); ok {
			nat = n
		}
	}
	commit := a.Flags&ofp.NXCTFlagCommit != 0
	const trk = ofp.CtStateTrk

	if p.isICMPError() {
		if p.Inner != nil {
			if c, _ := tk.find(zone, tupleOf(p.Inner)); c != nil {
				return trk | ofp.CtStateRel
			}
		}
		return trk | ofp.CtStateInv
	}
	t := tupleOf(p)
	if c, reply := tk.find(zone, t); c != nil {
		state := uint32(trk | ofp.CtStateEst)
		if reply {
			state |= ofp.CtStateRpl
			c.seenReply = true
		} else if !c.seenReply {
			state = trk | ofp.CtStateNew
		}
		if nat != nil && (c.snat || c.dnat) {
			if reply {
				p.setTuple(c.orig.reverse())
			} else {
				p.setTuple(c.reply.reverse())
			}
			if c.snat {
				state |= ofp.CtStateSNAT
			}
			if c.dnat {
				state |= ofp.CtStateDNAT
			}
		}
		return state
	}
	if p.Proto == ProtoTCP && !tcpValidNew(p.TCPFlags) {
		return trk | ofp.CtStateInv
	}
	if req, echo := p.isEcho(); echo && !req {
		return trk | ofp.CtStateInv
	}
	state := uint32(trk | ofp.CtStateNew)
	if !commit {
		return state
	}
	c := &conn{zone: zone, orig: t}
	post := t
	if nat != nil && nat.IPMin.IsValid() {
		if nat.Flags&ofp.NXNATFlagDst != 0 {
			post.dst, c.dnat = nat.IPMin, true
			if nat.ProtoMin != 0 {
				post.dport = nat.ProtoMin
			}
			state |= ofp.CtStateDNAT
		} else {
			post.src, c.snat = nat.IPMin, true
			if nat.ProtoMin != 0 {
				post.sport = nat.ProtoMin
			}
			state |= ofp.CtStateSNAT
		}
		p.setTuple(post)
	}
	c.reply = post.reverse()
	tk.conns = append(tk.conns, c)
	return state
}
