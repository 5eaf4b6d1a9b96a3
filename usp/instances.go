package usp

import (
	"slices"

	"paradrop/usp/codec"
)

// getInstances answers a GetInstances (TR-369 "The GetInstances
// Message"): the instances of the tables at or below each path, with
// their unique keys.
func getInstances(req *codec.GetInstances, snap *snapshot, b *budget) (*codec.GetInstancesResp, error) {
	resp := &codec.GetInstancesResp{}
	for _, ps := range req.ObjPaths {
		res := &codec.GetInstancesResp_RequestedPathResult{RequestedPath: ps}
		insts, perr := resolveInstances(ps, req.FirstLevelOnly, snap)
		if perr != nil {
			res.ErrCode, res.ErrMsg = perr.code, perr.msg
		}
		if err := b.spend(ps, res.ErrMsg); err != nil {
			return nil, err
		}
		for _, in := range insts {
			if err := b.spendMap(in.InstantiatedObjPath, in.UniqueKeys); err != nil {
				return nil, err
			}
		}
		res.CurrInsts = insts
		resp.ReqPathResults = append(resp.ReqPathResults, res)
	}
	return resp, nil
}

func resolveInstances(ps string, firstLevel bool, snap *snapshot) ([]*codec.GetInstancesResp_CurrInstance, *pathError) {
	p, err := ParsePath(ps)
	if err != nil {
		return nil, &pathError{codePathSyntax, err.Error()}
	}
	if slices.Contains(p.Segs, "{i}") {
		return nil, &pathError{codePathSyntax, "{i} names the supported data model: GetInstances takes instance numbers or *"}
	}
	if !p.Object {
		return nil, &pathError{codeNotTable, ps + " is a parameter, not a table"}
	}
	sup := supportedPath(p.Segs)
	o := findObject(sup)
	if o == nil || !p.searchable() {
		return nil, invalidPath(ps)
	}
	table := o.multi() && len(sup) == len(o.path)-1
	if firstLevel && !table {
		return nil, &pathError{codeNotTable, ps + " is not a table"}
	}
	var out []*codec.GetInstancesResp_CurrInstance
	found := false
	for _, in := range snap.list {
		if !snap.matches(p, len(p.Segs), in.path) {
			continue
		}
		found = true
		if !in.obj.multi() || (firstLevel && len(in.path) != len(p.Segs)+1) {
			continue
		}
		keys := map[string]string{}
		for _, set := range in.obj.keys {
			for _, k := range set {
				keys[k] = in.values[k]
			}
		}
		out = append(out, &codec.GetInstancesResp_CurrInstance{InstantiatedObjPath: in.name(), UniqueKeys: keys})
	}
	if !found && !p.Search() && hasInstance(p.Segs) {
		return nil, invalidPath(ps)
	}
	return out, nil
}
