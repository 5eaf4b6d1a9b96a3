package usp

import (
	"maps"
	"slices"
	"strconv"

	"paradrop/chute"
	"paradrop/usp/codec"
)

// objectsChanged sends ObjectCreation and ObjectDeletion for the DU and EU
// of a chute installed or removed (change c, however asked for), to the
// controllers that may see the chute and subscribed to them. Instance
// numbers are the agent's: a removed chute's is the one it had.
func (a *Agent) objectsChanged(c chute.Change) {
	if c.State != chute.ChangeDone || (c.Action != "install" && c.Action != "remove") {
		return
	}
	var n uint32
	if c.Action == "install" {
		n = a.number(c.Chute)
	} else {
		a.mu.Lock()
		n = a.nums[c.Chute]
		a.mu.Unlock()
	}
	if n == 0 {
		return // never seen by the agent, or already forgotten
	}
	num := strconv.FormatUint(uint64(n), 10)
	paths := []string{"Device.SoftwareModules.DeploymentUnit." + num + ".", "Device.SoftwareModules.ExecutionUnit." + num + "."}
	for _, id := range slices.Sorted(maps.Keys(a.cfg.Controllers)) {
		ctl := a.cfg.Controllers[id]
		if !ctl.sees(c.Owner) {
			continue
		}
		var snap *snapshot
		for _, path := range paths {
			n := &codec.Notify{}
			if c.Action == "install" {
				s := a.subs.matching(id, "ObjectCreation", path)
				if s == nil {
					continue
				}
				if snap == nil {
					snap = a.snapshot(id, ctl)
				}
				n.SubscriptionId, n.SendResp = s.id, s.retry
				n.Notification = &codec.Notify_ObjCreation{ObjCreation: &codec.Notify_ObjectCreation{ObjPath: path, UniqueKeys: uniqueKeys(snap, path)}}
			} else {
				s := a.subs.matching(id, "ObjectDeletion", path)
				if s == nil {
					continue
				}
				n.SubscriptionId, n.SendResp = s.id, s.retry
				n.Notification = &codec.Notify_ObjDeletion{ObjDeletion: &codec.Notify_ObjectDeletion{ObjPath: path}}
			}
			a.queue(id, n)
		}
	}
}

// uniqueKeys are the unique keys of the instance at path in snap.
func uniqueKeys(snap *snapshot, path string) map[string]string {
	keys := map[string]string{}
	for _, in := range snap.list {
		if in.name() != path {
			continue
		}
		for _, set := range in.obj.keys {
			for _, k := range set {
				keys[k] = in.values[k]
			}
		}
	}
	return keys
}
