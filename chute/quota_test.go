package chute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"paradrop/chute/manifest"
)

func TestFitQuota(t *testing.T) {
	q := Quota{Chutes: 3, CPU: 1.5, Memory: 256 * mi, Disk: 512 * mi, Egress: 20e6}
	hs := map[string]holding{
		"a1":   {owner: "acme", cpu: 1, memory: 128 * mi, disk: 256 * mi, egress: 10e6},
		"a2":   {owner: "acme", cpu: 0.25, memory: 64 * mi, disk: 128 * mi, egress: 5e6},
		"b1":   {owner: "beta", cpu: 8, memory: 1 << 30, disk: 1 << 30, egress: 1e9},
		"op":   {cpu: 8, memory: 1 << 30, disk: 1 << 30},
		"kept": {disk: 1 << 30},
	}
	cases := []struct {
		name string
		c    claim
		want string // "" fits; else a part of the error
	}{
		{"install within", claim{name: "a3", cpu: 0.25, memory: 64 * mi, disk: 128 * mi, egress: 5e6}, ""},
		{"install over cpu", claim{name: "a3", cpu: 0.5, memory: 4 * mi, disk: 4 * mi, egress: 1}, `cpu: 1.25 cores used by its other chutes, "a3" asks 0.5, quota 1.5`},
		{"install over memory", claim{name: "a3", cpu: 0.1, memory: 65 * mi, disk: 4 * mi, egress: 1}, `memory: 192Mi used by its other chutes, "a3" asks 65Mi, quota 256Mi`},
		{"install over disk", claim{name: "a3", cpu: 0.1, memory: 4 * mi, disk: 129 * mi, egress: 1}, `disk: 384Mi used`},
		{"install over egress", claim{name: "a3", cpu: 0.1, memory: 4 * mi, disk: 4 * mi, egress: 5e6 + 1}, `egress: 15Mbit used`},
		{"no cpu_max", claim{name: "a3", memory: 4 * mi, egress: 1}, `"a3" has no cpu_max`},
		{"no egress limit", claim{name: "a3", cpu: 0.1, memory: 4 * mi}, `"a3" has no egress limit`},
		{"resources raise of own chute within", claim{name: "a1", cpu: 1.25, memory: 192 * mi, egress: 15e6}, ""},
		{"resources raise beyond", claim{name: "a1", cpu: 1.26, memory: 128 * mi, egress: 1}, "cpu: 0.25 cores used"},
		{"update keeps its volume's size", claim{name: "a1", cpu: 1, memory: 128 * mi, disk: 4 * mi, egress: 1}, ""},
		{"update grows its volume beyond", claim{name: "a1", cpu: 1, memory: 128 * mi, disk: 385 * mi, egress: 1}, `"a1" asks 385Mi, quota 512Mi`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.c.owner = "acme"
			err := fitQuota("acme", q, hs, c.c)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (!errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `developer "acme"`)):
				t.Errorf("err = %v, want ErrQuota with %q", err, c.want)
			}
		})
	}
	// The count: a third chute fits, a fourth does not.
	hs["a3"] = holding{owner: "acme", cpu: 0.1, egress: 1}
	err := fitQuota("acme", Quota{Chutes: 3}, hs, claim{name: "a4", owner: "acme"})
	if !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), `chutes: 3 used by its other chutes, "a4" asks 1 more, quota 3`) {
		t.Errorf("fourth chute: %v", err)
	}
	if err := fitQuota("acme", Quota{Chutes: 3}, hs, claim{name: "a3", owner: "acme"}); err != nil {
		t.Errorf("an update at the count: %v", err)
	}
	// No quota bounds nothing.
	if err := fitQuota("acme", Quota{}, hs, claim{name: "a9", cpu: 64, memory: 1 << 40, owner: "acme"}); err != nil {
		t.Errorf("no quota: %v", err)
	}
}

// Through the manager: a developer's installs racing for the last place of
// its quota cannot both have it, its resources change beyond its quota is
// refused, and the operator's chutes and other developers' do not count.
func TestQuotaAdmission(t *testing.T) {
	quotas := map[Owner]Quota{"acme": {Chutes: 2, Memory: 96 * mi}}
	g := newGatewayWith(t, t.TempDir(), func(c *Config) {
		c.Quota = func(o Owner) (Quota, error) { return quotas[o], nil }
	})
	defer g.removeAll()
	sleeper := func(name, mem string) []byte {
		return pkg(t, fmt.Sprintf("name: %s\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\nresources: {memory: %s}\n", name, mem), nil)
	}
	g.mustDo(g.m.Install(context.Background(), bytes.NewReader(sleeper("op", "512Mi")), Origin{}))
	g.mustDo(g.m.Install(context.Background(), bytes.NewReader(sleeper("other", "512Mi")), Origin{Owner: "beta"}))
	g.mustDo(g.m.Install(context.Background(), bytes.NewReader(sleeper("a1", "32Mi")), Origin{Owner: "acme"}))

	var wg sync.WaitGroup
	errs := make([]error, 2)
	chs := make([]Change, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chs[i], errs[i] = g.m.Install(context.Background(), bytes.NewReader(sleeper(fmt.Sprintf("racer%d", i), "32Mi")), Origin{Owner: "acme"})
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			g.mustDo(chs[i], nil)
		case !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "chutes: "):
			t.Errorf("racer%d: %v, want ErrQuota on chutes", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d racers admitted to the last place, want 1: %v", won, errs)
	}
	mem := manifest.Bytes(65 * mi)
	_, err := g.m.SetResources("a1", ResourceRequest{Policy: Policy{Memory: &mem}}, "")
	if !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), `memory: 32Mi used by its other chutes, "a1" asks 65Mi, quota 96Mi`) {
		t.Fatalf("memory beyond the quota: %v", err)
	}
	mem = 64 * mi
	g.mustDo(g.m.SetResources("a1", ResourceRequest{Policy: Policy{Memory: &mem}}, ""))
}

// heldBy counts what fitQuota counts: an owner's chutes, claims included,
// and nobody else's.
func TestHeldBy(t *testing.T) {
	hs := map[string]holding{
		"a1":   {owner: "acme", cpu: 1, memory: 128 * mi, disk: 256 * mi, diskAlloc: 4 * mi, egress: 10e6},
		"a2":   {owner: "acme", cpu: 0.25, memory: 64 * mi, disk: 128 * mi, egress: 5e6},
		"b1":   {owner: "beta", cpu: 8, memory: 1 << 30, disk: 1 << 30, egress: 1e9},
		"kept": {disk: 1 << 30},
	}
	want := Quota{Chutes: 2, CPU: 1.25, Memory: 192 * mi, Disk: 384 * mi, Egress: 15e6}
	if got := heldBy("acme", hs, ""); got != want {
		t.Errorf("acme holds %+v, want %+v", got, want)
	}
	want = Quota{Chutes: 1, CPU: 0.25, Memory: 64 * mi, Disk: 128 * mi, Egress: 5e6}
	if got := heldBy("acme", hs, "a1"); got != want {
		t.Errorf("acme without a1 holds %+v, want %+v", got, want)
	}
	if got := heldBy("nobody", hs, ""); got != (Quota{}) {
		t.Errorf("a developer without chutes holds %+v", got)
	}
}
