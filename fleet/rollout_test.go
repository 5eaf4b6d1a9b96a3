package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeFleet is simulated gateways: each runs a version of the chute and
// installs as its behaviour says.
type fakeFleet struct {
	mu        sync.Mutex
	version   map[string]string
	behave    map[string]string // "fail", "hang" (ignores its ctx), "slow"
	starts    map[string]time.Time
	ends      map[string]time.Time
	currents  map[string]int
	rollbacks map[string]string
	delay     time.Duration
}

func newFakeFleet(n int, version string) (*fakeFleet, []string) {
	f := &fakeFleet{version: map[string]string{}, behave: map[string]string{}, starts: map[string]time.Time{},
		ends: map[string]time.Time{}, currents: map[string]int{}, rollbacks: map[string]string{}, delay: 5 * time.Millisecond}
	var gws []string
	for i := range n {
		gw := fmt.Sprintf("os::gw%03d", i)
		gws = append(gws, gw)
		f.version[gw] = version
	}
	return f, gws
}

func (f *fakeFleet) Current(ctx context.Context, gw, chute string) (string, error) {
	f.mu.Lock()
	slow := f.behave[gw] == "slow-read"
	f.mu.Unlock()
	if slow {
		time.Sleep(300 * time.Millisecond) // ignoring ctx
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.currents[gw]++
	return f.version[gw], nil
}

func (f *fakeFleet) Install(ctx context.Context, gw string, pkg Package) error {
	f.mu.Lock()
	f.starts[gw] = time.Now()
	b := f.behave[gw]
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.ends[gw] = time.Now()
		f.mu.Unlock()
	}()
	switch b {
	case "hang":
		select {} //lint:ignore a gateway that never answers and ignores ctx
	case "fail":
		time.Sleep(f.delay)
		return errors.New("install refused")
	case "slow":
		select {
		case <-time.After(time.Hour):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	time.Sleep(f.delay)
	f.mu.Lock()
	f.version[gw] = pkg.Version
	f.mu.Unlock()
	return nil
}

func (f *fakeFleet) Rollback(ctx context.Context, gw string, pkg Package, prev string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollbacks[gw] = prev
	f.version[gw] = prev
	return nil
}

func (f *fakeFleet) started(gw string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.starts[gw]
	return t, ok
}

// memStore keeps what the engine saves, as the broker would.
type memStore struct {
	mu      sync.Mutex
	status  []Status
	results map[string]Result
	saves   map[string]int
}

func (m *memStore) SaveRollout(_ context.Context, st Status) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status = append(m.status, st)
	return nil
}

func (m *memStore) SaveResult(_ context.Context, id, gw string, r Result) error {
	m.mu.Lock()
	if m.saves == nil {
		m.saves = map[string]int{}
	}
	m.saves[gw]++
	defer m.mu.Unlock()
	if m.results == nil {
		m.results = map[string]Result{}
	}
	m.results[gw] = r
	return nil
}

func runRollout(t *testing.T, spec Spec, inst Installer, store Store, prior map[string]Result) (*Run, Status) {
	t.Helper()
	r, err := Start(t.Context(), spec, inst, store, "", prior, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("rollout did not end: %+v", r.Status().Counts)
	}
	return r, r.Status()
}

var pkg2 = Package{Name: "app", Version: "2.0.0", SHA256: "00"}

func TestRolloutMatrix(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		behave map[int]string
		spec   Spec
		state  State
		counts map[GatewayState]int
		// never are gateways whose install must never start.
		never []int
	}{
		{name: "all succeed", n: 20, state: Completed, counts: map[GatewayState]int{Succeeded: 20}},
		{name: "canary fails: nothing else starts, the canary is rolled back", n: 10, behave: map[int]string{0: "fail"},
			state: Aborted, counts: map[GatewayState]int{RolledBack: 1, Pending: 9}, never: []int{1, 9}},
		{name: "a hung gateway times out, the rest go on", n: 10, behave: map[int]string{3: "hang"},
			spec: Spec{Timeout: 300 * time.Millisecond}, state: Completed, counts: map[GatewayState]int{Succeeded: 9, TimedOut: 1}},
		{name: "failures under the threshold complete", n: 20, behave: map[int]string{5: "fail", 12: "fail"},
			spec: Spec{AbortMin: 5, AbortPercent: 50}, state: Completed, counts: map[GatewayState]int{Succeeded: 18, Failed: 2}},
		{name: "the threshold crossed aborts and rolls back the updated and failed", n: 10,
			behave: map[int]string{2: "fail", 3: "fail", 4: "fail"},
			spec:   Spec{AbortMin: 4, AbortPercent: 50, MaxInFlight: 1},
			state:  Aborted, counts: map[GatewayState]int{RolledBack: 4, Pending: 6}, never: []int{4, 9}},
		{name: "no canary", n: 5, behave: map[int]string{0: "fail"}, spec: Spec{Canary: -1},
			state: Completed, counts: map[GatewayState]int{Succeeded: 4, Failed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, gws := newFakeFleet(tc.n, "1.0.0")
			for i, b := range tc.behave {
				f.behave[gws[i]] = b
			}
			spec := tc.spec
			spec.ID, spec.Package, spec.Targets = "r1", pkg2, gws
			store := &memStore{}
			_, st := runRollout(t, spec, f, store, nil)
			if st.State != tc.state || fmt.Sprint(st.Counts) != fmt.Sprint(tc.counts) {
				t.Fatalf("state %s counts %v (%s), want %s %v", st.State, st.Counts, st.Reason, tc.state, tc.counts)
			}
			for _, i := range tc.never {
				if _, ok := f.started(gws[i]); ok {
					t.Errorf("%s was installed", gws[i])
				}
			}
			// The canary ended before any other install started.
			if canaryEnd, ok := f.ends[gws[0]]; ok && spec.Canary >= 0 {
				for _, gw := range gws[1:] {
					if s, ok := f.started(gw); ok && s.Before(canaryEnd) {
						t.Errorf("%s started before the canary ended", gw)
					}
				}
			}
			// What was rolled back got its previous version back; what was
			// not runs the new one or was never touched.
			for _, gw := range gws {
				res := st.Result[gw]
				switch res.State {
				case RolledBack:
					if f.rollbacks[gw] != "1.0.0" || f.version[gw] != "1.0.0" {
						t.Errorf("%s rolled back to %q, runs %q", gw, f.rollbacks[gw], f.version[gw])
					}
				case Succeeded:
					if f.version[gw] != "2.0.0" {
						t.Errorf("%s succeeded but runs %q", gw, f.version[gw])
					}
				}
				if store.results[gw] != res && res.State != Pending {
					t.Errorf("%s: stored %+v, engine %+v", gw, store.results[gw], res)
				}
			}
			if last := store.status[len(store.status)-1]; last.State != tc.state {
				t.Errorf("stored state %s", last.State)
			}
		})
	}
}

// Once the abort threshold is crossed, no install starts, even while
// other gateways hang ignoring their context; the abort is decided in
// well under a second.
func TestRolloutAbortStopsInstallsAtOnce(t *testing.T) {
	f, gws := newFakeFleet(200, "1.0.0")
	f.delay = 20 * time.Millisecond
	for i := 1; i < 200; i += 7 {
		f.behave[gws[i]] = "hang"
	}
	for _, i := range []int{10, 11, 12, 13, 14, 15} {
		f.behave[gws[i]] = "fail"
	}
	spec := Spec{ID: "r1", Package: pkg2, Targets: gws, MaxInFlight: 8, AbortMin: 10, AbortPercent: 30, Timeout: time.Hour}
	store := &memStore{}
	r, err := Start(t.Context(), spec, f, store, "", nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the rollout did not end: %v", r.Status().Counts)
	}
	st := r.Status()
	if st.State != Aborted {
		t.Fatalf("state %s", st.State)
	}
	var abortedAt, endedAt time.Time
	for _, s := range store.status {
		if s.State == Aborting && abortedAt.IsZero() {
			abortedAt = s.Update
		}
		if s.State == Aborted {
			endedAt = s.Update
		}
	}
	if d := endedAt.Sub(abortedAt); d > time.Second {
		t.Errorf("rolled back %v after the abort, with hung gateways", d)
	}
	// The threshold is crossed when the last of the counted failures
	// ends; nothing may start after it.
	var crossed time.Time
	f.mu.Lock()
	defer f.mu.Unlock()
	for gw, res := range st.Result {
		if res.State == RolledBack && f.behave[gw] == "fail" && f.ends[gw].After(crossed) {
			crossed = f.ends[gw]
		}
	}
	// Those launched before the engine saw the crossing may start their
	// work just after it: at most one per slot.
	late := 0
	for gw, s := range f.starts {
		if s.After(crossed) {
			late++
		}
		if s.After(crossed.Add(time.Second)) {
			t.Errorf("%s started %v after the threshold was crossed", gw, s.Sub(crossed))
		}
	}
	if late > spec.MaxInFlight {
		t.Errorf("%d installs started after the threshold was crossed", late)
	}
	if d := abortedAt.Sub(crossed); d > time.Second {
		t.Errorf("abort seen %v after the threshold was crossed", d)
	}
	if st.Counts[Pending] == 0 {
		t.Errorf("every gateway started: %v", st.Counts)
	}
	t.Logf("counts %v, abort seen %v after the crossing", st.Counts, abortedAt.Sub(crossed))
}

// The rate after the canary starts at BasePerMinute and grows by Factor.
func TestRolloutRate(t *testing.T) {
	f, gws := newFakeFleet(6, "1.0.0")
	spec := Spec{ID: "r1", Package: pkg2, Targets: gws, BasePerMinute: 150, Factor: 2, IncreaseEvery: 2, MaxPerMinute: 300}
	_, st := runRollout(t, spec, f, &memStore{}, nil)
	if st.Counts[Succeeded] != 6 {
		t.Fatalf("counts %v", st.Counts)
	}
	// Gaps: 400 ms at 150/min until 2 more succeeded (the canary and the
	// first), then 200 ms at the maximum 300/min. The rate is about when
	// the engine starts installs, which the fake sees after goroutines
	// and a store write that load may delay for one and not the next.
	var starts []time.Time
	for _, gw := range gws[1:] {
		starts = append(starts, st.Result[gw].StartedAt)
		if f, _ := f.started(gw); f.Before(st.Result[gw].StartedAt) {
			t.Errorf("%s installed at %v, before its start %v", gw, f, st.Result[gw].StartedAt)
		}
	}
	if gap := starts[1].Sub(starts[0]); gap < 350*time.Millisecond {
		t.Errorf("second install %v after the first, want 400 ms", gap)
	}
	if gap := starts[4].Sub(starts[3]); gap < 150*time.Millisecond || gap > 350*time.Millisecond {
		t.Errorf("last install %v after the former, want 200 ms", gap)
	}
}

func TestRolloutPauseResume(t *testing.T) {
	f, gws := newFakeFleet(10, "1.0.0")
	spec := Spec{ID: "r1", Package: pkg2, Targets: gws, BasePerMinute: 300, MaxPerMinute: 300}
	r, err := Start(t.Context(), spec, f, &memStore{}, "", nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	r.Pause()
	time.Sleep(100 * time.Millisecond)
	if st := r.Status(); st.State != Paused {
		t.Fatalf("state %s", st.State)
	}
	f.mu.Lock()
	n := len(f.starts)
	f.mu.Unlock()
	time.Sleep(600 * time.Millisecond)
	f.mu.Lock()
	if len(f.starts) != n {
		t.Errorf("%d installs started while paused", len(f.starts)-n)
	}
	f.mu.Unlock()
	r.Resume()
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("no end after resume")
	}
	if st := r.Status(); st.State != Completed || st.Counts[Succeeded] != 10 {
		t.Fatalf("state %s %v", st.State, st.Counts)
	}
}

func TestRolloutManualAbort(t *testing.T) {
	f, gws := newFakeFleet(10, "1.0.0")
	f.behave[gws[1]] = "slow"
	spec := Spec{ID: "r1", Package: pkg2, Targets: gws, MaxInFlight: 1}
	r, err := Start(t.Context(), spec, f, &memStore{}, "", nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok := f.started(gws[1]); ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	r.Abort("operator said so")
	<-r.Done()
	st := r.Status()
	if st.State != Aborted || st.Reason != "operator said so" || st.Counts[RolledBack] != 2 || st.Counts[Pending] != 8 {
		t.Fatalf("state %s %q %v", st.State, st.Reason, st.Counts)
	}
}

// A rollout taken over redoes no gateway whose install ended, and does
// not read again the version a gateway ran before an install under way.
func TestRolloutTakeoverSkipsEnded(t *testing.T) {
	f, gws := newFakeFleet(6, "1.0.0")
	prior := map[string]Result{
		gws[0]: {State: Succeeded, Prev: "1.0.0", PrevKnown: true},
		gws[1]: {State: Failed, Prev: "1.0.0", PrevKnown: true},
		gws[2]: {State: Installing, Prev: "0.9.0", PrevKnown: true},
	}
	spec := Spec{ID: "r1", Package: pkg2, Targets: gws}
	_, st := runRollout(t, spec, f, &memStore{}, prior)
	if st.State != Completed || st.Counts[Succeeded] != 5 || st.Counts[Failed] != 1 {
		t.Fatalf("state %s %v", st.State, st.Counts)
	}
	for _, gw := range gws[:2] {
		if _, ok := f.started(gw); ok {
			t.Errorf("%s installed again", gw)
		}
	}
	if f.currents[gws[2]] != 0 || st.Result[gws[2]].Prev != "0.9.0" {
		t.Errorf("the version before %s's install read again: %+v", gws[2], st.Result[gws[2]])
	}
}

// A controller taking a rollout over keeps its rate: its first start
// comes 1/rate after the former controller's last one, not at once.
func TestRolloutTakeoverKeepsRate(t *testing.T) {
	f, gws := newFakeFleet(3, "1.0.0")
	last := time.Now().UTC()
	prior := map[string]Result{
		gws[0]: {State: Succeeded, Prev: "1.0.0", PrevKnown: true, StartedAt: last.Add(-time.Second)},
		gws[1]: {State: Installing, Prev: "1.0.0", PrevKnown: true, StartedAt: last},
	}
	spec := Spec{ID: "r1", Package: pkg2, Targets: gws, BasePerMinute: 120, IncreaseEvery: 10}
	_, st := runRollout(t, spec, f, &memStore{}, prior)
	if st.Counts[Succeeded] != 3 {
		t.Fatalf("counts %v", st.Counts)
	}
	if gap := st.Result[gws[1]].StartedAt.Sub(last); gap < 500*time.Millisecond {
		t.Errorf("install restarted %v after the former controller's last start, want 500 ms", gap)
	}
	if gap := st.Result[gws[2]].StartedAt.Sub(st.Result[gws[1]].StartedAt); gap < 500*time.Millisecond {
		t.Errorf("next install %v after the former, want 500 ms", gap)
	}
}

// A controller taking a rollout over goes on at the rate its successes
// reached, not back at the base rate.
func TestRolloutTakeoverKeepsRaisedRate(t *testing.T) {
	f, gws := newFakeFleet(5, "1.0.0")
	prior := map[string]Result{
		gws[0]: {State: Succeeded, Prev: "1.0.0", PrevKnown: true},
		gws[1]: {State: Succeeded, Prev: "1.0.0", PrevKnown: true},
	}
	spec := Spec{ID: "r1", Package: pkg2, Targets: gws, BasePerMinute: 60, Factor: 2, IncreaseEvery: 2, MaxPerMinute: 120}
	_, st := runRollout(t, spec, f, &memStore{}, prior)
	if st.Counts[Succeeded] != 5 {
		t.Fatalf("counts %v", st.Counts)
	}
	if gap := st.Result[gws[3]].StartedAt.Sub(st.Result[gws[2]].StartedAt); gap < 450*time.Millisecond || gap > 800*time.Millisecond {
		t.Errorf("install %v after the former, want 500 ms (120/min after 2 successes)", gap)
	}
}

func TestRolloutBadSpec(t *testing.T) {
	f, gws := newFakeFleet(2, "")
	for _, spec := range []Spec{
		{Package: pkg2, Targets: gws},
		{ID: "r", Targets: gws},
		{ID: "r", Package: pkg2},
		{ID: "r", Package: pkg2, Targets: []string{gws[0], gws[0]}},
		{ID: "r", Package: pkg2, Targets: gws, AbortPercent: 101},
		{ID: "r", Package: pkg2, Targets: gws, BasePerMinute: -1},
	} {
		if _, err := Start(t.Context(), spec, f, &memStore{}, "", nil, nil); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%+v: %v", spec, err)
		}
	}
}

// A rollout taken over while it was rolling back rolls back what the
// former controller had not, including an install it left under way
// once that gateway's former version was read; a gateway never asked is
// left alone.
func TestRolloutTakeoverWhileAborting(t *testing.T) {
	f, gws := newFakeFleet(5, "1.0.0")
	for _, gw := range gws[:3] {
		f.version[gw] = "2.0.0"
	}
	prior := map[string]Result{
		gws[0]: {State: RolledBack, Prev: "1.0.0", PrevKnown: true},
		gws[1]: {State: Succeeded, Prev: "1.0.0", PrevKnown: true},
		gws[2]: {State: Installing, Prev: "1.0.0", PrevKnown: true},
		gws[3]: {State: Installing},
	}
	r, err := Start(t.Context(), Spec{ID: "r1", Package: pkg2, Targets: gws}, f, &memStore{}, Aborting, prior, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	<-r.Done()
	st := r.Status()
	if st.State != Aborted || st.Counts[RolledBack] != 3 || st.Counts[Pending] != 2 {
		t.Fatalf("state %s %v", st.State, st.Counts)
	}
	if _, ok := f.rollbacks[gws[0]]; ok {
		t.Error("a gateway rolled back twice")
	}
	for _, gw := range gws[1:3] {
		if f.version[gw] != "1.0.0" {
			t.Errorf("%s runs %s", gw, f.version[gw])
		}
	}
	if _, ok := f.rollbacks[gws[3]]; ok || len(f.starts) != 0 {
		t.Errorf("a gateway never asked was touched: rollbacks %v, installs %v", f.rollbacks, f.starts)
	}
	r.Pause() // ended: returns at once
}

// A gateway whose version read outlives its timeout ends timed out, and
// what the abandoned read would store later does not overwrite it.
func TestRolloutLateWorkStoresNothing(t *testing.T) {
	f, gws := newFakeFleet(3, "1.0.0")
	f.behave[gws[1]] = "slow-read"
	store := &memStore{}
	_, st := runRollout(t, Spec{ID: "r1", Package: pkg2, Targets: gws, Timeout: 100 * time.Millisecond}, f, store, nil)
	if st.Counts[TimedOut] != 1 || st.Counts[Succeeded] != 2 {
		t.Fatalf("counts %v", st.Counts)
	}
	store.mu.Lock()
	saves := store.saves[gws[1]]
	store.mu.Unlock()
	time.Sleep(400 * time.Millisecond)
	store.mu.Lock()
	defer store.mu.Unlock()
	if r := store.results[gws[1]]; r.State != TimedOut || r.PrevKnown || store.saves[gws[1]] != saves {
		t.Errorf("stored %+v, %d more times after the abandoned read ended", r, store.saves[gws[1]]-saves)
	}
}
