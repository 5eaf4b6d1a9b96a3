package sdn

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

var testTopo = topology{
	Subnet:     netip.MustParsePrefix("10.131.0.0/24"),
	Gateway:    netip.MustParseAddr("10.131.0.1"),
	LANAddr:    netip.MustParsePrefix("198.51.100.1/24"),
	GatewayMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
	LANPorts:   []uint32{1},
}

func mkChute(name string, host byte, port uint32, nt Policy, bw Bandwidth) *attached {
	return &attached{Chute: Chute{Name: name, MAC: net.HardwareAddr{2, 0, 0, 0, 1, host},
		IP: netip.AddrFrom4([4]byte{10, 131, 0, host}), Net: nt, Bandwidth: bw}, Port: port}
}

// notes maps each flow's note to the flow, for one owner id.
func notesOf(d *derived, id uint32) map[string][]controller.Flow {
	m := map[string][]controller.Flow{}
	for _, f := range d.Flows {
		if uint32(f.Cookie>>32) == id {
			m[f.Note] = append(m[f.Note], f)
		}
	}
	return m
}

func TestDerive(t *testing.T) {
	web := func(nt Policy) *attached { return mkChute("web", 10, 5, nt, Bandwidth{}) }
	tests := []struct {
		name   string
		chutes []*attached
		owner  uint32 // whose flows are checked
		want   []string
		absent []string // substrings no note of owner may contain
	}{
		{
			name:   "no declarations: gateway only, default deny",
			chutes: []*attached{web(Policy{})},
			owner:  10,
			want: []string{
				"chute web sends IPv4 (from its own MAC and IP)",
				"chute web: spoofed or other traffic dropped",
				"chute web may ping the gateway 10.131.0.1",
				"chute web may use DNS at the gateway 10.131.0.1:53/udp",
				"chute web: default deny",
				"deliver to chute web at 10.131.0.10",
				"chute web resolves the gateway",
				"the gateway resolves chute web",
			},
			absent: []string{"WAN", "may reach LAN", "peer", "LAN users", "resolves LAN", "answer chute web's ARP"},
		},
		{
			name:   "wan",
			chutes: []*attached{web(Policy{WAN: true})},
			owner:  10,
			want:   []string{"chute web may reach the WAN (routed and masqueraded by the gateway)"},
		},
		{
			name: "lan rules",
			chutes: []*attached{web(Policy{LAN: []LANRule{
				{Prefix: hostPrefix("198.51.100.20"), Ports: []uint16{554}},
				{Prefix: netip.MustParsePrefix("192.0.2.0/28")},
				{MAC: mustMAC("02:aa:bb:cc:dd:ee"), Ports: []uint16{80}},
			}})},
			owner: 10,
			want: []string{
				"chute web may reach LAN 198.51.100.20:554/tcp",
				"chute web may reach LAN 198.51.100.20:554/udp",
				"chute web may reach LAN 192.0.2.0/28",
				"chute web may reach LAN MAC 02:aa:bb:cc:dd:ee:80/tcp",
				"chute web resolves LAN 198.51.100.0/24",
				"chute web resolves LAN 192.0.2.0/28",
				"chute web's LAN destination 192.0.2.0/28 is on the LAN",
				"LAN hosts answer chute web's ARP",
			},
			// Inside the LAN, which it resolves already: a second flow
			// would match the same ARP requests at the same priority.
			absent: []string{"WAN", "resolves LAN 198.51.100.20/32"},
		},
		{
			name: "expose and redirect",
			chutes: []*attached{web(Policy{
				Expose:   []Expose{{Port: 80, GatewayPort: 8080, Proto: TCP}},
				Redirect: []Redirect{{To: netip.MustParseAddrPort("203.0.113.5:80"), Port: 8081, Proto: TCP}},
			})},
			owner: 10,
			want: []string{
				"LAN users reach chute web port 80/tcp at 198.51.100.1:8080",
				"LAN requests to 203.0.113.5:80/tcp answered by chute web port 8081",
				"chute web's answers from its port 80/tcp pass the tracker (DNAT undone)",
				"chute web's answers from its port 8081/tcp pass the tracker (DNAT undone)",
				"chute web resolves LAN 198.51.100.0/24",
			},
		},
		{
			name: "mutual peers",
			chutes: []*attached{
				web(Policy{Peers: []string{"db"}}),
				mkChute("db", 11, 6, Policy{Peers: []string{"web"}}, Bandwidth{}),
			},
			owner: 10,
			want:  []string{"chute web may connect to its peer db (10.131.0.11)", "chute web resolves its peer db"},
		},
		{
			name: "one-sided peers: no peer flows",
			chutes: []*attached{
				web(Policy{Peers: []string{"db"}}),
				mkChute("db", 11, 6, Policy{}, Bandwidth{}),
			},
			owner:  10,
			absent: []string{"peer"},
		},
		{
			name:   "peer not attached: no peer flows",
			chutes: []*attached{web(Policy{Peers: []string{"db"}})},
			owner:  10,
			absent: []string{"peer"},
		},
		{
			name:   "base flows",
			chutes: nil,
			owner:  0,
			want: []string{
				"default deny (table 0)", "default deny (table 2)", "IPv4 through conntrack (existing NAT applied)",
				"unsolicited LAN traffic to chutes dropped", "replies from the LAN to chutes",
				"the gateway (10.131.0.1) may connect to chutes", "LAN may not resolve chutes",
				"chute traffic to anywhere else is routed by the gateway",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := derive(testTopo, tt.chutes)
			notes := notesOf(d, tt.owner)
			for _, w := range tt.want {
				if len(notes[w]) == 0 {
					t.Errorf("no flow %q; have:\n%s", w, strings.Join(keys(notes), "\n"))
				}
			}
			for note := range notes {
				for _, a := range tt.absent {
					if strings.Contains(note, a) {
						t.Errorf("unexpected flow %q", note)
					}
				}
			}
			checkInvariants(t, d)
		})
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// checkInvariants: every flow has a note and a cookie naming its owner,
// and no two flows are the same entry (table, priority, match).
func checkInvariants(t *testing.T, d *derived) {
	t.Helper()
	seen := map[string]string{}
	for _, f := range d.Flows {
		if f.Note == "" {
			t.Errorf("flow without a note: %+v", f)
		}
		key, err := (&ofp.FlowStatsRequest{TableID: f.Table, Match: f.Match}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		k := string(key) + string(rune(f.Priority))
		if other, ok := seen[k]; ok {
			t.Errorf("flows %q and %q are the same entry", other, f.Note)
		}
		seen[k] = f.Note
		fm := ofp.NewFlowMod(f.Table, f.Priority, f.Match, f.Instructions...)
		if _, err := fm.MarshalBinary(); err != nil {
			t.Errorf("flow %q does not encode: %v", f.Note, err)
		}
	}
}

func TestCookiesAndMeters(t *testing.T) {
	bw := Bandwidth{Egress: 20_000_000, Ingress: 1500}
	a := mkChute("web", 10, 5, Policy{Expose: []Expose{{Port: 80, GatewayPort: 8080, Proto: TCP}}}, bw)
	d := derive(testTopo, []*attached{a})
	for _, f := range d.Flows {
		if id := f.Cookie >> 32; id != 0 && id != 10 {
			t.Errorf("flow %q has owner id %d", f.Note, id)
		}
		if strings.Contains(f.Note, "web") != (f.Cookie>>32 == 10) {
			t.Errorf("flow %q: cookie %#x does not name its chute", f.Note, f.Cookie)
		}
	}
	want := map[uint32]uint32{20: 20000, 21: 2, learnMeter: learnRateKbps} // egress, ingress (rounded up), LAN learning
	if len(d.Meters) != 3 {
		t.Fatalf("meters %+v, want 3", d.Meters)
	}
	for _, m := range d.Meters {
		if want[m.ID] != m.RateKbps || m.BurstKb == 0 {
			t.Errorf("meter %+v, want rate %d kbit/s", m, want[m.ID])
		}
	}
	// The meters are on the chute's traffic: egress where it enters,
	// ingress where it is delivered (directly or by DNAT).
	metered := map[string]uint32{}
	for _, f := range d.Flows {
		for _, in := range f.Instructions {
			if m, ok := in.(*ofp.InstructionMeter); ok {
				metered[f.Note] = m.MeterID
			}
		}
	}
	for note, id := range map[string]uint32{
		"chute web sends IPv4 (from its own MAC and IP)":             20,
		"chute web may ping the gateway 10.131.0.1":                  20,
		"deliver to chute web at 10.131.0.10":                        21,
		"LAN users reach chute web port 80/tcp at 198.51.100.1:8080": 21,
	} {
		if metered[note] != id {
			t.Errorf("flow %q has meter %d, want %d", note, metered[note], id)
		}
	}
	// Sent: the flow to the tracker, the three the chute may start (ping
	// and DNS at the gateway) and its exposed port's answers; received:
	// the two delivering ones.
	if len(d.TX) != 5 || len(d.RX) != 2 {
		t.Errorf("TX %v RX %v: want the five sending flows and the two delivering ones", d.TX, d.RX)
	}

	// Cookies are stable: adding another chute changes none of web's.
	b := mkChute("db", 11, 6, Policy{}, Bandwidth{})
	d2 := derive(testTopo, []*attached{a, b})
	before := map[uint64]string{}
	for _, f := range d.Flows {
		before[f.Cookie] = f.Note
	}
	for _, f := range d2.Flows {
		if f.Cookie>>32 == 10 && before[f.Cookie] != f.Note {
			t.Errorf("flow %q changed cookie to %#x with another chute attached", f.Note, f.Cookie)
		}
	}
}

func TestAddressFor(t *testing.T) {
	p := netip.MustParsePrefix("10.131.0.0/24")
	for _, tt := range []struct {
		prefix netip.Prefix
		slot   int
		want   string
	}{
		{p, 0, "10.131.0.10"},
		{p, 244, "10.131.0.254"},
		{p, 245, "invalid IP"},
		{p, -1, "invalid IP"},
		{netip.MustParsePrefix("10.131.0.7/16"), 300, "10.131.1.54"},
		{netip.MustParsePrefix("fd00::/64"), 0, "invalid IP"},
	} {
		if got := AddressFor(tt.prefix, tt.slot).String(); got != tt.want {
			t.Errorf("AddressFor(%s, %d) = %s, want %s", tt.prefix, tt.slot, got, tt.want)
		}
	}
}

func TestOnLink(t *testing.T) {
	got := onLink(testTopo, Policy{LAN: []LANRule{{Prefix: hostPrefix("198.51.100.20")}, {Prefix: netip.MustParsePrefix("192.0.2.0/28")}, {Prefix: hostPrefix("192.0.2.3")}}})
	want := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("192.0.2.0/28")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("onLink = %v, want %v", got, want)
	}
}

// What a chute may start is decided before the tracker's recirculation:
// a table 0 flow commits the connection and delivers in the same pass.
func TestAllowedTrafficTakesOnePass(t *testing.T) {
	a := mkChute("web", 10, 5, Policy{LAN: []LANRule{{Prefix: hostPrefix("198.51.100.20")}}}, Bandwidth{})
	d := derive(testTopo, []*attached{a})
	fs := notesOf(d, 10)["chute web may reach LAN 198.51.100.20"]
	if len(fs) != 1 {
		t.Fatalf("flows %+v, want one", fs)
	}
	f := fs[0]
	if f.Table != tableClassify || f.Priority <= 200 {
		t.Errorf("table %d priority %d, want table 0 above the flow to the tracker", f.Table, f.Priority)
	}
	var ct *ofp.NXActionCT
	var next uint8
	for _, in := range f.Instructions {
		switch in := in.(type) {
		case *ofp.InstructionActions:
			for _, act := range in.Actions {
				if c, ok := act.(*ofp.NXActionCT); ok {
					ct = c
				}
			}
		case *ofp.InstructionGotoTable:
			next = in.TableID
		}
	}
	if ct == nil || ct.Flags&ofp.NXCTFlagCommit == 0 || ct.RecircTable != ofp.NXCTRecircNone || len(ct.Actions) != 0 {
		t.Errorf("ct action %+v, want commit without nat or recirculation", ct)
	}
	if next != tableOutput {
		t.Errorf("goes to table %d, want %d", next, tableOutput)
	}
	if !d.TX[f.Cookie] {
		t.Error("its counters are not the chute's sent traffic")
	}
}

func hostPrefix(s string) netip.Prefix {
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

func mustMAC(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

func TestAddressFor6(t *testing.T) {
	a, b := ULAFor("0000000000007064 10.131.0.0/24"), ULAFor("0000000000007065 10.131.0.0/24")
	if a != ULAFor("0000000000007064 10.131.0.0/24") || a == b {
		t.Errorf("ULAFor is not a function of its seed alone: %s, %s", a, b)
	}
	if !netip.MustParsePrefix("fd00::/8").Contains(a.Addr()) || a.Bits() != 64 || a != a.Masked() {
		t.Errorf("ULAFor = %s, want a unique local /64", a)
	}
	subnet6 := netip.MustParsePrefix("fd70:6472:6f70::/64")
	for _, tt := range []struct {
		subnet6 netip.Prefix
		ip      string
		want    string
	}{
		{subnet6, "10.131.0.10", "fd70:6472:6f70::a"},
		{subnet6, "10.131.0.254", "fd70:6472:6f70::fe"},
		{netip.Prefix{}, "10.131.0.10", "invalid IP"},
	} {
		if got := AddressFor6(DefaultSubnet, tt.subnet6, netip.MustParseAddr(tt.ip)).String(); got != tt.want {
			t.Errorf("AddressFor6(%s, %s) = %s, want %s", tt.subnet6, tt.ip, got, tt.want)
		}
	}
	if got := gateway6(subnet6).String(); got != "fd70:6472:6f70::1" {
		t.Errorf("gateway6 = %s", got)
	}
}

// A configured IPv6 subnet that is not a /64 is refused before anything
// is set up.
func TestOpenRefusesSubnet6(t *testing.T) {
	for _, p := range []string{"fd00::/48", "fd00::/96", "10.0.0.0/24", "::ffff:10.0.0.0/120"} {
		_, err := Open(context.Background(), Config{DataDir: t.TempDir(), Subnet6: netip.MustParsePrefix(p)})
		if err == nil || !strings.Contains(err.Error(), "is not an IPv6 /64") {
			t.Errorf("Open with Subnet6 %s: %v, want refused", p, err)
		}
	}
}

// A chute's IPv6 ways in (expose, IPv6 redirect) become flows only on a
// gateway with an IPv6 LAN address, whose prefix is then on-link for a
// chute answering LAN users and for no other; without one, its exposed
// ports stay IPv4 and no flow names an IPv6 address to DNAT.
func TestWaysInOverIPv6(t *testing.T) {
	p := Policy{Expose: []Expose{{Port: 80, GatewayPort: 8080, Proto: TCP}},
		Redirect: []Redirect{{To: netip.MustParseAddrPort("[2001:db8:ffff::5]:443"), Port: 8443, Proto: TCP}}}
	with := testTopo
	with.Subnet6, with.Gateway6, with.LANAddr6 = simSubnet6, gateway6(simSubnet6), lanGW6
	without := with
	without.LANAddr6 = netip.Prefix{}
	dnat6 := func(d *derived) (n int) {
		for _, f := range d.Flows {
			for _, in := range f.Instructions {
				if a, ok := in.(*ofp.InstructionActions); ok {
					for _, x := range a.Actions {
						if ct, ok := x.(*ofp.NXActionCT); ok {
							for _, y := range ct.Actions {
								if nat, ok := y.(*ofp.NXActionNAT); ok && nat.IPMin.Is6() {
									n++
								}
							}
						}
					}
				}
			}
		}
		return n
	}
	for _, tt := range []struct {
		name   string
		topo   topology
		p      Policy
		dnats  int
		onLink bool
	}{
		{"IPv6 LAN address, expose and redirect", with, p, 2, true},
		{"IPv6 LAN address, nothing exposed", with, Policy{Redirect: []Redirect{{To: netip.MustParseAddrPort("203.0.113.5:80"), Port: 8081, Proto: TCP}}}, 0, false},
		{"no IPv6 LAN address", without, p, 0, false},
	} {
		d := derive(tt.topo, []*attached{mkChute("web", 10, 5, tt.p, Bandwidth{})})
		checkInvariants(t, d)
		if got := dnat6(d); got != tt.dnats {
			t.Errorf("%s: %d IPv6 DNAT flows, want %d (one per way in and LAN port)", tt.name, got, tt.dnats)
		}
		if got := slices.Contains(onLink(tt.topo, tt.p), lanGW6.Masked()); got != tt.onLink {
			t.Errorf("%s: the IPv6 LAN prefix on-link for the chute: %v, want %v", tt.name, got, tt.onLink)
		}
	}
}
