// Package apitest provides Fake, an in-memory api.Chutes for tests of the
// HTTP layer and of the CLI. It runs nothing; it only keeps the records a
// manager would, so that handlers and clients can be checked against it.
//
// A fake package is any body whose first line is "NAME VERSION".
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"paradrop/chute"
	"paradrop/usage"
)

// Fake is an in-memory chute manager. The zero value is not usable; call
// New. It is safe for concurrent use.
type Fake struct {
	// Err, when set, is returned by every call that names a chute or takes
	// a package, to check how errors reach the client.
	Err error
	// Hold leaves new changes running until Finish; otherwise they end at
	// once, successfully.
	Hold bool
	// AfterOwnerOf, when set, runs after each OwnerOf has answered: a test
	// changes the chutes there, between the API's check and its call.
	AfterOwnerOf func(name string)

	mu      sync.Mutex
	chutes  map[string]chute.Info
	tokens  map[string]string      // chute tokens: token -> chute
	kept    map[string]chute.Owner // kept data, by chute name
	changes []*change              // change i has id i+1
	logs    map[string][]string
	logged  chan struct{} // closed and replaced when a log line arrives
	lastSig []byte        // the signature that came with the last upload

	usage    usage.Series
	held     map[chute.Owner]chute.Quota      // set by SetHeld
	requests map[string]chute.ResourceRequest // the last policy request per chute
	pending  map[string]chute.PolicyRequest   // waiting for their chute's ack
	acks     map[string]int                   // acks taken, per chute
	// handovers are the chutes told they move, until they ack.
	handovers map[string]bool
	hosts     []chute.Host // set by SetHosts
}

type change struct {
	c    chute.Change
	done chan struct{}
}

// New returns an empty fake.
func New() *Fake {
	return &Fake{
		chutes: map[string]chute.Info{}, logs: map[string][]string{}, logged: make(chan struct{}),
		requests: map[string]chute.ResourceRequest{}, tokens: map[string]string{}, kept: map[string]chute.Owner{},
		pending: map[string]chute.PolicyRequest{}, acks: map[string]int{},
	}
}

// SetToken makes token the identity of chute name; "" revokes name's.
func (f *Fake) SetToken(name, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for t, n := range f.tokens {
		if n == name {
			delete(f.tokens, t)
		}
	}
	if token != "" {
		f.tokens[token] = name
	}
}

// KeepData records data kept by a removed chute name of owner.
func (f *Fake) KeepData(name string, owner chute.Owner) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kept[name] = owner
}

// DropKept implements api.Chutes.
func (f *Fake) DropKept(owner chute.Owner) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, o := range f.kept {
		if o == owner && owner != "" {
			out = append(out, n)
			delete(f.kept, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// SetHosts makes hs the LAN hosts the gateway sees.
func (f *Fake) SetHosts(hs []chute.Host) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts = hs
}

// Hosts implements api.Chutes.
func (f *Fake) Hosts() []chute.Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.hosts)
}

// ChuteOfToken implements api.Chutes.
func (f *Fake) ChuteOfToken(token string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.tokens[token]
	return n, ok
}

// SetHeld makes q what owner's chutes hold; until then they hold nothing
// but their count (the fake runs nothing and admits everything).
func (f *Fake) SetHeld(owner chute.Owner, q chute.Quota) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		f.held = map[chute.Owner]chute.Quota{}
	}
	f.held[owner] = q
}

// HeldBy implements api.Chutes.
func (f *Fake) HeldBy(owner chute.Owner) chute.Quota {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q, ok := f.held[owner]; ok {
		return q
	}
	var q chute.Quota
	for _, c := range f.chutes {
		if c.Owner == owner {
			q.Chutes++
		}
	}
	return q
}

// Add puts a chute in place as if installed earlier.
func (f *Fake) Add(info chute.Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.chutes[info.Name] = info
}

// AppendLog adds a line to a chute's log and wakes followers.
func (f *Fake) AppendLog(name, line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[name] = append(f.logs[name], line)
	close(f.logged)
	f.logged = make(chan struct{})
}

// Step adds a progress step to a held change.
func (f *Fake) Step(id uint64, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.changes[id-1]
	ch.c.State = chute.ChangeRun
	ch.c.Steps = append(ch.c.Steps, chute.Step{Time: time.Now(), Message: msg})
}

// Finish ends a held change: done if errMsg is empty, else failed.
func (f *Fake) Finish(id uint64, errMsg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finish(f.changes[id-1], errMsg)
}

func (f *Fake) finish(ch *change, errMsg string) {
	now := time.Now()
	ch.c.Ended = &now
	ch.c.Error = errMsg
	ch.c.State = chute.ChangeDone
	if errMsg != "" {
		ch.c.State = chute.ChangeError
	}
	f.apply(ch.c)
	close(ch.done)
}

// apply makes a change's effect on the chute records.
func (f *Fake) apply(c chute.Change) {
	info := f.chutes[c.Chute]
	if c.State == chute.ChangeError {
		if c.Action == "install" {
			delete(f.chutes, c.Chute)
			return
		}
		info.State, info.Error = chute.Failed, c.Error
		f.chutes[c.Chute] = info
		return
	}
	now := time.Now()
	switch c.Action {
	case "remove", "migrate":
		delete(f.chutes, c.Chute)
		return
	case "stop":
		info.State, info.Desired, info.Pid, info.StartedAt = chute.Stopped, chute.Stopped, 0, nil
	case "restart":
		info.Restarts++
		fallthrough
	default: // install, update, start
		info.State, info.Desired, info.Pid, info.StartedAt = chute.Running, chute.Running, 4242, &now
	}
	f.chutes[c.Chute] = info
}

// queue records a new change on name, refusing if one is still going.
func (f *Fake) queue(name string, actor chute.Actor, action string) (chute.Change, error) {
	for _, ch := range f.changes {
		if ch.c.Chute == name && !ch.c.Done() {
			return chute.Change{}, fmt.Errorf("%s: change %d in progress: %w", name, ch.c.ID, chute.ErrConflict)
		}
	}
	ch := &change{
		c: chute.Change{
			ID: uint64(len(f.changes) + 1), Chute: name, Owner: f.chutes[name].Owner, Actor: actor, Action: action, State: chute.Queued,
			Steps: []chute.Step{}, Created: time.Now(),
		},
		done: make(chan struct{}),
	}
	f.changes = append(f.changes, ch)
	if !f.Hold {
		ch.c.Steps = append(ch.c.Steps, chute.Step{Time: time.Now(), Message: action + " " + name})
		f.finish(ch, "")
	}
	return ch.c, nil
}

// readPackage reads a fake package's "NAME VERSION" line.
// readSealed reads the package, then what follows it in the upload, and
// records the signature that came (not verified: that is the manager's).
func (f *Fake) readSealed(pkg io.Reader, seal chute.Seal) (name, version string, err error) {
	name, version, err = readPackage(pkg)
	if err != nil {
		return "", "", err
	}
	sig := seal.Signature
	if seal.Trailer != nil {
		if sig, err = seal.Trailer(); err != nil {
			return "", "", err
		}
	}
	f.mu.Lock()
	f.lastSig = sig
	f.mu.Unlock()
	return name, version, nil
}

// LastSignature is the signature that came with the last package read.
func (f *Fake) LastSignature() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastSig
}

func readPackage(pkg io.Reader) (name, version string, err error) {
	body, err := io.ReadAll(pkg)
	if err != nil {
		return "", "", fmt.Errorf("read package: %w", err)
	}
	line, _, _ := bytes.Cut(body, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) != 2 {
		return "", "", fmt.Errorf("package: first line must be \"NAME VERSION\": %w", chute.ErrInvalid)
	}
	return fields[0], fields[1], nil
}

// List implements api.Chutes.
func (f *Fake) List() []chute.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []chute.Info
	for _, c := range f.chutes {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b chute.Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Get implements api.Chutes.
func (f *Fake) Get(name string) (chute.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return chute.Info{}, f.Err
	}
	c, ok := f.chutes[name]
	if !ok {
		return chute.Info{}, fmt.Errorf("%s: %w", name, chute.ErrNotFound)
	}
	return c, nil
}

// OwnerOf implements api.Chutes.
func (f *Fake) OwnerOf(name string) (chute.Owner, error) {
	f.mu.Lock()
	c, ok := f.chutes[name]
	after := f.AfterOwnerOf
	f.mu.Unlock()
	if after != nil {
		after(name)
	}
	if !ok {
		return "", fmt.Errorf("%s: %w", name, chute.ErrNotFound)
	}
	return c.Owner, nil
}

// Drop removes a chute at once, as a removal that has ended.
func (f *Fake) Drop(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.chutes, name)
}

// acting is the chute name if actor may act on it, as the manager's rule
// has it (chute.Actor.MayAct); callers hold f.mu.
func (f *Fake) acting(name string, actor chute.Actor) (chute.Info, error) {
	c, ok := f.chutes[name]
	if !ok || !actor.MayAct(name, c.Owner) {
		return chute.Info{}, fmt.Errorf("chute %q: %w", name, chute.ErrNotFound)
	}
	return c, nil
}

// Install implements api.Chutes.
func (f *Fake) Install(ctx context.Context, pkg io.Reader, o chute.Origin) (chute.Change, error) {
	name, version, err := f.readSealed(pkg, o.Seal)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.Err != nil:
		return chute.Change{}, f.Err
	case err != nil:
		return chute.Change{}, err
	}
	if _, ok := f.chutes[name]; ok {
		return chute.Change{}, fmt.Errorf("%s: %w", name, chute.ErrExists)
	}
	f.chutes[name] = chute.Info{Name: name, Owner: o.Owner, Version: version, State: chute.Installing, Desired: chute.Running}
	return f.queue(name, o.Actor, "install")
}

// Update implements api.Chutes.
func (f *Fake) Update(ctx context.Context, name string, pkg io.Reader, force bool, o chute.Origin) (chute.Change, error) {
	pkgName, version, err := f.readSealed(pkg, o.Seal)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.Err != nil:
		return chute.Change{}, f.Err
	case err != nil:
		return chute.Change{}, err
	case pkgName != name:
		return chute.Change{}, fmt.Errorf("package is for %s, not %s: %w", pkgName, name, chute.ErrInvalid)
	}
	info, err := f.acting(name, o.Actor)
	if err != nil {
		return chute.Change{}, err
	}
	if info.Version == version && !force {
		return chute.Change{}, fmt.Errorf("%s is already at version %s (force to reinstall): %w", name, version, chute.ErrConflict)
	}
	info.Version = version
	f.chutes[name] = info
	return f.queue(name, o.Actor, "update")
}

// Remove implements api.Chutes.
func (f *Fake) Remove(name string, keepData bool, actor chute.Actor) (chute.Change, error) {
	return f.simple(name, actor, "remove")
}

// Start implements api.Chutes.
func (f *Fake) Start(name string, actor chute.Actor) (chute.Change, error) {
	return f.simple(name, actor, "start")
}

// Stop implements api.Chutes.
func (f *Fake) Stop(name string, actor chute.Actor) (chute.Change, error) {
	return f.simple(name, actor, "stop")
}

// Restart implements api.Chutes.
func (f *Fake) Restart(name string, actor chute.Actor) (chute.Change, error) {
	return f.simple(name, actor, "restart")
}

func (f *Fake) simple(name string, actor chute.Actor, action string) (chute.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return chute.Change{}, f.Err
	}
	if _, err := f.acting(name, actor); err != nil {
		return chute.Change{}, err
	}
	return f.queue(name, actor, action)
}

// Changes implements api.Chutes.
func (f *Fake) Changes() []chute.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []chute.Change
	for _, ch := range f.changes {
		out = append(out, copyChange(ch.c))
	}
	return out
}

// Change implements api.Chutes.
func (f *Fake) Change(id uint64) (chute.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == 0 || id > uint64(len(f.changes)) {
		return chute.Change{}, fmt.Errorf("change %d: %w", id, chute.ErrNoChange)
	}
	return copyChange(f.changes[id-1].c), nil
}

// WaitChange implements api.Chutes.
func (f *Fake) WaitChange(ctx context.Context, id uint64) (chute.Change, error) {
	f.mu.Lock()
	if id == 0 || id > uint64(len(f.changes)) {
		f.mu.Unlock()
		return chute.Change{}, fmt.Errorf("change %d: %w", id, chute.ErrNoChange)
	}
	done := f.changes[id-1].done
	f.mu.Unlock()
	select {
	case <-done:
		return f.Change(id)
	case <-ctx.Done():
		return chute.Change{}, ctx.Err()
	}
}

// copyChange keeps callers from sharing the Steps array with later Steps.
func copyChange(c chute.Change) chute.Change {
	c.Steps = slices.Clone(c.Steps)
	return c
}

// Logs implements api.Chutes.
func (f *Fake) Logs(ctx context.Context, name string, actor chute.Actor, tail int, follow bool, w io.Writer) error {
	f.mu.Lock()
	if _, err := f.acting(name, actor); err != nil {
		f.mu.Unlock()
		return err
	}
	lines := f.logs[name]
	sent := len(lines)
	lines = lines[max(0, len(lines)-tail):]
	wake := f.logged
	f.mu.Unlock()
	for {
		for _, l := range lines {
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return err
			}
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
		f.mu.Lock()
		lines = f.logs[name][sent:]
		sent += len(lines)
		wake = f.logged
		f.mu.Unlock()
	}
}

// Migrate queues a migration that removes the chute; nothing is sent.
func (f *Fake) Migrate(name string, actor chute.Actor, from string, to chute.Destination) (chute.Change, error) {
	return f.simple(name, actor, "migrate")
}

// HoldsPackage holds none.
func (f *Fake) HoldsPackage(chute.Owner, string) bool { return false }

// ConfirmImport confirms nothing: a fake import is kept at once.
func (f *Fake) ConfirmImport(name, id string) error { return nil }

// Import reads the stream as a fake package and installs it, as Install.
func (f *Fake) Import(ctx context.Context, stream io.Reader, o chute.Origin, admitted func()) (chute.Change, error) {
	c, err := f.Install(ctx, stream, o)
	if err == nil {
		admitted()
	}
	return c, err
}
