package usp

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paradrop/chute"
	"paradrop/store"
)

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Subscriptions made Persistent outlive the agent, with their instance
// numbers and settings; the others, and those of a controller the agent
// no longer has, do not; one deleted, or set to Persistent=false, is gone
// from the store too.
func TestSubscriptionsPersist(t *testing.T) {
	db := openStore(t)
	const other = "self::other"
	two := func(c *Config) {
		c.DB = db
		c.Controllers = map[string]Controller{ctrlID: {Topic: "usp/controllers/ctrl"}, other: {Topic: "usp/controllers/other"}}
	}
	a := testAgent(t, twoChutes(), two)
	for i, s := range []struct {
		from, id, persistent string
	}{{ctrlID, "kept", "true"}, {ctrlID, "dropped", "false"}, {other, "other", "true"}, {ctrlID, "unkept", "true"}, {ctrlID, "deleted", "true"}} {
		m := send(t, a, s.from, "add-"+s.id, addSub(false, "ID", s.id, "Enable", "true", "NotifType", "ValueChange",
			"ReferenceList", "Device.SoftwareModules.ExecutionUnit.*.Status", "Persistent", s.persistent, "NotifRetry", "true"))
		if m.GetBody().GetResponse().GetAddResp() == nil {
			t.Fatalf("add %d: %v", i, m)
		}
	}
	if m := send(t, a, ctrlID, "unkeep", setSub("Device.LocalAgent.Subscription.4.", "Persistent", "false")); m.GetBody().GetResponse().GetSetResp() == nil {
		t.Fatalf("set: %v", m)
	}
	if m := send(t, a, ctrlID, "delete", deleteSub("Device.LocalAgent.Subscription.5.")); m.GetBody().GetResponse().GetDeleteResp() == nil {
		t.Fatalf("delete: %v", m)
	}

	// The next run, with the operator's controller only.
	b := testAgent(t, twoChutes(), func(c *Config) { c.DB = db })
	got := map[string]string{}
	for _, r := range ask(t, b, ctrlID, getReq(0, "Device.LocalAgent.Subscription.")).Body.GetResponse().GetGetResp().GetReqPathResults() {
		for _, res := range r.ResolvedPathResults {
			for k, v := range res.ResultParams {
				got[res.ResolvedPath+k] = v
			}
		}
	}
	want := map[string]string{"Device.LocalAgent.Subscription.1.ID": "kept", "Device.LocalAgent.Subscription.1.Persistent": "true",
		"Device.LocalAgent.Subscription.1.NotifRetry": "true", "Device.LocalAgent.Subscription.1.Enable": "true",
		"Device.LocalAgent.Subscription.1.ReferenceList": "Device.SoftwareModules.ExecutionUnit.*.Status"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, n := range []string{"2", "4", "5"} {
		if _, ok := got["Device.LocalAgent.Subscription."+n+".ID"]; ok {
			t.Errorf("subscription %s outlived the agent: %v", n, got)
		}
	}
	saved, err := b.state.subscriptions()
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 1 {
		t.Errorf("%d subscriptions kept, want 1: %v", len(saved), saved)
	}
	// A new one does not take a kept one's number (R-ARC.8).
	m := send(t, b, ctrlID, "add-new", addSub(false, "Enable", "true", "NotifType", "Event", "ReferenceList", "Device.Boot!"))
	if p := m.GetBody().GetResponse().GetAddResp().GetCreatedObjResults()[0].GetOperStatus().GetOperSuccess().GetInstantiatedPath(); p != "Device.LocalAgent.Subscription.2." {
		t.Errorf("new subscription at %s", p)
	}
}

// ObjectCreation and ObjectDeletion of a chute's DU and EU go to the
// controllers subscribed to them, whoever installed or removed it, with
// the DU's unique keys.
func TestObjectCreationDeletion(t *testing.T) {
	chutes := twoChutes()
	a := testAgent(t, chutes, nil)
	send(t, a, ctrlID, "c", addSub(false, "ID", "new-du", "Enable", "true", "NotifType", "ObjectCreation", "ReferenceList", "Device.SoftwareModules.DeploymentUnit."))
	send(t, a, ctrlID, "d", addSub(false, "ID", "gone-eu", "Enable", "true", "NotifType", "ObjectDeletion", "ReferenceList", "Device.SoftwareModules.ExecutionUnit.*."))
	drain(a)
	a.snapshot(ctrlID, a.cfg.Controllers[ctrlID]) // numbers hello 1, web 2
	*chutes = append(*chutes, chute.Info{Name: "third", Version: "3.0", State: chute.Running, Desired: chute.Running})
	a.ChangeEnded(chute.Change{Chute: "third", Action: "install", State: chute.ChangeDone})
	*chutes = (*chutes)[:2]
	a.ChangeEnded(chute.Change{Chute: "web", Action: "remove", State: chute.ChangeDone})
	a.ChangeEnded(chute.Change{Chute: "hello", Action: "remove", State: chute.ChangeError})
	var got []string
	for _, o := range drain(a) {
		n := o.msg.GetBody().GetRequest().GetNotify()
		switch {
		case n.GetObjCreation() != nil:
			got = append(got, n.SubscriptionId+" "+n.GetObjCreation().ObjPath+" "+n.GetObjCreation().UniqueKeys["DUID"])
		case n.GetObjDeletion() != nil:
			got = append(got, n.SubscriptionId+" "+n.GetObjDeletion().ObjPath)
		}
	}
	want := []string{"new-du Device.SoftwareModules.DeploymentUnit.3. third", "gone-eu Device.SoftwareModules.ExecutionUnit.2."}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("notifications %q, want %q", got, want)
	}
}

// recoverChutes answers the changes a previous run queued.
type recoverChutes struct {
	*fakeChutes
	changes []chute.Change
}

func (r recoverChutes) WaitChange(_ context.Context, id uint64) (chute.Change, error) {
	for _, c := range r.changes {
		if c.ID == id {
			return c, nil
		}
	}
	return chute.Change{}, chute.ErrNoChange
}

func (r recoverChutes) Changes() []chute.Change { return r.changes }

// The commands a previous run left are each told once, truthfully: the
// outcome of the change they queued (an install the chute manager
// completed after the restart succeeds), a failure when they had queued
// none, the outcome already decided when it had not been sent; a
// DUStateChange! only where the chute manager settled the change before
// the agent heard of it. Each record goes once its notification is sent;
// that of a controller no longer configured goes unsaid.
func TestRecoverInterrupted(t *testing.T) {
	db := openStore(t)
	started := time.Now().Add(-time.Minute).UTC()
	before, after := started.Add(time.Second), time.Now().Add(time.Hour)
	chutes := twoChutes()
	*chutes = append(*chutes, chute.Info{Name: "resumed", Version: "1.0", State: chute.Running})
	fake := recoverChutes{fakeChutes: chutes, changes: []chute.Change{
		{ID: 7, Chute: "resumed", Action: "install", Actor: "operator", State: chute.ChangeDone, Created: before, Ended: &after},
		{ID: 8, Chute: "web", Action: "update", Actor: "operator", State: chute.ChangeError, Error: "interrupted by a daemon restart", Created: before, Ended: &before},
		{ID: 9, Chute: "matched", Action: "install", Actor: "operator", State: chute.ChangeError, Error: "interrupted by a daemon restart before it committed: nothing installed", Created: before, Ended: &before},
	}}
	st := newState(db)
	for i, r := range []savedRequest{
		{From: ctrlID, Obj: "Device.SoftwareModules.", Command: "InstallDU()", Key: "resumed", Started: started, Change: 7, Chute: "resumed"},
		{From: ctrlID, Obj: "Device.SoftwareModules.DeploymentUnit.2.", Command: "Update()", Key: "update", Started: started, Change: 8, Chute: "web"},
		{From: ctrlID, Obj: "Device.SoftwareModules.", Command: "InstallDU()", Key: "matched", Started: started},
		{From: ctrlID, Obj: "Device.SoftwareModules.", Command: "InstallDU()", Key: "download", Started: started.Add(30 * time.Second)},
		{From: ctrlID, Obj: "Device.SoftwareModules.DeploymentUnit.1.", Command: "Uninstall()", Key: "done", Started: started,
			Done: &savedOutcome{Code: 7022, Msg: "it failed"}},
		{From: "self::gone", Obj: "Device.SoftwareModules.", Command: "InstallDU()", Key: "gone", Started: started},
	} {
		if err := st.put(fmt.Sprintf("%s%020d", requestPrefix, i+1), r); err != nil {
			t.Fatal(err)
		}
	}
	a := testAgent(t, nil, func(c *Config) { c.DB, c.Chutes = db, fake })
	a.recover(context.Background())
	oc := map[string]string{}
	var events []string
	for _, o := range drain(a) {
		n := o.msg.GetBody().GetRequest().GetNotify()
		if c := n.GetOperComplete(); c != nil {
			if f := c.GetCmdFailure(); f != nil {
				oc[c.CommandKey] = fmt.Sprintf("%d %s", f.ErrCode, f.ErrMsg)
			} else {
				oc[c.CommandKey] = fmt.Sprint(c.GetReqOutputArgs().GetOutputArgs())
			}
		}
		if ev := n.GetEvent(); ev != nil {
			events = append(events, ev.Params["OperationPerformed"]+" "+ev.Params["CurrentState"]+" "+ev.Params["Fault.FaultString"])
		}
		if o.sent != nil {
			o.sent()
		}
	}
	want := map[string]string{
		"resumed":  "map[DeploymentUnitRef:Device.SoftwareModules.DeploymentUnit.3]",
		"update":   "7022 interrupted by a daemon restart",
		"matched":  "7022 interrupted by a daemon restart before it committed: nothing installed",
		"download": "7022 " + errInterrupted.Error(),
		"done":     "7022 it failed",
	}
	for k, v := range want {
		if oc[k] != v {
			t.Errorf("OperationComplete %s: %q, want %q", k, oc[k], v)
		}
	}
	if len(oc) != len(want) {
		t.Errorf("OperationComplete of %v", oc)
	}
	wantEvents := []string{"Update Installed interrupted by a daemon restart",
		"Install Failed interrupted by a daemon restart before it committed: nothing installed",
		"Install Failed " + errInterrupted.Error()}
	if strings.Join(events, "|") != strings.Join(wantEvents, "|") {
		t.Errorf("DUStateChange! %q, want %q", events, wantEvents)
	}
	if _, left, _ := newState(db).load(); len(left) != 0 {
		t.Errorf("records left after their notifications were sent: %v", left)
	}
}

// A chute's DU and EU instance number is the same after a restart of the
// agent, and a number is never given again, across restarts too
// (R-ARC.8): a controller that names DeploymentUnit.2 after the gateway
// restarted still means the same chute.
func TestInstanceNumbersPersist(t *testing.T) {
	db := openStore(t)
	chutes := twoChutes() // hello, web
	a := testAgent(t, chutes, func(c *Config) { c.DB = db })
	if got := a.numbers(chutes.List()); got["hello"] != 1 || got["web"] != 2 {
		t.Fatalf("numbers %v", got)
	}
	*chutes = (*chutes)[1:] // hello removed
	a.numbers(chutes.List())
	b := testAgent(t, chutes, func(c *Config) { c.DB = db })
	*chutes = append(*chutes, chute.Info{Name: "new"})
	if got := b.numbers(chutes.List()); got["web"] != 2 || got["new"] != 3 {
		t.Errorf("after a restart: numbers %v, want web 2 and new 3", got)
	}
}
