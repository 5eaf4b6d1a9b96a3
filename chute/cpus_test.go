package chute

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"paradrop/cgroup"
	"paradrop/chute/manifest"
)

// chuteCPUs is the CPU list the kernel lets the chute's main process run on.
func chuteCPUs(t *testing.T, g *gateway, name string) string {
	t.Helper()
	c, err := g.m.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list for %s", name)
	return ""
}

// A manifest's CPU list holds the chute to those CPUs; the operator's
// policy moves it live, across a restart, and lifts it.
func TestCPUsFromManifestAndPolicy(t *testing.T) {
	online, err := cgroup.OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(online) < 2 {
		t.Fatalf("this test needs two CPUs, the machine has %v", online)
	}
	all := strconv.Itoa(online[0]) + "-" + strconv.Itoa(online[len(online)-1])
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, busyChute+"resources: {cpus: \"0\"}\n", nil))
	if got := chuteCPUs(t, g, "busy"); got != "0" {
		t.Errorf("manifest cpus 0: the chute runs on %q", got)
	}
	other := strconv.Itoa(online[1])
	c := g.mustDo(g.m.SetResources("busy", ResourceRequest{Policy: Policy{CPUs: ptr(other)}, Grace: ptr(manifest.Duration(0))}, ""))
	if got := chuteCPUs(t, g, "busy"); got != other {
		t.Errorf("policy cpus %s: the chute runs on %q (steps %s)", other, got, steps(c))
	}
	if !strings.Contains(steps(c), "cpus="+other) {
		t.Errorf("the change does not say which CPUs:\n%s", steps(c))
	}
	doc, err := os.ReadFile(g.m.paths.policy("busy") + "/policy.json")
	if err != nil || !strings.Contains(string(doc), `"cpus": "`+other+`"`) {
		t.Errorf("policy.json = %s, %v", doc, err)
	}
	g.mustDo(g.m.Restart("busy", ""))
	if got := chuteCPUs(t, g, "busy"); got != other {
		t.Errorf("after a restart the chute runs on %q, want the policy's %s", got, other)
	}
	g.mustDo(g.m.SetResources("busy", ResourceRequest{Policy: Policy{CPUs: ptr("")}, Grace: ptr(manifest.Duration(0))}, ""))
	if got := chuteCPUs(t, g, "busy"); got != all {
		t.Errorf("policy cpus \"\": the chute runs on %q, want every CPU %s", got, all)
	}
}

// A CPU list the gateway cannot honour is refused at install and as a
// policy, saying why; nothing changes.
func TestCPUsRefused(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	for in, why := range map[string]string{"8191": "not online", "0-x": "not a CPU number", "1-0": "backwards"} {
		_, err := g.m.Install(context.Background(), bytes.NewReader(pkg(t, busyChute+"resources: {cpus: \""+in+"\"}\n", nil)), Origin{})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), why) {
			t.Errorf("install with cpus %q: %v, want ErrInvalid saying %q", in, err, why)
		}
	}
	g.install(pkg(t, busyChute, nil))
	for in, why := range map[string]string{"8191": "not online", "x": "not a CPU number"} {
		if _, err := g.m.SetResources("busy", ResourceRequest{Policy: Policy{CPUs: ptr(in)}}, ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), why) {
			t.Errorf("policy cpus %q: %v, want ErrInvalid saying %q", in, err, why)
		}
	}
}
