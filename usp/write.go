package usp

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"paradrop/usp/codec"
)

// Add, Set and Delete (TR-369 "Add", "Set", "Delete"): the one table a
// controller writes is its own Device.LocalAgent.Subscription. The chutes
// change through Operate only. Without allow_partial, a failure fails the
// whole message and changes nothing: each object is checked before any is
// changed.

const subscriptionTable = "Device.LocalAgent.Subscription."

// objFailure is a failure of one object of an Add, Set or Delete.
type objFailure struct {
	code   uint32
	msg    string
	params []paramError
}

func (f *objFailure) body() *codec.Body {
	msg := f.msg
	for _, p := range f.params {
		msg += fmt.Sprintf("; %s: %s", p.param, p.msg)
	}
	return errorMsg(f.code, msg)
}

// settings are an object's parameter settings as a map, or the failure of
// one given twice.
func settings[S interface {
	GetParam() string
	GetValue() string
}](list []S) (map[string]string, *objFailure) {
	out := make(map[string]string, len(list))
	for _, s := range list {
		if _, dup := out[s.GetParam()]; dup {
			return nil, &objFailure{code: codeInvalidValue, msg: fmt.Sprintf("%.60q set twice", s.GetParam())}
		}
		out[s.GetParam()] = s.GetValue()
	}
	return out, nil
}

func (a *Agent) add(from string, req *codec.Add) *codec.Body {
	resp := &codec.AddResp{}
	for _, obj := range req.CreateObjs {
		res := &codec.AddResp_CreatedObjectResult{RequestedPath: obj.ObjPath}
		inst, keys, f := a.addOne(from, obj)
		if f != nil && !req.AllowPartial {
			for _, r := range resp.CreatedObjResults { // undo: all or none
				if ok := r.GetOperStatus().GetOperSuccess(); ok != nil {
					a.subs.remove(from, instanceOf(ok.InstantiatedPath))
				}
			}
			return f.body()
		}
		if f != nil {
			res.OperStatus = &codec.AddResp_CreatedObjectResult_OperationStatus{OperStatus: &codec.AddResp_CreatedObjectResult_OperationStatus_OperFailure{
				OperFailure: &codec.AddResp_CreatedObjectResult_OperationStatus_OperationFailure{ErrCode: f.code, ErrMsg: f.msg}}}
		} else {
			res.OperStatus = &codec.AddResp_CreatedObjectResult_OperationStatus{OperStatus: &codec.AddResp_CreatedObjectResult_OperationStatus_OperSuccess{
				OperSuccess: &codec.AddResp_CreatedObjectResult_OperationStatus_OperationSuccess{InstantiatedPath: inst, UniqueKeys: keys}}}
		}
		resp.CreatedObjResults = append(resp.CreatedObjResults, res)
	}
	return &codec.Body{MsgBody: &codec.Body_Response{Response: &codec.Response{RespType: &codec.Response_AddResp{AddResp: resp}}}}
}

func (a *Agent) addOne(from string, obj *codec.Add_CreateObject) (string, map[string]string, *objFailure) {
	if obj.ObjPath != subscriptionTable {
		return "", nil, &objFailure{code: codeNotCreatable, msg: fmt.Sprintf("%.200s: a controller adds to %s only", obj.ObjPath, subscriptionTable)}
	}
	set, f := settings(obj.ParamSettings)
	if f != nil {
		return "", nil, f
	}
	s, perrs, err := a.subs.add(from, set)
	switch {
	case err != nil:
		return "", nil, &objFailure{code: codeResources, msg: err.Error()}
	case len(perrs) > 0:
		return "", nil, &objFailure{code: perrs[0].code, msg: "subscription not added", params: perrs}
	}
	n := strconv.FormatUint(uint64(s.num), 10)
	return subscriptionTable + n + ".", map[string]string{"Recipient": a.recipient(from), "ID": s.id}, nil
}

// instanceOf is the instance number of a subscription's path.
func instanceOf(path string) uint32 {
	n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(path, subscriptionTable), "."), 10, 32)
	return uint32(n)
}

// subscriptionsAt resolves a path of Set or Delete to the subscriptions of
// from it names.
func (a *Agent) subscriptionsAt(from string, ctl Controller, path string, refused uint32) ([]uint32, *objFailure) {
	p, err := ParsePath(path)
	if err != nil {
		return nil, &objFailure{code: codePathSyntax, msg: err.Error()}
	}
	if !p.Object || !slices.Equal(supportedPath(p.Segs), subscriptionObj.path) || !p.searchable() {
		return nil, &objFailure{code: refused, msg: fmt.Sprintf("%.200s: a controller writes its %s{i}. only", path, subscriptionTable)}
	}
	snap := a.snapshot(from, ctl)
	var out []uint32
	for _, in := range snap.list {
		if in.obj == subscriptionObj && snap.matches(p, len(p.Segs), in.path) {
			out = append(out, instanceOf(in.name()))
		}
	}
	if len(out) == 0 && !p.Search() && !hasWildcard(p.Segs) {
		return nil, &objFailure{code: codeInvalidPath, msg: fmt.Sprintf("%.200s: no such object", path)}
	}
	return out, nil
}

func (a *Agent) set(from string, ctl Controller, req *codec.Set) *codec.Body {
	// Checked first, so that nothing changes when one fails.
	type target struct {
		nums []uint32
		set  map[string]string
	}
	targets := make([]target, len(req.UpdateObjs))
	resp := &codec.SetResp{}
	failed := map[int]*objFailure{}
	for i, obj := range req.UpdateObjs {
		nums, f := a.subscriptionsAt(from, ctl, obj.ObjPath, codeNotUpdatable)
		var set map[string]string
		if f == nil {
			set, f = settings(obj.ParamSettings)
		}
		if f == nil {
			for _, n := range nums {
				s := a.subs.get(from, n)
				if _, perrs := s.apply(set); len(perrs) > 0 {
					f = &objFailure{code: perrs[0].code, msg: "subscription not changed", params: perrs}
				}
			}
		}
		if f != nil && !req.AllowPartial {
			return f.body()
		}
		failed[i], targets[i] = f, target{nums, set}
	}
	for i, obj := range req.UpdateObjs {
		res := &codec.SetResp_UpdatedObjectResult{RequestedPath: obj.ObjPath}
		if f := failed[i]; f != nil {
			res.OperStatus = &codec.SetResp_UpdatedObjectResult_OperationStatus{OperStatus: &codec.SetResp_UpdatedObjectResult_OperationStatus_OperFailure{
				OperFailure: &codec.SetResp_UpdatedObjectResult_OperationStatus_OperationFailure{ErrCode: f.code, ErrMsg: f.msg}}}
			resp.UpdatedObjResults = append(resp.UpdatedObjResults, res)
			continue
		}
		ok := &codec.SetResp_UpdatedObjectResult_OperationStatus_OperationSuccess{}
		for _, n := range targets[i].nums {
			updated, perrs, _ := a.subs.set(from, n, targets[i].set)
			r := &codec.SetResp_UpdatedInstanceResult{AffectedPath: subscriptionTable + strconv.FormatUint(uint64(n), 10) + ".", UpdatedParams: updated}
			for _, p := range perrs { // the ID taken since it was checked
				r.ParamErrs = append(r.ParamErrs, &codec.SetResp_ParameterError{Param: p.param, ErrCode: p.code, ErrMsg: p.msg})
			}
			ok.UpdatedInstResults = append(ok.UpdatedInstResults, r)
		}
		res.OperStatus = &codec.SetResp_UpdatedObjectResult_OperationStatus{OperStatus: &codec.SetResp_UpdatedObjectResult_OperationStatus_OperSuccess{OperSuccess: ok}}
		resp.UpdatedObjResults = append(resp.UpdatedObjResults, res)
	}
	return &codec.Body{MsgBody: &codec.Body_Response{Response: &codec.Response{RespType: &codec.Response_SetResp{SetResp: resp}}}}
}

func (a *Agent) remove(from string, ctl Controller, req *codec.Delete) *codec.Body {
	resolved := make([][]uint32, len(req.ObjPaths))
	failed := map[int]*objFailure{}
	for i, path := range req.ObjPaths {
		nums, f := a.subscriptionsAt(from, ctl, path, codeNotDeletable)
		if f != nil && !req.AllowPartial {
			return f.body()
		}
		resolved[i], failed[i] = nums, f
	}
	resp := &codec.DeleteResp{}
	for i, path := range req.ObjPaths {
		res := &codec.DeleteResp_DeletedObjectResult{RequestedPath: path}
		if f := failed[i]; f != nil {
			res.OperStatus = &codec.DeleteResp_DeletedObjectResult_OperationStatus{OperStatus: &codec.DeleteResp_DeletedObjectResult_OperationStatus_OperFailure{
				OperFailure: &codec.DeleteResp_DeletedObjectResult_OperationStatus_OperationFailure{ErrCode: f.code, ErrMsg: f.msg}}}
		} else {
			ok := &codec.DeleteResp_DeletedObjectResult_OperationStatus_OperationSuccess{AffectedPaths: []string{}}
			for _, n := range resolved[i] {
				if a.subs.remove(from, n) {
					ok.AffectedPaths = append(ok.AffectedPaths, subscriptionTable+strconv.FormatUint(uint64(n), 10)+".")
				}
			}
			res.OperStatus = &codec.DeleteResp_DeletedObjectResult_OperationStatus{OperStatus: &codec.DeleteResp_DeletedObjectResult_OperationStatus_OperSuccess{OperSuccess: ok}}
		}
		resp.DeletedObjResults = append(resp.DeletedObjResults, res)
	}
	return &codec.Body{MsgBody: &codec.Body_Response{Response: &codec.Response{RespType: &codec.Response_DeleteResp{DeleteResp: resp}}}}
}
