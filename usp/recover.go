package usp

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"paradrop/chute"
)

// errInterrupted is an async command a restart of the gateway cut short
// before it queued any change: nothing was done.
var errInterrupted = errors.New("interrupted by a restart of the gateway before any change was made")

// recover tells the controllers how the async commands a previous run
// left ended. TR-369 ("Asynchronous Operations") lets an agent drop a
// command a reboot interrupts and consider it failed; the agent does
// better where it can, since the chute manager finishes or undoes what
// it had begun (an install that committed is completed, one that had not
// leaves nothing): the OperationComplete tells that outcome, and
// DUStateChange! the DU's state when the chute manager settled the
// change before the agent was there to tell (ChangeEnded). A command that
// had queued nothing failed, with DUStateChange! saying the DU is as it
// was.
func (a *Agent) recover(ctx context.Context) {
	for _, key := range slices.Sorted(maps.Keys(a.leftover)) {
		r := a.leftover[key]
		l := &launch{key: key, saved: r}
		if _, trusted := a.cfg.Controllers[r.From]; !trusted {
			a.state.drop(key) // a controller no longer configured: nobody to tell
			continue
		}
		if r.Done != nil {
			a.operationComplete(l, *r.Done) // ended, but not told
			continue
		}
		if r.Change == 0 && r.Command == "InstallDU()" {
			r.Change = a.queuedInstall(r)
			a.leftover[key] = r
		}
		var out map[string]string
		var err error
		var ch chute.Change
		if r.Change == 0 {
			err = errInterrupted
		} else if ch, err = a.cfg.Chutes.WaitChange(ctx, r.Change); ctx.Err() != nil {
			return // stopping again: the next run tells
		} else if err == nil && ch.State == chute.ChangeError {
			err = errors.New(ch.Error)
		}
		if r.Chute == "" {
			r.Chute = ch.Chute
		}
		if err == nil {
			out = map[string]string{}
			if r.Command == "InstallDU()" {
				out["DeploymentUnitRef"] = "Device.SoftwareModules.DeploymentUnit." + a.numberString(ch.Chute)
			}
		}
		a.cfg.Logf("usp: %s%s from %s, interrupted by a restart: %v", r.Obj, r.Command, r.From, errOr(err))
		if (r.Change == 0 || (ch.Ended != nil && ch.Ended.Before(a.since))) && duOperation(r.Command) != "" {
			owner := chute.Owner(a.cfg.Controllers[r.From].Developer)
			if info, ok := a.chute(r.Chute); ok {
				owner = info.Owner
			}
			end := time.Now()
			if ch.Ended != nil {
				end = *ch.Ended
			}
			a.duStateChange(r.Chute, owner, duOperation(r.Command), r.Started, end, err)
		}
		a.finish(l, out, err)
	}
}

func errOr(err error) any {
	if err == nil {
		return "done"
	}
	return err
}

// duOperation is DUStateChange!'s OperationPerformed for a command ("" if
// none).
func duOperation(command string) string {
	switch command {
	case "InstallDU()":
		return "Install"
	case "Update()":
		return "Update"
	case "Uninstall()":
		return "Uninstall"
	}
	return ""
}

// chute is the chute named name, if there is one.
func (a *Agent) chute(name string) (chute.Info, bool) {
	if name == "" {
		return chute.Info{}, false
	}
	for _, c := range a.cfg.Chutes.List() {
		if c.Name == name {
			return c, true
		}
	}
	return chute.Info{}, false
}

// queuedInstall is the install an interrupted InstallDU queued before its
// record could say so (the chute manager's change is written first): the
// first install its controller asked for since, that no other command
// left claims; 0 if none. It needs the chute manager's change history.
func (a *Agent) queuedInstall(r savedRequest) uint64 {
	h, ok := a.cfg.Chutes.(interface{ Changes() []chute.Change })
	if !ok {
		return 0
	}
	claimed := map[uint64]bool{}
	for _, o := range a.leftover {
		claimed[o.Change] = true
	}
	actor := a.cfg.Controllers[r.From].actor()
	for _, c := range h.Changes() {
		if c.Action == "install" && c.Actor == actor && !c.Created.Before(r.Started) && !claimed[c.ID] {
			return c.ID
		}
	}
	return 0
}
