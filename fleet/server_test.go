package fleet

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"paradrop/internal/mosquitto"
	"paradrop/internal/uspsim"
)

const sig = "untrusted comment: test\nRWQ...\n"

// fleetWorld is a broker, simulated gateways and the means to run
// controllers on it.
type fleetWorld struct {
	t      *testing.T
	broker *mosquitto.Broker
	agents []*uspsim.Agent
	ctrls  map[string]string // endpoint ID -> topic, trusted by every agent
}

func newFleetWorld(t *testing.T, n int, ctrls ...string) *fleetWorld {
	w := &fleetWorld{t: t, broker: mosquitto.Start(t), ctrls: map[string]string{}}
	for _, c := range ctrls {
		w.ctrls[c] = "usp/controllers/" + c
	}
	for i := range n {
		id := fmt.Sprintf("os::sim%03d", i)
		w.agents = append(w.agents, &uspsim.Agent{ID: id, Topic: "usp/agents/" + id, Controllers: w.ctrls,
			Version: "gw-1.0", Delay: 50 * time.Millisecond})
	}
	return w
}

func (w *fleetWorld) ids() []string {
	var out []string
	for _, a := range w.agents {
		out = append(out, a.ID)
	}
	return out
}

// start connects the agents.
func (w *fleetWorld) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, len(w.agents))
	for _, a := range w.agents {
		go func() { a.Run(ctx, w.broker.URL()); done <- struct{}{} }()
	}
	w.t.Cleanup(func() {
		cancel()
		for range w.agents {
			<-done
		}
	})
}

// server runs a controller until the test ends or its stop is called.
func (w *fleetWorld) server(id string, agents map[string]string) (*Server, func()) {
	w.t.Helper()
	s, err := NewServer(w.t.Context(), ServerConfig{Broker: w.broker.URL(), EndpointID: id, Topic: w.ctrls[id],
		Agents: agents, Listen: "127.0.0.1:0", Logf: w.t.Logf})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop := func() {
		cancel()
		<-done
	}
	w.t.Cleanup(stop)
	select {
	case <-s.ctl.Ready():
	case <-time.After(10 * time.Second):
		w.t.Fatal("the controller did not connect")
	}
	return s, stop
}

// client is what the CLI opens: the state, with no controller.
func (w *fleetWorld) client() *Retained {
	w.t.Helper()
	st, err := OpenRetained(w.t.Context(), RetainedConfig{Broker: w.broker.URL(), ClientID: "cli-" + w.t.Name()})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(st.Close)
	return st
}

func (w *fleetWorld) pkg(st *Retained, version string) Package {
	w.t.Helper()
	p, err := st.AddPackage(w.t.Context(), "app", version, uspsim.Package("app", version), []byte(sig))
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// until waits for cond, checked at each change of the state.
func until(t *testing.T, st *Retained, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-st.Changed():
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func rolloutState(st *Retained, id string) Status {
	s, _, _ := st.Rollout(id)
	return s
}

// A controller finds gateways that connect, unconfigured, and stores
// their software version and chutes.
func TestServerDiscovers(t *testing.T) {
	w := newFleetWorld(t, 3, "self::ctl-a")
	w.agents[1].Put("app", "1.0.0")
	w.server("self::ctl-a", nil)
	w.start()
	st := w.client()
	until(t, st, "3 gateways", func() bool { return len(st.Gateways()) == 3 })
	for i, g := range st.Gateways() {
		if g.ID != w.agents[i].ID || !g.Online || g.Version != "gw-1.0" || g.Topic != w.agents[i].Topic {
			t.Errorf("gateway %+v", g)
		}
		want := 0
		if i == 1 {
			want = 1
		}
		if len(g.Chutes) != want || (want == 1 && (g.Chutes[0].Name != "app" || g.Chutes[0].Version != "1.0.0")) {
			t.Errorf("%s chutes %+v", g.ID, g.Chutes)
		}
	}
}

// A rollout with a bad gateway aborts and rolls back: the updated
// gateways get their former version back, one that had none loses the
// chute, and the package and signature were downloaded from the
// controller.
func TestServerRolloutAbortsAndRollsBack(t *testing.T) {
	w := newFleetWorld(t, 6, "self::ctl-a")
	for _, a := range w.agents[:5] {
		a.Put("app", "1.0.0")
	}
	w.agents[3].FailVersion = "2.0.0"
	w.start()
	agents := map[string]string{}
	for _, a := range w.agents {
		agents[a.ID] = a.Topic
	}
	w.server("self::ctl-a", agents)
	st := w.client()
	w.pkg(st, "1.0.0")
	p2 := w.pkg(st, "2.0.0")
	// The fresh gateway and the bad one come after the first updates.
	targets := []string{w.agents[0].ID, w.agents[1].ID, w.agents[5].ID, w.agents[3].ID, w.agents[2].ID, w.agents[4].ID}
	spec := Spec{ID: "r-bad", Package: p2, Targets: targets, MaxInFlight: 1, AbortMin: 1, AbortPercent: 10, Timeout: 10 * time.Second}
	if err := st.StartRollout(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	until(t, st, "the rollout to end", func() bool { return rolloutState(st, "r-bad").State.Done() })
	got := rolloutState(st, "r-bad")
	if got.State != Aborted || got.Counts[RolledBack] != 4 || got.Counts[Pending] != 2 || got.Owner != "self::ctl-a" {
		t.Fatalf("rollout %s %q %v owner %q", got.State, got.Reason, got.Counts, got.Owner)
	}
	for i, want := range []string{"1.0.0", "1.0.0", "1.0.0", "1.0.0", "1.0.0", ""} {
		if v := w.agents[i].DU("app"); v != want {
			t.Errorf("%s runs app %q, want %q", w.agents[i].ID, v, want)
		}
	}
	if n := w.agents[2].Installs() + w.agents[4].Installs(); n != 0 {
		t.Errorf("%d installs after the abort", n)
	}
	if err := st.StartRollout(t.Context(), spec); err == nil {
		t.Error("a second rollout of the same ID started")
	}
}

// Controller A runs a rollout and dies; B takes it over from the state
// on the broker and finishes it, redoing no gateway A finished.
func TestServerRolloutTakeover(t *testing.T) {
	w := newFleetWorld(t, 12, "self::ctl-a", "self::ctl-b")
	for _, a := range w.agents {
		a.Put("app", "1.0.0")
		a.Delay = 200 * time.Millisecond
	}
	a, stopA := w.server("self::ctl-a", nil)
	w.start()
	st := w.client()
	until(t, st, "the gateways", func() bool { return len(st.Gateways()) == 12 })
	w.pkg(st, "1.0.0")
	p2 := w.pkg(st, "2.0.0")
	if err := st.StartRollout(t.Context(), Spec{ID: "r-take", Package: p2, Targets: w.ids(), MaxInFlight: 2}); err != nil {
		t.Fatal(err)
	}
	until(t, st, "4 gateways updated", func() bool { return rolloutState(st, "r-take").Counts[Succeeded] >= 4 })
	// A crashes: its state connection drops (the broker publishes its
	// will), which stops its rollouts at once, then the rest of it stops.
	a.Kill()
	until(t, st, "A offline", func() bool { return len(st.Online()) == 0 })
	stopA()
	finished := map[string]bool{}
	for gw, r := range rolloutState(st, "r-take").Result {
		if r.State == Succeeded {
			finished[gw] = true
		}
	}

	w.server("self::ctl-b", nil)
	until(t, st, "the rollout to end", func() bool { return rolloutState(st, "r-take").State.Done() })
	got := rolloutState(st, "r-take")
	if got.State != Completed || got.Counts[Succeeded] != 12 || got.Owner != "self::ctl-b" {
		t.Fatalf("rollout %s %v owner %q: %+v", got.State, got.Counts, got.Owner, got.Result)
	}
	redone := 0
	for _, ag := range w.agents {
		if ag.DU("app") != "2.0.0" {
			t.Errorf("%s runs %q", ag.ID, ag.DU("app"))
		}
		if finished[ag.ID] && ag.Installs() != 1 {
			t.Errorf("%s, finished by A, installed %d times", ag.ID, ag.Installs())
		}
		if ag.Installs() > 1 {
			redone++
		}
	}
	t.Logf("%d finished by A; %d under way at the crash redone by B", len(finished), redone)
}

// An operator pauses, resumes and aborts a rollout through the state.
func TestServerRolloutControl(t *testing.T) {
	w := newFleetWorld(t, 8, "self::ctl-a")
	w.server("self::ctl-a", nil)
	w.start()
	st := w.client()
	until(t, st, "the gateways", func() bool { return len(st.Gateways()) == 8 })
	p1 := w.pkg(st, "1.0.0")
	if err := st.StartRollout(t.Context(), Spec{ID: "r-ctl", Package: p1, Targets: w.ids(), BasePerMinute: 120}); err != nil {
		t.Fatal(err)
	}
	until(t, st, "the canary", func() bool { return rolloutState(st, "r-ctl").Counts[Succeeded] >= 1 })
	if err := st.SetControl(t.Context(), "r-ctl", ActionPause); err != nil {
		t.Fatal(err)
	}
	until(t, st, "paused", func() bool { return rolloutState(st, "r-ctl").State == Paused })
	time.Sleep(300 * time.Millisecond) // an install started before the pause shows
	before := rolloutState(st, "r-ctl").Counts[Pending]
	time.Sleep(1500 * time.Millisecond)
	if n := rolloutState(st, "r-ctl").Counts[Pending]; n != before {
		t.Errorf("%d installs started while paused", before-n)
	}
	st.SetControl(t.Context(), "r-ctl", ActionResume)
	until(t, st, "resumed", func() bool { return rolloutState(st, "r-ctl").State == Running })
	st.SetControl(t.Context(), "r-ctl", ActionAbort)
	until(t, st, "aborted", func() bool { return rolloutState(st, "r-ctl").State == Aborted })
	got := rolloutState(st, "r-ctl")
	for gw, r := range got.Result {
		if r.State == RolledBack && w.agents[0].DU("app") != "" {
			t.Errorf("%s rolled back but runs %q", gw, w.agents[0].DU("app"))
		}
	}
	if got.Counts[Pending] == 0 {
		t.Errorf("counts %v", got.Counts)
	}
}

// The controller serves the packages the state lists, and nothing else.
func TestServerServesPackages(t *testing.T) {
	w := newFleetWorld(t, 0, "self::ctl-a")
	s, _ := w.server("self::ctl-a", nil)
	st := w.client()
	p := w.pkg(st, "1.0.0")
	until(t, s.State(), "the package listed", func() bool { _, ok := s.State().Package(p.SHA256); return ok })
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, s.URL()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("GET", "/packages/"+p.SHA256+".tar"); code != 200 || fmt.Sprintf("%x", sha256.Sum256([]byte(body))) != p.SHA256 {
		t.Errorf("package: %d, %d bytes", code, len(body))
	}
	if code, body := get("GET", "/packages/"+p.SHA256+".tar.minisig"); code != 200 || body != sig {
		t.Errorf("signature: %d %q", code, body)
	}
	for _, bad := range []struct{ method, path string }{
		{"GET", "/packages/" + strings.Repeat("0", 64) + ".tar"},
		{"POST", "/packages/" + p.SHA256 + ".tar"},
		{"GET", "/packages/" + p.SHA256},
		{"GET", "/packages/../" + p.SHA256 + ".tar"},
		{"GET", "/"},
	} {
		if code, _ := get(bad.method, bad.path); code != 404 {
			t.Errorf("%s %s: %d", bad.method, bad.path, code)
		}
	}
}

// The broker restarts mid-rollout (losing its retained messages, as this
// test's Mosquitto keeps none): the controller stops its rollout while
// the broker is away, and once back it carries on from what it knew, and
// finishes. An install under way at the restart may have lost its
// OperationComplete with the broker: it times out, and that is all.
func TestServerRolloutSurvivesBrokerRestart(t *testing.T) {
	w := newFleetWorld(t, 6, "self::ctl-a")
	for _, a := range w.agents {
		a.Put("app", "1.0.0")
		a.Delay = 200 * time.Millisecond
	}
	s, _ := w.server("self::ctl-a", nil)
	w.start()
	until(t, s.State(), "the gateways", func() bool { return len(s.State().Gateways()) == 6 })
	w.pkg(s.State(), "1.0.0")
	p2 := w.pkg(s.State(), "2.0.0")
	if err := s.State().StartRollout(t.Context(), Spec{ID: "r-restart", Package: p2, Targets: w.ids(), MaxInFlight: 1, Timeout: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	until(t, s.State(), "2 gateways updated", func() bool { return rolloutState(s.State(), "r-restart").Counts[Succeeded] >= 2 })
	w.broker.Restart()
	deadline := time.Now().Add(90 * time.Second)
	for !rolloutState(s.State(), "r-restart").State.Done() {
		if time.Now().After(deadline) {
			t.Fatalf("rollout %+v", rolloutState(s.State(), "r-restart").Counts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	got := rolloutState(s.State(), "r-restart")
	if got.State != Completed || got.Counts[Succeeded] < 5 || got.Counts[Succeeded]+got.Counts[TimedOut] != 6 {
		t.Fatalf("rollout %s %v: %+v", got.State, got.Counts, got.Result)
	}
	for _, a := range w.agents {
		if got.Result[a.ID].State == Succeeded && a.DU("app") != "2.0.0" {
			t.Errorf("%s runs %q", a.ID, a.DU("app"))
		}
	}
	t.Logf("counts %v", got.Counts)
}
