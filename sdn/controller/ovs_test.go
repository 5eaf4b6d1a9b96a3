package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"paradrop/netconf/nettest"
	"paradrop/sdn/ofp"
	"paradrop/sdn/ovs"
	"paradrop/sdn/ovsdb"
)

// These tests run a private Open vSwitch (root, openvswitch-switch
// installed) and check the switch's own view with ovs-ofctl.

const testDPID uint64 = 0x0000feed0000c0de

// ovsEnv is a private OVS with one netdev bridge whose controller is a
// Controller of ours.
type ovsEnv struct {
	t    testing.TB // the running (sub)test
	root testing.TB // the test that owns the environment's cleanups
	dir  string
	br   string
	d    *ovs.Daemon
	db   *ovsdb.Client
	c    *Controller
	addr net.Addr
	stop func() // stops the controller's Run
}

func requireOVS(t testing.TB) {
	t.Helper()
	if err := ovs.Installed(); err != nil {
		t.Fatalf("these tests need Open vSwitch (apt-get install openvswitch-switch): %v", err)
	}
	if _, err := exec.LookPath("ovs-ofctl"); err != nil {
		t.Fatalf("ovs-ofctl not found; install openvswitch-switch: %v", err)
	}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func testConfig(t testing.TB) Config {
	return Config{Listen: "127.0.0.1:0", Logf: t.Logf}
}

func newOVSEnv(t testing.TB, cfg Config) *ovsEnv {
	t.Helper()
	requireOVS(t)
	ctx := testCtx(t, 30*time.Second)
	e := &ovsEnv{t: t, root: t, dir: t.TempDir(), br: nettest.Name("pdc")}
	d, err := ovs.Start(ctx, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := exec.Command("tail", "-n", "30", filepath.Join(e.dir, "ovs-vswitchd.log")).CombinedOutput()
			t.Logf("end of ovs-vswitchd.log:\n%s", log)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.d.Stop(ctx); err != nil {
			t.Errorf("stop ovs: %v", err)
		}
	})
	e.startController(cfg)
	e.db, err = ovsdb.Dial(ctx, d.DBSocket())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	err = e.db.EnsureBridge(ctx, ovsdb.BridgeConfig{
		Name: e.br, DatapathType: "netdev", DatapathID: fmt.Sprintf("%016x", testDPID),
		Protocols: []string{"OpenFlow13"}, FailMode: "secure", DisableInBand: true,
		Controller: "tcp:" + e.addr.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startController runs a new Controller on e.addr (a fresh port the first
// time), stopped when the test ends.
func (e *ovsEnv) startController(cfg Config) {
	e.t.Helper()
	if e.addr != nil {
		cfg.Listen = e.addr.String()
	}
	e.c = New(cfg)
	addr, err := e.c.Listen()
	if err != nil {
		e.t.Fatal(err)
	}
	e.addr = addr
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	c := e.c
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
	e.stop = func() { cancel(); wg.Wait() }
	e.root.Cleanup(e.stop)
}

func (e *ovsEnv) ofctl(args ...string) string {
	e.t.Helper()
	args = append([]string{"-O", "OpenFlow13"}, args...)
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "MGMT", "unix:"+e.d.MgmtSocket(e.br))
	}
	out, err := exec.Command("ovs-ofctl", args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ovs-ofctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dumpFlows is the switch's flow table as ovs-ofctl prints it, without
// counters, one flow per line, sorted.
func (e *ovsEnv) dumpFlows() []string {
	e.t.Helper()
	var flows []string
	for _, l := range strings.Split(e.ofctl("--no-stats", "dump-flows", "MGMT"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			flows = append(flows, l)
		}
	}
	slices.Sort(flows)
	return flows
}

func (e *ovsEnv) dumpMeters() string {
	e.t.Helper()
	return e.ofctl("dump-meters", "MGMT")
}

func (e *ovsEnv) sync() error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.c.Sync(ctx)
}

// syncCount runs Sync, fails the test on error and returns how many
// flow_mods it sent.
func (e *ovsEnv) syncCount() int {
	e.t.Helper()
	before := e.c.flowMods.Load()
	if err := e.sync(); err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
	return int(e.c.flowMods.Load() - before)
}

// syncNoop checks that a Sync sends nothing at all.
func (e *ovsEnv) syncNoop() {
	e.t.Helper()
	meters := e.c.meterMods.Load()
	if n := e.syncCount(); n != 0 {
		e.t.Errorf("a Sync with nothing changed sent %d flow_mods", n)
	}
	if n := e.c.meterMods.Load() - meters; n != 0 {
		e.t.Errorf("a Sync with nothing changed sent %d meter_mods", n)
	}
}

func (e *ovsEnv) wantFlows(want []string) {
	e.t.Helper()
	want = slices.Sorted(slices.Values(want))
	if got := e.dumpFlows(); !slices.Equal(got, want) {
		e.t.Fatalf("switch flows:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

var (
	chuteMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	lanVIP   = netip.MustParseAddr("10.77.0.99")
	chuteIP  = netip.MustParseAddr("10.77.0.11")
)

const (
	lanPort   = 1
	chutePort = 2
	zone      = 5
)

// gatewayFlows is the flow set of the OVS notes (DNAT to a chute through
// conntrack) plus a metered flow, as the network layer builds it.
func gatewayFlows() ([]Flow, []Meter) {
	ct := func(st, mask uint64) ofp.OXM { return ofp.FieldCtState.Masked(st, mask) }
	flows := []Flow{
		{Table: 0, Priority: 100, Cookie: 1 << 32, Note: "arp",
			Match:        ofp.Match{Fields: []ofp.OXM{ofp.FieldEthType.Uint(0x0806)}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(&ofp.ActionOutput{Port: ofp.PortNormal})}},
		{Table: 0, Priority: 50, Cookie: 1 << 32, Note: "track ip",
			Match: ofp.Match{Fields: []ofp.OXM{ofp.FieldEthType.Uint(0x0800), ct(0, ofp.CtStateTrk)}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(&ofp.NXActionCT{ZoneOfsNbits: zone, RecircTable: 1,
				Actions: []ofp.Action{&ofp.NXActionNAT{}}})}},
		// Fields deliberately out of OVS's order, the ct_state mask
		// given in full: the comparison must not care.
		{Table: 1, Priority: 60, Cookie: 2<<32 | 1, Note: "dnat web to chute",
			Match: ofp.Match{Fields: []ofp.OXM{
				ct(ofp.CtStateTrk|ofp.CtStateNew, ofp.CtStateTrk|ofp.CtStateNew),
				ofp.FieldInPort.Uint(lanPort),
				ofp.FieldEthType.Uint(0x0800),
				ofp.FieldIPProto.Uint(6),
				ofp.FieldIPv4Dst.Addr(lanVIP),
				ofp.FieldTCPDst.Uint(8001),
			}},
			Instructions: []ofp.Instruction{
				ofp.ApplyActions(
					&ofp.NXActionCT{Flags: ofp.NXCTFlagCommit, ZoneOfsNbits: zone, RecircTable: ofp.NXCTRecircNone,
						Actions: []ofp.Action{&ofp.NXActionNAT{Flags: ofp.NXNATFlagDst, IPMin: chuteIP, ProtoMin: 80}}},
					&ofp.ActionSetField{Field: ofp.FieldEthDst.MAC(chuteMAC)},
					&ofp.ActionOutput{Port: chutePort}),
				&ofp.InstructionMeter{MeterID: 1}, // before apply: OVS orders them
			}},
		{Table: 1, Priority: 50, Cookie: 2 << 32, Note: "lan to chute established",
			Match: ofp.Match{Fields: []ofp.OXM{ofp.FieldInPort.Uint(lanPort), ofp.FieldEthType.Uint(0x0800),
				ct(ofp.CtStateTrk|ofp.CtStateEst, ofp.CtStateTrk|ofp.CtStateEst)}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(
				&ofp.ActionSetField{Field: ofp.FieldEthDst.MAC(chuteMAC)}, &ofp.ActionOutput{Port: chutePort})}},
		{Table: 1, Priority: 50, Cookie: 2 << 32, Note: "chute to lan established",
			Match: ofp.Match{Fields: []ofp.OXM{ofp.FieldInPort.Uint(chutePort), ofp.FieldEthType.Uint(0x0800),
				ct(ofp.CtStateTrk|ofp.CtStateEst, ofp.CtStateTrk|ofp.CtStateEst)}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(&ofp.ActionOutput{Port: lanPort})}},
		{Table: 1, Priority: 40, Note: "lan subnet, masked",
			Match: ofp.Match{Fields: []ofp.OXM{ofp.FieldEthType.Uint(0x0800),
				ofp.FieldIPv4Src.Prefix(netip.MustParsePrefix("192.0.2.0/24"))}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(&ofp.ActionOutput{Port: ofp.PortNormal})}},
		{Table: 1, Priority: 0, Note: "default drop"},
	}
	return flows, []Meter{{ID: 1, RateKbps: 10000, BurstKb: 1000}, {ID: 2, RateKbps: 500}}
}

var gatewayDump = []string{
	"cookie=0x100000000, priority=100,arp actions=NORMAL",
	"cookie=0x100000000, priority=50,ct_state=-trk,ip actions=ct(table=1,zone=5,nat)",
	"cookie=0x200000001, table=1, priority=60,ct_state=+new+trk,tcp,in_port=1,nw_dst=10.77.0.99,tp_dst=8001 actions=meter:1,ct(commit,zone=5,nat(dst=10.77.0.11:80)),set_field:02:00:00:00:00:11->eth_dst,output:2",
	"cookie=0x200000000, table=1, priority=50,ct_state=+est+trk,ip,in_port=1 actions=set_field:02:00:00:00:00:11->eth_dst,output:2",
	"cookie=0x200000000, table=1, priority=50,ct_state=+est+trk,ip,in_port=2 actions=output:1",
	"table=1, priority=40,ip,nw_src=192.0.2.0/24 actions=NORMAL",
	"table=1, priority=0 actions=drop",
}

func TestHandshake(t *testing.T) {
	e := newOVSEnv(t, testConfig(t))
	if err := e.sync(); err != nil {
		t.Fatal(err)
	}
	if !e.c.Connected() {
		t.Error("Connected() = false after Sync")
	}
	if got := e.c.Datapath(); got != testDPID {
		t.Errorf("Datapath() = %016x, want %016x", got, testDPID)
	}
	if got, ok := e.c.Ports()[e.br]; !ok || got != ofp.PortLocal {
		t.Errorf("Ports()[%q] = %#x, %v; want the LOCAL port %#x (ports: %v)", e.br, got, ok, uint32(ofp.PortLocal), e.c.Ports())
	}
}

// TestReconcile walks the controller through the changes it must undo or
// apply, checking the switch's own view after each Sync and how many
// flow_mods it took.
func TestReconcile(t *testing.T) {
	e := newOVSEnv(t, testConfig(t))
	flows, meters := gatewayFlows()
	e.c.SetDesired(flows, meters)

	changed := slices.Clone(flows)
	changed[4].Instructions = []ofp.Instruction{ofp.ApplyActions(&ofp.ActionOutput{Port: 7})}
	changedDump := slices.Clone(gatewayDump)
	changedDump[4] = "cookie=0x200000000, table=1, priority=50,ct_state=+est+trk,ip,in_port=2 actions=output:7"

	steps := []struct {
		name     string
		do       func()
		flowMods int // -1: do not check
		want     []string
		meters   []string // substrings of dump-meters
	}{
		{"install", func() {}, -1, gatewayDump, []string{"meter=1 kbps burst stats bands=", "type=drop rate=10000 burst_size=1000",
			"meter=2 kbps stats bands=", "type=drop rate=500"}},
		{"second sync is a no-op", func() {}, 0, gatewayDump, nil},
		{"foreign flow removed", func() {
			e.ofctl("add-flow", "MGMT", "table=3,priority=7,udp,tp_dst=53,actions=drop")
			e.ofctl("add-flow", "MGMT", "table=1,priority=50,ip,in_port=3,actions=drop") // same priority as ours
		}, 2, gatewayDump, nil},
		{"deleted flow restored", func() {
			e.ofctl("--strict", "del-flows", "MGMT", "table=1,priority=60,ct_state=+new+trk,tcp,in_port=1,nw_dst=10.77.0.99,tp_dst=8001")
		}, 1, gatewayDump, nil},
		{"flow changed by hand restored", func() {
			e.ofctl("add-flow", "MGMT", "table=0,priority=100,arp,actions=drop")
		}, 1, gatewayDump, nil},
		{"one flow's actions changed", func() { e.c.SetDesired(changed, meters) }, 1, changedDump, nil},
		{"meter rate changed", func() {
			e.c.SetDesired(changed, []Meter{{ID: 1, RateKbps: 5000, BurstKb: 1000}, meters[1]})
		}, 0, changedDump, []string{"type=drop rate=5000 burst_size=1000"}},
		{"foreign meter removed", func() {
			e.ofctl("add-meter", "MGMT", "meter=9,kbps,bands=type=drop,rate=100")
		}, 0, changedDump, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			parent := e.t
			e.t = t
			defer func() { e.t = parent }()
			// Counted from before the change: SetDesired's own background
			// reconcile may do the work before Sync does.
			before := e.c.flowMods.Load()
			st.do()
			e.syncCount()
			if n := int(e.c.flowMods.Load() - before); st.flowMods >= 0 && n != st.flowMods {
				t.Errorf("Sync sent %d flow_mods, want %d", n, st.flowMods)
			}
			e.wantFlows(st.want)
			dm := e.dumpMeters()
			for _, m := range st.meters {
				if !strings.Contains(dm, m) {
					t.Errorf("dump-meters lacks %q:\n%s", m, dm)
				}
			}
			if strings.Contains(dm, "meter=9") {
				t.Errorf("foreign meter still there:\n%s", dm)
			}
			e.syncNoop()
		})
	}
}

// TestRefused checks that flow_mods the switch refuses make Sync fail
// with a typed error naming the flow, while the rest of the batch applies.
func TestRefused(t *testing.T) {
	e := newOVSEnv(t, testConfig(t))
	good := Flow{Table: 0, Priority: 1, Note: "fine", Instructions: []ofp.Instruction{ofp.ApplyActions(&ofp.ActionOutput{Port: ofp.PortNormal})}}
	tests := []struct {
		name      string
		bad       Flow
		errType   uint16
		errCode   uint16
		wantFlows []string
	}{
		{"goto_table backwards",
			Flow{Table: 2, Priority: 9, Note: "loops back", Instructions: []ofp.Instruction{&ofp.InstructionGotoTable{TableID: 1}}},
			ErrTypeBadInstruction, 2, // BAD_TABLE_ID
			[]string{"priority=1 actions=NORMAL"}},
		{"unknown meter",
			Flow{Table: 0, Priority: 9, Note: "metered", Instructions: []ofp.Instruction{&ofp.InstructionMeter{MeterID: 77}}},
			ErrTypeMeterModFailed, 2, // INVALID_METER, OVS's answer to a meter instruction without meter
			[]string{"priority=1 actions=NORMAL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.c.SetDesired([]Flow{good, tt.bad}, nil)
			err := e.sync()
			var ofe *OFError
			if !errors.As(err, &ofe) {
				t.Fatalf("Sync() = %v, want an *OFError", err)
			}
			if ofe.Type != tt.errType || ofe.Code != tt.errCode {
				t.Errorf("OFError type/code = %d/%d, want %d/%d (%v)", ofe.Type, ofe.Code, tt.errType, tt.errCode, err)
			}
			if !strings.Contains(err.Error(), tt.bad.Note) {
				t.Errorf("error %q does not name the flow %q", err, tt.bad.Note)
			}
			parent := e.t
			e.t = t
			defer func() { e.t = parent }()
			e.wantFlows(tt.wantFlows)
		})
	}
}

// TestReconnect drops the connection, restarts the controller and
// restarts ovs-vswitchd; each time OVS reconnects by itself and Sync
// converges the flows, including changes made while disconnected.
func TestReconnect(t *testing.T) {
	cfg := testConfig(t)
	e := newOVSEnv(t, cfg)
	flows, meters := gatewayFlows()
	e.c.SetDesired(flows, meters)
	if err := e.sync(); err != nil {
		t.Fatal(err)
	}
	e.wantFlows(gatewayDump)
	deleteOne := func() {
		e.ofctl("--strict", "del-flows", "MGMT", "table=1,priority=0")
		e.ofctl("add-flow", "MGMT", "table=4,priority=4,actions=drop")
	}

	steps := []struct {
		name    string
		disrupt func()
	}{
		{"connection dropped", func() {
			e.c.mu.Lock()
			s := e.c.sess
			e.c.mu.Unlock()
			s.close(errors.New("dropped by the test"))
			deleteOne()
		}},
		{"controller restarted", func() {
			e.stop()
			deleteOne()
			e.startController(cfg)
			e.c.SetDesired(flows, meters) // as the restarted daemon would
		}},
		{"ovs-vswitchd restarted", func() {
			ctx := testCtx(t, 30*time.Second)
			if err := e.d.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			d, err := ovs.Start(ctx, e.dir)
			if err != nil {
				t.Fatal(err)
			}
			e.d = d
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			parent := e.t
			e.t = t
			defer func() { e.t = parent }()
			before := e.c.Sessions()
			st.disrupt()
			if st.name == "controller restarted" {
				before = 0
			}
			if err := e.sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if !e.c.Connected() {
				t.Error("not connected after Sync")
			}
			// What the network's repair loop tells a reconnection by.
			if n := e.c.Sessions(); n <= before {
				t.Errorf("Sessions() = %d after the switch connected again, was %d", n, before)
			}
			e.wantFlows(gatewayDump)
			if !strings.Contains(e.dumpMeters(), "type=drop rate=10000 burst_size=1000") {
				t.Errorf("meter lost:\n%s", e.dumpMeters())
			}
			e.syncNoop()
		})
	}
}

// TestFlowStats passes pings between two namespaces through the bridge
// and checks the counters of the flow they match, selected by cookie.
func TestFlowStats(t *testing.T) {
	nettest.Require(t, "ping")
	e := newOVSEnv(t, testConfig(t))
	ctx := testCtx(t, 30*time.Second)
	a, b := nettest.NewHost(t), nettest.NewHost(t)
	var ports []string
	for _, h := range []struct {
		host *nettest.Host
		addr string
	}{{a, "192.0.2.10/24"}, {b, "192.0.2.20/24"}} {
		name := nettest.Name("pdv")
		nettest.Veth(t, nettest.End{If: name}, nettest.End{Host: h.host, If: "eth0", Addr: netip.MustParsePrefix(h.addr)})
		if err := e.db.AddPort(ctx, e.br, name, "", nil); err != nil {
			t.Fatal(err)
		}
		ports = append(ports, name)
	}
	const ipCookie = 7 << 32
	e.c.SetDesired([]Flow{
		{Priority: 100, Cookie: 6 << 32, Note: "arp", Match: ofp.Match{Fields: []ofp.OXM{ofp.FieldEthType.Uint(0x0806)}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(&ofp.ActionOutput{Port: ofp.PortNormal})}},
		{Priority: 90, Cookie: ipCookie | 1, Note: "ip between hosts", Match: ofp.Match{Fields: []ofp.OXM{ofp.FieldEthType.Uint(0x0800)}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(&ofp.ActionOutput{Port: ofp.PortNormal})}},
	}, nil)
	if err := e.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ipStat := func() FlowStat {
		t.Helper()
		stats, err := e.c.FlowStats(ctx, ipCookie, 0xffffffff00000000)
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 1 || stats[0].Note != "ip between hosts" {
			t.Fatalf("FlowStats(cookie %#x) = %+v, want the one ip flow", uint64(ipCookie), stats)
		}
		return stats[0]
	}
	before := ipStat()
	nettest.Exec(t, a, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.20")
	// OVS's revalidators move datapath counters to the flow table about
	// every 500ms, so the counters lag behind the packets.
	var after FlowStat
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if after = ipStat(); after.Packets >= before.Packets+6 {
			break
		}
	}
	// Three requests and three replies, at least.
	if after.Packets < before.Packets+6 || after.Bytes <= before.Bytes {
		t.Errorf("ip flow counters went from %d packets/%d bytes to %d/%d, want 6 packets more",
			before.Packets, before.Bytes, after.Packets, after.Bytes)
	}
	if after.Duration <= 0 {
		t.Errorf("Duration = %v", after.Duration)
	}
	// The totals by cookie say the same, one flow each, in the order asked
	// (a late revalidation may only add packets).
	aggs, err := e.c.Aggregates(ctx, []uint64{ipCookie, 6 << 32, 9 << 32}, 0xffffffff00000000)
	if err != nil {
		t.Fatal(err)
	}
	if len(aggs) != 3 || aggs[0].FlowCount != 1 || aggs[0].PacketCount < after.Packets || aggs[0].ByteCount < after.Bytes ||
		aggs[1].FlowCount != 1 || aggs[1].PacketCount == 0 || aggs[2] != (ofp.AggregateStats{}) {
		t.Errorf("Aggregates = %+v; want the ip flow's %d packets/%d bytes or more, the arp flow's, then nothing", aggs, after.Packets, after.Bytes)
	}

	// The ports arrived by PORT_STATUS after the handshake.
	for _, p := range ports {
		want, err := e.db.OFPort(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := e.c.Ports()[p]; !ok || got != want {
			t.Errorf("Ports()[%q] = %d, %v; want %d", p, got, ok, want)
		}
	}
}

// TestPeriodicReconcile: without any Sync, the background reconcile
// restores a flow deleted by hand within a ReconcileInterval or so.
func TestPeriodicReconcile(t *testing.T) {
	cfg := testConfig(t)
	cfg.ReconcileInterval = 200 * time.Millisecond
	e := newOVSEnv(t, cfg)
	flows, meters := gatewayFlows()
	e.c.SetDesired(flows, meters)
	if err := e.sync(); err != nil {
		t.Fatal(err)
	}
	e.ofctl("--strict", "del-flows", "MGMT", "priority=100,arp")
	if slices.Equal(e.dumpFlows(), gatewayDump) {
		t.Fatal("the flow was not deleted")
	}
	want := slices.Sorted(slices.Values(gatewayDump))
	waitFor(t, "the deleted flow is back", func() bool { return slices.Equal(e.dumpFlows(), want) })
}

// TestLargeSet: thousands of flows come back from OVS in many multipart
// parts; a second Sync must still find nothing to do.
func TestLargeSet(t *testing.T) {
	const n = 5000
	e := newOVSEnv(t, testConfig(t))
	e.c.SetDesired(benchFlows(n, 3<<32), nil)
	if err := e.sync(); err != nil {
		t.Fatal(err)
	}
	if out := e.ofctl("dump-aggregate", "MGMT"); !strings.Contains(out, fmt.Sprintf("flow_count=%d", n)) {
		t.Fatalf("dump-aggregate: %s, want %d flows", out, n)
	}
	e.syncNoop()
	stats, err := e.c.FlowStats(testCtx(t, 30*time.Second), 3<<32, 0xffffffff00000000)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != n || stats[0].Note != "forward" {
		t.Fatalf("FlowStats gave %d flows (first %+v), want %d with their Note", len(stats), stats[0].Flow, n)
	}
}

// TestPacketOutRoundTrip: a PACKET_OUT whose action sends the packet to
// the controller comes back as a PACKET_IN.
func TestPacketOutRoundTrip(t *testing.T) {
	e := newOVSEnv(t, testConfig(t))
	ctx := testCtx(t, 30*time.Second)
	got := make(chan *ofp.PacketIn, 1)
	e.c.OnPacketIn(func(pi *ofp.PacketIn) {
		select {
		case got <- pi:
		default:
		}
	})
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5}) // broadcast, local experimental ethertype
	copy(frame[14:], "paradrop")
	err := e.c.Send(ctx, &ofp.PacketOut{BufferID: ofp.NoBuffer, InPort: ofp.PortController,
		Actions: []ofp.Action{&ofp.ActionOutput{Port: ofp.PortController, MaxLen: ofp.MaxLenNoBuffer}}, Data: frame})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case pi := <-got:
		if !bytes.Equal(pi.Data, frame) || pi.Reason != ofp.PacketInAction {
			t.Errorf("PACKET_IN reason %d data %x, want reason %d and the frame sent", pi.Reason, pi.Data, ofp.PacketInAction)
		}
	case <-ctx.Done():
		t.Fatal("no PACKET_IN")
	}
}

// TestNoWorkTwice: SetDesired then Sync sends each flow_mod once and
// reads the switch back once, the reconcile SetDesired triggered finding
// Sync's confirmed; a Sync after that reconcile still reads back.
func TestNoWorkTwice(t *testing.T) {
	const n = 2000
	// Long enough that Sync surely goes first on a loaded machine (the
	// default's race is the bench's business). Restored after the
	// controller stops: cleanups run last registered first.
	saved := triggerDelay
	triggerDelay = 300 * time.Millisecond
	t.Cleanup(func() { triggerDelay = saved })
	e := newOVSEnv(t, testConfig(t))
	if err := e.sync(); err != nil {
		t.Fatal(err)
	}
	// The new connection's reconcile runs in full, whatever Sync did.
	waitFor(t, "the connection's reconcile", func() bool { return e.c.readBacks.Load() >= 2 })

	type counts struct{ flowMods, readBacks, skipped uint64 }
	now := func() counts { return counts{e.c.flowMods.Load(), e.c.readBacks.Load(), e.c.skipped.Load()} }
	check := func(t *testing.T, before counts, want counts) {
		t.Helper()
		a := now()
		if got := (counts{a.flowMods - before.flowMods, a.readBacks - before.readBacks, a.skipped - before.skipped}); got != want {
			t.Errorf("flow_mods, read-backs, skipped reconciles = %+v, want %+v", got, want)
		}
	}

	t.Run("Sync right after SetDesired", func(t *testing.T) {
		before := now()
		e.c.SetDesired(benchFlows(n, 1<<32), nil)
		if err := e.sync(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the triggered reconcile", func() bool {
			a := now()
			return a.skipped > before.skipped || a.readBacks > before.readBacks+1
		})
		check(t, before, counts{n, 1, 1})
	})
	t.Run("Sync after the triggered reconcile", func(t *testing.T) {
		before := now()
		e.c.SetDesired(benchFlows(n, 2<<32), nil) // new cookies: n replacements
		waitFor(t, "the triggered reconcile", func() bool { return e.c.flowMods.Load() >= before.flowMods+n })
		if err := e.sync(); err != nil {
			t.Fatal(err)
		}
		check(t, before, counts{n, 2, 0})
	})
	if out := e.ofctl("dump-aggregate", "MGMT"); !strings.Contains(out, fmt.Sprintf("flow_count=%d", n)) {
		t.Fatalf("dump-aggregate: %s, want %d flows", out, n)
	}
}
