package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Package is a chute package a rollout installs: the chute's name and
// version, and the SHA-256 of the package file, which names it where the
// gateways download it.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// Installer acts on one gateway. Each call is bounded by its ctx: a call
// that outlives it is abandoned, never waited for.
type Installer interface {
	// Current is the version of the chute the gateway runs, "" if none.
	Current(ctx context.Context, gw, chute string) (string, error)
	// Install installs or updates the chute to pkg.
	Install(ctx context.Context, gw string, pkg Package) error
	// Rollback puts the chute back to version prev, or uninstalls it
	// when prev is "".
	Rollback(ctx context.Context, gw string, pkg Package, prev string) error
}

// Spec is what a rollout does, as Greengrass v2's deployment
// configuration: a canary, an exponential rate, a timeout per gateway and
// an abort criterion.
type Spec struct {
	ID      string   `json:"id"`
	Package Package  `json:"package"`
	Targets []string `json:"targets"` // gateway endpoint IDs, in order
	// Canary gateways are installed first, alone; one failure among them
	// aborts the rollout (default 1; -1 for none).
	Canary int `json:"canary"`
	// BasePerMinute is the rate of installs started after the canary
	// (0: unlimited); it grows by Factor (default 2) each time
	// IncreaseEvery more gateways succeeded (default BasePerMinute), up to
	// MaxPerMinute (0: no maximum).
	BasePerMinute float64 `json:"base_per_minute,omitempty"`
	Factor        float64 `json:"factor,omitempty"`
	IncreaseEvery int     `json:"increase_every,omitempty"`
	MaxPerMinute  float64 `json:"max_per_minute,omitempty"`
	// MaxInFlight bounds the installs under way (default 100).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// Timeout bounds each gateway's install and rollback (default 5 min).
	Timeout time.Duration `json:"timeout,omitempty"`
	// The rollout aborts once at least AbortMin gateways ended and at
	// least AbortPercent of them failed (AbortPercent 0: never).
	AbortMin     int     `json:"abort_min,omitempty"`
	AbortPercent float64 `json:"abort_percent,omitempty"`
}

// ErrBadSpec: a spec the engine refuses.
var ErrBadSpec = errors.New("fleet: bad rollout")

// withDefaults checks s and fills in its defaults.
func (s Spec) withDefaults() (Spec, error) {
	switch {
	case s.ID == "":
		return s, fmt.Errorf("%w: no ID", ErrBadSpec)
	case s.Package.Name == "" || s.Package.Version == "":
		return s, fmt.Errorf("%w: package without name or version", ErrBadSpec)
	case len(s.Targets) == 0:
		return s, fmt.Errorf("%w: no target gateway", ErrBadSpec)
	case s.BasePerMinute < 0 || s.MaxPerMinute < 0 || s.Factor < 0 || s.AbortPercent < 0 || s.AbortPercent > 100:
		return s, fmt.Errorf("%w: negative rate or percentage over 100", ErrBadSpec)
	}
	seen := map[string]bool{}
	for _, t := range s.Targets {
		if seen[t] || t == "" {
			return s, fmt.Errorf("%w: target %q empty or given twice", ErrBadSpec, t)
		}
		seen[t] = true
	}
	if s.Canary == 0 {
		s.Canary = 1
	}
	s.Canary = max(s.Canary, 0)
	if s.Factor == 0 {
		s.Factor = 2
	}
	if s.IncreaseEvery <= 0 {
		s.IncreaseEvery = max(int(s.BasePerMinute), 1)
	}
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = 100
	}
	if s.Timeout <= 0 {
		s.Timeout = 5 * time.Minute
	}
	return s, nil
}

// State is a rollout's state.
type State string

const (
	Running   State = "running"
	Paused    State = "paused"
	Aborting  State = "aborting" // stopped; rolling back
	Aborted   State = "aborted"
	Completed State = "completed" // every target ended; some may have failed under the threshold
)

// Done says whether a rollout in state s has ended.
func (s State) Done() bool { return s == Aborted || s == Completed }

// GatewayState is where one gateway of a rollout stands.
type GatewayState string

const (
	Pending        GatewayState = "pending"
	Installing     GatewayState = "installing"
	Succeeded      GatewayState = "succeeded"
	Failed         GatewayState = "failed"
	TimedOut       GatewayState = "timed-out"
	Cancelled      GatewayState = "cancelled" // stopped by an abort while installing
	RolledBack     GatewayState = "rolled-back"
	RollbackFailed GatewayState = "rollback-failed"
)

// ended says whether an install ended on the gateway: a takeover does not
// redo it.
func (g GatewayState) ended() bool { return g != Pending && g != Installing }

// failed says whether the install failed (for the abort criterion).
func (g GatewayState) failed() bool { return g == Failed || g == TimedOut }

// Result is one gateway's outcome in a rollout.
type Result struct {
	State GatewayState `json:"state"`
	// Prev is the version the gateway ran before ("" if none), read
	// before the install: what a rollback restores.
	Prev string `json:"prev"`
	// PrevKnown says Prev was read: a takeover does not read it again
	// from a gateway the install may already have changed.
	PrevKnown bool   `json:"prev_known"`
	Error     string `json:"error,omitempty"`
	// StartedAt is when the engine decided to start this gateway's
	// install (zero while pending): the rate a rollout promises is
	// about these times. With At it gives the install's duration; a
	// controller taking a rollout over spaces its first start from the
	// latest one.
	StartedAt time.Time `json:"started_at,omitzero"`
	At        time.Time `json:"at"`
}

// Status is a rollout's state and counts.
type Status struct {
	Spec   Spec                 `json:"spec"`
	State  State                `json:"state"`
	Reason string               `json:"reason,omitempty"` // why it aborted
	Owner  string               `json:"owner,omitempty"`  // the controller running it
	Counts map[GatewayState]int `json:"counts"`
	Update time.Time            `json:"update"`
	Result map[string]Result    `json:"-"`
}

// Store keeps a rollout's state as it changes, so that another
// controller can take it over.
type Store interface {
	SaveRollout(ctx context.Context, st Status) error
	SaveResult(ctx context.Context, id, gw string, r Result) error
}

// Run is a rollout under way.
type Run struct {
	spec  Spec
	inst  Installer
	store Store
	logf  func(string, ...any)
	ctl   chan control
	done  chan struct{}

	mu     sync.Mutex
	state  State
	reason string
	res    map[string]Result
}

type control struct {
	state  State // Paused, Running or Aborting
	reason string
}

// Start runs a rollout until it ends or ctx does (the controller stops:
// the stored state lets another take over). prior are the results a
// former controller stored: gateways whose install ended are not
// redone, and state is the rollout's stored state.
func Start(ctx context.Context, spec Spec, inst Installer, store Store, state State, prior map[string]Result, logf func(string, ...any)) (*Run, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if state == "" {
		state = Running
	}
	r := &Run{spec: spec, inst: inst, store: store, logf: logf, ctl: make(chan control, 8),
		done: make(chan struct{}), state: state, res: map[string]Result{}}
	for _, gw := range spec.Targets {
		res, ok := prior[gw]
		if !ok {
			res = Result{State: Pending}
		}
		r.res[gw] = res
	}
	go func() {
		defer close(r.done)
		r.run(ctx)
	}()
	return r, nil
}

// Pause stops starting installs; those under way end.
func (r *Run) Pause() { r.send(control{state: Paused}) }

// Resume starts installs again.
func (r *Run) Resume() { r.send(control{state: Running}) }

// Abort stops the rollout and rolls back the gateways it updated.
func (r *Run) Abort(reason string) { r.send(control{state: Aborting, reason: reason}) }

// send hands the loop a control, unless it ended.
func (r *Run) send(c control) {
	select {
	case r.ctl <- c:
	case <-r.done:
	}
}

// Done is closed when the rollout ended, or its ctx did.
func (r *Run) Done() <-chan struct{} { return r.done }

// Status is the rollout's state now.
func (r *Run) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statusLocked()
}

func (r *Run) statusLocked() Status {
	st := Status{Spec: r.spec, State: r.state, Reason: r.reason, Counts: map[GatewayState]int{},
		Update: time.Now().UTC(), Result: make(map[string]Result, len(r.res))}
	for gw, res := range r.res {
		st.Counts[res.State]++
		st.Result[gw] = res
	}
	return st
}

func (r *Run) setState(ctx context.Context, s State, reason string) {
	r.mu.Lock()
	r.state, r.reason = s, reason
	st := r.statusLocked()
	r.mu.Unlock()
	r.logf("fleet: rollout %s %s %s", r.spec.ID, s, reason)
	if err := r.store.SaveRollout(ctx, st); err != nil {
		r.logf("fleet: rollout %s: save: %v", r.spec.ID, err)
	}
}

func (r *Run) setResult(ctx context.Context, gw string, res Result) {
	res.At = time.Now().UTC()
	r.mu.Lock()
	r.res[gw] = res
	r.mu.Unlock()
	if err := r.store.SaveResult(ctx, r.spec.ID, gw, res); err != nil {
		r.logf("fleet: rollout %s: save %s: %v", r.spec.ID, gw, err)
	}
}

func (r *Run) result(gw string) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res[gw]
}

// finished is one gateway's install ending.
type finished struct {
	gw  string
	res Result
}

// run is the rollout's loop: the only goroutine that starts installs and
// changes the rollout's state, so that an abort decided here stops new
// installs at once.
func (r *Run) run(ctx context.Context) {
	state := r.Status().State
	if state.Done() {
		return
	}
	var queue, canary []string
	for i, gw := range r.spec.Targets {
		switch {
		case r.result(gw).State.ended():
		case i < r.spec.Canary:
			canary = append(canary, gw)
		default:
			queue = append(queue, gw)
		}
	}
	// A canary that failed before a takeover already aborted.
	canaryLeft := len(canary)
	queue = append(canary, queue...)

	ended := make(chan finished)
	inflight := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer wg.Wait()

	perMinute := r.spec.BasePerMinute
	var next time.Time
	succeeded, executed, failed := 0, 0, 0
	for _, res := range r.res {
		// A former controller's last start counts against the rate:
		// a takeover does not start at once after it.
		if perMinute > 0 && res.StartedAt.After(next) {
			next = res.StartedAt
		}
		if res.State.ended() {
			executed++
			if res.State.failed() {
				failed++
			}
			if res.State == Succeeded {
				succeeded++
			}
		}
	}
	// Each IncreaseEvery successes raise the rate, a former
	// controller's too.
	raise := func() {
		perMinute *= r.spec.Factor
		if r.spec.MaxPerMinute > 0 {
			perMinute = min(perMinute, r.spec.MaxPerMinute)
		}
	}
	if perMinute > 0 {
		for range succeeded / r.spec.IncreaseEvery {
			raise()
		}
	}
	if !next.IsZero() {
		next = next.Add(time.Duration(float64(time.Minute) / perMinute))
	}
	abort := func(reason string) {
		state = Aborting
		for _, cancel := range inflight {
			cancel()
		}
		r.setState(ctx, Aborting, reason)
	}
	// Saved at once: this controller owns the rollout now.
	r.setState(ctx, state, r.Status().Reason)
	for {
		// Start what may start now.
		var wait <-chan time.Time
		for state == Running && len(queue) > 0 && len(inflight) < r.spec.MaxInFlight {
			inCanary := canaryLeft > 0
			if inCanary && len(inflight) >= canaryLeft {
				break
			}
			now := time.Now()
			if !inCanary && perMinute > 0 {
				if now.Before(next) {
					wait = time.After(next.Sub(now))
					break
				} else {
					next = later(next, now).Add(time.Duration(float64(time.Minute) / perMinute))
				}
			}
			gw := queue[0]
			queue = queue[1:]
			ictx, cancel := context.WithTimeout(ctx, r.spec.Timeout)
			inflight[gw] = cancel
			prior := r.result(gw)
			wg.Go(func() {
				res := r.install(ictx, gw, prior, now)
				select {
				case ended <- finished{gw, res}:
				case <-ctx.Done():
				}
			})
		}
		if len(inflight) == 0 && (len(queue) == 0 || state == Aborting) {
			break
		}
		select {
		case <-ctx.Done():
			for _, cancel := range inflight {
				cancel()
			}
			return
		case f := <-ended:
			inflight[f.gw]()
			delete(inflight, f.gw)
			r.setResult(ctx, f.gw, f.res)
			executed++
			if f.res.State.failed() {
				failed++
			}
			if canaryLeft > 0 {
				canaryLeft--
				if f.res.State != Succeeded && state != Aborting {
					abort(fmt.Sprintf("canary %s %s: %s", f.gw, f.res.State, f.res.Error))
					continue
				}
			}
			if f.res.State == Succeeded {
				succeeded++
				if perMinute > 0 && succeeded%r.spec.IncreaseEvery == 0 {
					raise()
				}
			}
			if state != Aborting && r.spec.AbortPercent > 0 && executed >= r.spec.AbortMin &&
				float64(failed)*100 >= r.spec.AbortPercent*float64(executed) {
				abort(fmt.Sprintf("%d of %d gateways failed (threshold %g%% after %d)", failed, executed, r.spec.AbortPercent, r.spec.AbortMin))
			}
		case c := <-r.ctl:
			switch {
			case state == Aborting:
			case c.state == Aborting:
				abort(c.reason)
			case c.state != state:
				state = c.state
				r.setState(ctx, state, "")
			}
		case <-wait:
		}
	}
	if state == Aborting {
		r.rollback(ctx)
		if ctx.Err() == nil {
			r.setState(ctx, Aborted, r.Status().Reason)
		}
		return
	}
	r.setState(ctx, Completed, "")
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// install runs one gateway's install under ctx, which bounds it: an
// installer that ignores ctx is left behind, and what it would store
// after is dropped, so that it never overwrites the gateway's final
// result. The version it replaces is read and stored first, unless a
// former controller did. started is when the loop decided to start it.
func (r *Run) install(ctx context.Context, gw string, prior Result, started time.Time) Result {
	var mu sync.Mutex
	over := false // the outcome is decided: the work may store nothing more
	res := Result{State: Installing, Prev: prior.Prev, PrevKnown: prior.PrevKnown, StartedAt: started.UTC()}
	store := func(ctx context.Context, prev string, known bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if over {
			return false
		}
		res.Prev, res.PrevKnown = prev, known
		r.setResult(ctx, gw, res)
		return true
	}
	err := bounded(ctx, func(ctx context.Context) error {
		if prior.State != Installing && !store(ctx, prior.Prev, prior.PrevKnown) {
			return ctx.Err() // shown under way at once
		}
		if !prior.PrevKnown {
			cur, err := r.inst.Current(ctx, gw, r.spec.Package.Name)
			if err != nil {
				return fmt.Errorf("read version: %w", err)
			}
			if !store(ctx, cur, true) {
				return ctx.Err()
			}
		}
		return r.inst.Install(ctx, gw, r.spec.Package)
	})
	mu.Lock()
	over = true
	out := res
	mu.Unlock()
	switch {
	case err == nil:
		out.State = Succeeded
	case errors.Is(err, context.DeadlineExceeded):
		out.State, out.Error = TimedOut, err.Error()
	case errors.Is(err, context.Canceled):
		out.State, out.Error = Cancelled, err.Error()
	default:
		out.State, out.Error = Failed, err.Error()
	}
	return out
}

// bounded runs f, returning when it does or when ctx ends.
func bounded(ctx context.Context, f func(context.Context) error) error {
	errc := make(chan error, 1)
	go func() { errc <- f(ctx) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rollback puts back the previous version on every gateway the rollout
// may have changed: updated, failed, timed out or cancelled, or under
// way when a former controller stopped, once its former version was
// read (before, nothing was sent to it).
func (r *Run) rollback(ctx context.Context) {
	var g errgroup.Group
	g.SetLimit(r.spec.MaxInFlight)
	for _, gw := range r.spec.Targets {
		res := r.result(gw)
		switch res.State {
		case Succeeded, Failed, TimedOut, Cancelled, RollbackFailed:
		case Installing:
			if !res.PrevKnown {
				r.setResult(ctx, gw, Result{State: Pending})
				continue
			}
		default:
			continue
		}
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			rctx, cancel := context.WithTimeout(ctx, r.spec.Timeout)
			defer cancel()
			err := bounded(rctx, func(ctx context.Context) error { return r.inst.Rollback(ctx, gw, r.spec.Package, res.Prev) })
			if ctx.Err() != nil {
				return nil
			}
			// A gateway that failed keeps why once rolled back: the
			// operator sees which gateways caused the abort, and why.
			why := ""
			if res.State == Failed || res.State == TimedOut {
				why = res.Error
			}
			res.State, res.Error = RolledBack, why
			if err != nil {
				res.State, res.Error = RollbackFailed, err.Error()
			}
			r.setResult(ctx, gw, res)
			return nil
		})
	}
	g.Wait()
}
