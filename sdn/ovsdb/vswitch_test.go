package ovsdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"paradrop/sdn/ovs"
	"paradrop/sdn/ovsdb"
)

// startOVS runs a private Open vSwitch for one test. Missing binaries fail
// the test rather than skip it, so a broken CI setup cannot pass silently.
func startOVS(t *testing.T) (*ovs.Daemon, *ovsdb.Client) {
	t.Helper()
	if err := ovs.Installed(); err != nil {
		t.Fatalf("these tests need Open vSwitch: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := ovs.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("stop ovs: %v", err)
		}
	})
	c, err := ovsdb.Dial(ctx, d.DBSocket())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return d, c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// run runs a command and returns its trimmed output, failing the test on
// error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func vsctl(t *testing.T, d *ovs.Daemon, args ...string) string {
	t.Helper()
	return run(t, "ovs-vsctl", append([]string{"--db=" + d.DBSocket(), "--timeout=10"}, args...)...)
}

// eventually retries check until it passes or 10s elapse: ovs-vswitchd
// applies database changes asynchronously.
func eventually(t *testing.T, what string, check func() (string, bool)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, ok := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last saw %s", what, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func bridgeVersion(t *testing.T, c *ovsdb.Client, name string) ovsdb.UUID {
	t.Helper()
	res, err := c.Transact(testCtx(t), ovsdb.VSwitchDB, ovsdb.Select("Bridge", []ovsdb.Condition{ovsdb.Eq("name", name)}, "_version"))
	if err != nil || len(res[0].Rows) != 1 {
		t.Fatalf("select bridge %q: %v %v", name, res, err)
	}
	v, _ := res[0].Rows[0]["_version"].(ovsdb.UUID)
	return v
}

func TestEnsureBridge(t *testing.T) {
	d, c := startOVS(t)
	ctx := testCtx(t)
	const br = "pdbr-test"

	configs := []ovsdb.BridgeConfig{{
		Name: br, DatapathType: "netdev", DatapathID: "0000feedbeef0001",
		Protocols: []string{"OpenFlow13"}, FailMode: "secure", DisableInBand: true,
		Controller: "tcp:127.0.0.1:16653", // not 6653: keep clear of controllers under test elsewhere
		HWAddr:     net.HardwareAddr{0x02, 0, 0x5e, 0, 0x53, 0x01},
	}, {
		// Every field changed: EnsureBridge must correct them all.
		Name: br, DatapathType: "netdev", DatapathID: "0000FEEDBEEF0002",
		Protocols: []string{"OpenFlow13", "OpenFlow14"}, FailMode: "standalone",
		Controller: "tcp:127.0.0.1:16654",
		HWAddr:     net.HardwareAddr{0x02, 0, 0x5e, 0, 0x53, 0x02},
	}}
	for i, cfg := range configs {
		if err := c.EnsureBridge(ctx, cfg); err != nil {
			t.Fatalf("config %d: %v", i, err)
		}
		if i == 0 {
			// A user's own other_config key must survive corrections.
			vsctl(t, d, "set", "Bridge", br, "other_config:paradrop-test=kept")
		}
		dpid := strings.ToLower(cfg.DatapathID)
		inBand := `"true"`
		if !cfg.DisableInBand {
			inBand = "<absent>"
		}
		protos := "[" + strings.Join(cfg.Protocols, ", ") + "]"
		checks := []struct {
			args []string
			want string
		}{
			{[]string{"get", "Bridge", br, "fail_mode"}, cfg.FailMode},
			{[]string{"get", "Bridge", br, "datapath_type"}, cfg.DatapathType},
			{[]string{"get", "Bridge", br, "protocols"}, protos},
			{[]string{"get", "Bridge", br, "other_config:datapath-id"}, `"` + dpid + `"`},
			{[]string{"get", "Bridge", br, "other_config:paradrop-test"}, `kept`},
			{[]string{"get", "Bridge", br, "other_config:hwaddr"}, `"` + cfg.HWAddr.String() + `"`},
			{[]string{"get-controller", br}, cfg.Controller},
			{[]string{"list-br"}, br},
		}
		for _, ch := range checks {
			if got := vsctl(t, d, ch.args...); got != ch.want {
				t.Errorf("config %d: ovs-vsctl %s = %s, want %s", i, strings.Join(ch.args, " "), got, ch.want)
			}
		}
		if got := run(t, "ovs-vsctl", "--db="+d.DBSocket(), "--if-exists", "get", "Bridge", br, "other_config:disable-in-band"); (got == "" && inBand != "<absent>") || (got != "" && got != inBand) {
			t.Errorf("config %d: other_config:disable-in-band = %q, want %s", i, got, inBand)
		}
		if list := vsctl(t, d, "list", "Bridge", br); !strings.Contains(list, `datapath-id="`+dpid+`"`) {
			t.Errorf("config %d: list Bridge lacks the datapath id:\n%s", i, list)
		}
		// The switch itself must run with that dpid and speak OpenFlow 1.3
		// on its management socket.
		eventually(t, "ovs-ofctl show reports the pinned dpid", func() (string, bool) {
			out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "show", "unix:"+d.MgmtSocket(br)).CombinedOutput()
			return string(out), err == nil && strings.Contains(string(out), "dpid:"+dpid)
		})

		// The bridge's own port takes the pinned MAC, and says so.
		if err := c.WaitInterfaceMAC(ctx, br, cfg.HWAddr); err != nil {
			t.Errorf("config %d: %v", i, err)
		}
		if got := vsctl(t, d, "get", "Interface", br, "mac_in_use"); got != `"`+cfg.HWAddr.String()+`"` {
			t.Errorf("config %d: the bridge's port uses MAC %s, want %s", i, got, cfg.HWAddr)
		}

		// Ensuring the same config again writes nothing.
		v := bridgeVersion(t, c, br)
		if err := c.EnsureBridge(ctx, cfg); err != nil {
			t.Fatalf("config %d again: %v", i, err)
		}
		if v2 := bridgeVersion(t, c, br); v2 != v {
			t.Errorf("config %d: repeated EnsureBridge modified the bridge (_version %s -> %s)", i, v, v2)
		}
	}

	for _, bad := range []ovsdb.BridgeConfig{
		{Name: ""},
		{Name: br, DatapathID: "123"},
		{Name: br, DatapathID: "000000000000000g"},
		{Name: br, DatapathType: "dpdk"},
		{Name: br, FailMode: "open"},
		{Name: br, HWAddr: net.HardwareAddr{0x03, 0, 0, 0, 0, 1}}, // multicast
		{Name: br, HWAddr: net.HardwareAddr{0, 0, 0, 0, 0, 0}},
		{Name: br, HWAddr: net.HardwareAddr{2, 0, 0, 0, 1}},
	} {
		if err := c.EnsureBridge(ctx, bad); err == nil {
			t.Errorf("EnsureBridge(%+v) succeeded, want a validation error", bad)
		}
	}
}

// veth creates a veth pair with unique names and returns them.
func veth(t *testing.T) (string, string) {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	a, z := "pdt"+hex.EncodeToString(b)+"a", "pdt"+hex.EncodeToString(b)+"z"
	run(t, "ip", "link", "add", a, "type", "veth", "peer", "name", z)
	t.Cleanup(func() { exec.Command("ip", "link", "del", a).Run() })
	run(t, "ip", "link", "set", a, "up")
	run(t, "ip", "link", "set", z, "up")
	return a, z
}

func TestPorts(t *testing.T) {
	var internal string
	t.Cleanup(func() { // runs after OVS is stopped
		if internal != "" && exec.Command("ip", "link", "show", internal).Run() == nil {
			t.Errorf("tap device %s left behind after Stop", internal)
			exec.Command("ip", "link", "del", internal).Run()
		}
	})
	d, c := startOVS(t)
	ctx := testCtx(t)
	const br = "pdbr-test"
	if err := c.EnsureBridge(ctx, ovsdb.BridgeConfig{Name: br, DatapathType: "netdev", FailMode: "secure", Protocols: []string{"OpenFlow13"}}); err != nil {
		t.Fatal(err)
	}
	vethA, _ := veth(t)
	internal = "pdti" + vethA[3:11]

	ports := []struct {
		name, typ string
		ext       map[string]string
	}{
		{internal, "internal", nil},
		{vethA, "", map[string]string{"paradrop-chute": "web"}},
	}
	ofports := map[string]uint32{}
	for _, p := range ports {
		if err := c.AddPort(ctx, br, p.name, p.typ, p.ext); err != nil {
			t.Fatal(err)
		}
		// Idempotent: a second call changes nothing and does not fail.
		if err := c.AddPort(ctx, br, p.name, p.typ, p.ext); err != nil {
			t.Fatalf("AddPort again: %v", err)
		}
		n, err := c.OFPort(ctx, p.name)
		if err != nil {
			t.Fatal(err)
		}
		if want := vsctl(t, d, "get", "Interface", p.name, "ofport"); strconv.FormatUint(uint64(n), 10) != want {
			t.Errorf("OFPort(%s) = %d, ovs-vsctl says %s", p.name, n, want)
		}
		ofports[p.name] = n
		// The switch's OpenFlow view must agree with the database.
		eventually(t, "ovs-ofctl show lists "+p.name, func() (string, bool) {
			out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "show", "unix:"+d.MgmtSocket(br)).CombinedOutput()
			return string(out), err == nil && strings.Contains(string(out), " "+strconv.FormatUint(uint64(n), 10)+"("+p.name+"):")
		})
		if got := vsctl(t, d, "get", "Interface", p.name, "type"); got != p.typ && !(p.typ == "" && got == `""`) {
			t.Errorf("%s type = %s, want %q", p.name, got, p.typ)
		}
	}
	if ofports[internal] == ofports[vethA] {
		t.Errorf("two ports share ofport %d", ofports[vethA])
	}
	if got := vsctl(t, d, "get", "Interface", vethA, "external_ids:paradrop-chute"); got != "web" {
		t.Errorf("external_ids:paradrop-chute = %s, want web", got)
	}
	// Changing the external ids corrects the interface in place.
	if err := c.AddPort(ctx, br, vethA, "", map[string]string{"paradrop-chute": "db"}); err != nil {
		t.Fatal(err)
	}
	if got := vsctl(t, d, "get", "Interface", vethA, "external_ids:paradrop-chute"); got != "db" {
		t.Errorf("after correction external_ids:paradrop-chute = %s, want db", got)
	}

	if n, err := c.OFPort(ctx, br); err != nil || n != 0xfffe {
		t.Errorf("OFPort(bridge) = %d, %v; want OFPP_LOCAL", n, err)
	}

	want := []string{internal, vethA}
	slices.Sort(want)
	got, err := c.ListPorts(ctx, br)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListPorts = %v, want %v", got, want)
	}
	if lp := strings.Fields(vsctl(t, d, "list-ports", br)); !slices.Equal(lp, want) {
		t.Errorf("ovs-vsctl list-ports = %v, want %v", lp, want)
	}

	if err := c.DeletePort(ctx, br, vethA); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePort(ctx, br, vethA); err != nil {
		t.Errorf("deleting a deleted port: %v", err)
	}
	if lp := strings.Fields(vsctl(t, d, "list-ports", br)); !slices.Equal(lp, []string{internal}) {
		t.Errorf("ovs-vsctl list-ports after delete = %v, want [%s]", lp, internal)
	}
	if out, err := exec.Command("ovs-vsctl", "--db="+d.DBSocket(), "get", "Interface", vethA, "ofport").CombinedOutput(); err == nil {
		t.Errorf("interface %s still in the database: %s", vethA, out)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if n, err := c.OFPort(short, vethA); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("OFPort of deleted port = %d, %v; want deadline exceeded", n, err)
	}

	if err := c.AddPort(ctx, "pdbr-missing", "x", "", nil); !errors.Is(err, ovsdb.ErrNotFound) {
		t.Errorf("AddPort to missing bridge: %v, want ErrNotFound", err)
	}
	if _, err := c.ListPorts(ctx, "pdbr-missing"); !errors.Is(err, ovsdb.ErrNotFound) {
		t.Errorf("ListPorts of missing bridge: %v, want ErrNotFound", err)
	}
}

func TestOFPortReportsInterfaceError(t *testing.T) {
	_, c := startOVS(t)
	ctx := testCtx(t)
	if err := c.EnsureBridge(ctx, ovsdb.BridgeConfig{Name: "pdbr-test", DatapathType: "netdev"}); err != nil {
		t.Fatal(err)
	}
	// A system port whose device does not exist never gets an ofport.
	if err := c.AddPort(ctx, "pdbr-test", "pdtnodev0", "", nil); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := c.OFPort(short, "pdtnodev0")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "interface error") {
		t.Errorf("OFPort of missing device: %v, want deadline exceeded with the interface error", err)
	}
}

func TestMonitor(t *testing.T) {
	d, c := startOVS(t)
	ctx := testCtx(t)
	if err := c.EnsureBridge(ctx, ovsdb.BridgeConfig{Name: "pdbr-old", DatapathType: "netdev"}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var calls []ovsdb.TableUpdates
	seen := make(chan struct{}, 16)
	m, err := c.Monitor(ctx, ovsdb.VSwitchDB, map[string][]string{"Bridge": {"name", "datapath_type"}}, func(tu ovsdb.TableUpdates) {
		mu.Lock()
		calls = append(calls, tu)
		mu.Unlock()
		seen <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	find := func(name string, inserted bool) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, tu := range calls {
			for _, ru := range tu["Bridge"] {
				if ru.New.String("name") == name && (ru.Old == nil) == inserted {
					return true
				}
			}
		}
		return false
	}
	wait := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			select {
			case <-seen:
			case <-ctx.Done():
				t.Fatalf("monitor never reported %s", what)
			}
		}
	}
	wait("the initial bridge", func() bool { return find("pdbr-old", true) })

	// A change made by another client (the real ovs-vsctl) is seen.
	vsctl(t, d, "--no-wait", "add-br", "pdbr-new", "--", "set", "Bridge", "pdbr-new", "datapath_type=netdev")
	wait("the inserted bridge", func() bool { return find("pdbr-new", true) })
	vsctl(t, d, "--no-wait", "set", "Bridge", "pdbr-new", "datapath_type=system")
	wait("the modified bridge", func() bool { return find("pdbr-new", false) })

	if err := m.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(calls)
	mu.Unlock()
	vsctl(t, d, "--no-wait", "del-br", "pdbr-new")
	if err := c.Echo(ctx); err != nil { // a round trip: any update would have arrived before
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != n {
		t.Errorf("callback ran %d times after Cancel", len(calls)-n)
	}
}

func TestTransactErrors(t *testing.T) {
	_, c := startOVS(t)
	ctx := testCtx(t)
	tests := []struct {
		name   string
		db     string
		ops    []ovsdb.Operation
		err    string
		op     int
		opName string
	}{
		{"bad column", ovsdb.VSwitchDB, []ovsdb.Operation{
			ovsdb.Comment("first op succeeds"),
			ovsdb.Insert("Bridge", ovsdb.Row{"no_such_column": "x"}, ""),
		}, "unknown column", 1, "insert"},
		{"bad table", ovsdb.VSwitchDB, []ovsdb.Operation{
			ovsdb.Select("No_Such_Table", nil),
		}, "syntax error", 0, "select"},
		{"wait times out", ovsdb.VSwitchDB, []ovsdb.Operation{
			ovsdb.Wait("Bridge", nil, []string{"name"}, "!=", nil, 0),
		}, "timed out", 0, "wait"},
		{"unknown database", "No_Such_DB", []ovsdb.Operation{ovsdb.Comment("x")}, "unknown database", -1, ""},
		{"commit fails", ovsdb.VSwitchDB, []ovsdb.Operation{
			// Duplicate names violate Bridge's index at commit time.
			ovsdb.Insert("Bridge", ovsdb.Row{"name": "pdbr-dup"}, "a"),
			ovsdb.Insert("Bridge", ovsdb.Row{"name": "pdbr-dup"}, "b"),
			ovsdb.Mutate("Open_vSwitch", nil, ovsdb.Mutation{Column: "bridges", Mutator: "insert", Value: ovsdb.Set{ovsdb.NamedUUID("a"), ovsdb.NamedUUID("b")}}),
		}, "constraint violation", 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Transact(ctx, tt.db, tt.ops...)
			var e *ovsdb.Error
			if !errors.As(err, &e) {
				t.Fatalf("Transact error = %v (%T), want *ovsdb.Error", err, err)
			}
			if e.Err != tt.err || e.Op != tt.op || e.OpName != tt.opName {
				t.Errorf("error = %+v, want Err %q Op %d OpName %q", e, tt.err, tt.op, tt.opName)
			}
		})
	}
	// The client stays usable after operation errors.
	res, err := c.Transact(ctx, ovsdb.VSwitchDB, ovsdb.Select("Bridge", []ovsdb.Condition{ovsdb.Eq("name", "pdbr-dup")}))
	if err != nil || len(res[0].Rows) != 0 {
		t.Errorf("after failed transactions: %v, %v; want no pdbr-dup bridge", res, err)
	}
}

func TestEchoListDBsSchema(t *testing.T) {
	_, c := startOVS(t)
	ctx := testCtx(t)
	if err := c.Echo(ctx); err != nil {
		t.Fatal(err)
	}
	dbs, err := c.ListDBs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dbs, ovsdb.VSwitchDB) {
		t.Errorf("ListDBs = %v, want %s among them", dbs, ovsdb.VSwitchDB)
	}
	s, err := c.GetSchema(ctx, ovsdb.VSwitchDB)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != ovsdb.VSwitchDB || s.Tables["Bridge"].Columns["fail_mode"] == nil || !s.Tables["Open_vSwitch"].IsRoot {
		t.Errorf("schema %s %s lacks Bridge.fail_mode or a root Open_vSwitch table", s.Name, s.Version)
	}
	if _, err := c.GetSchema(ctx, "No_Such_DB"); err == nil {
		t.Error("GetSchema of unknown database succeeded")
	}
}
