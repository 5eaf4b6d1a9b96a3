package usp

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"paradrop/usp/codec"
)

// errResources: the answer would exceed the agent's response limit
// (7005).
var errResources = errors.New("the response would exceed the agent's limit")

// budget is what is left of the response limit: a small request (many
// copies of "Device.") must not make us build a large answer.
type budget int

func (b *budget) spend(strs ...string) error {
	for _, s := range strs {
		*b -= budget(len(s) + 8) // a field's tag and length
	}
	if *b < 0 {
		return errResources
	}
	return nil
}

// spendMap spends a path and its map of names to values.
func (b *budget) spendMap(path string, m map[string]string) error {
	if err := b.spend(path); err != nil {
		return err
	}
	for k, v := range m {
		if err := b.spend(k, v); err != nil {
			return err
		}
	}
	return nil
}

// pathError is a per-path failure in a response.
type pathError struct {
	code uint32
	msg  string
}

func invalidPath(p string) *pathError {
	return &pathError{codeInvalidPath, fmt.Sprintf("%s is not in the data model", p)}
}

// get answers a Get (TR-369 "The Get Message").
func get(req *codec.Get, snap *snapshot, b *budget) (*codec.GetResp, error) {
	resp := &codec.GetResp{}
	for _, ps := range req.ParamPaths {
		res := &codec.GetResp_RequestedPathResult{RequestedPath: ps}
		resolved, perr := resolveGet(ps, req.MaxDepth, snap)
		if perr != nil {
			res.ErrCode, res.ErrMsg = perr.code, perr.msg
		}
		if err := b.spend(ps, res.ErrMsg); err != nil {
			return nil, err
		}
		for _, r := range resolved {
			if err := b.spendMap(r.ResolvedPath, r.ResultParams); err != nil {
				return nil, err
			}
		}
		res.ResolvedPathResults = resolved
		resp.ReqPathResults = append(resp.ReqPathResults, res)
	}
	return resp, nil
}

func resolveGet(ps string, maxDepth uint32, snap *snapshot) ([]*codec.GetResp_ResolvedPathResult, *pathError) {
	p, err := ParsePath(ps)
	if err != nil {
		return nil, &pathError{codePathSyntax, err.Error()}
	}
	if slices.Contains(p.Segs, "{i}") {
		return nil, &pathError{codePathSyntax, "{i} names the supported data model: Get takes instance numbers or *"}
	}
	sup := supportedPath(p.Segs)
	if !p.searchable() {
		return nil, invalidPath(ps)
	}
	var out []*codec.GetResp_ResolvedPathResult
	if p.Object {
		if findObject(sup) == nil {
			return nil, invalidPath(ps)
		}
		found := false
		for _, in := range snap.list {
			if !snap.matches(p, len(p.Segs), in.path) {
				continue
			}
			found = true
			if len(in.values) == 0 || (maxDepth > 0 && depth(p.Segs, in.path) >= int(maxDepth)) {
				continue
			}
			out = append(out, &codec.GetResp_ResolvedPathResult{ResolvedPath: in.name(), ResultParams: in.values})
		}
		if !found && !p.Search() && hasInstance(p.Segs) {
			return nil, invalidPath(ps) // R-GET.0: no such instance
		}
		return out, nil
	}
	n := len(p.Segs) - 1
	o := findObject(sup[:n])
	if o == nil || !slices.Equal(o.path, sup[:n]) {
		return nil, invalidPath(ps)
	}
	if _, ok := o.param(p.Segs[n]); !ok {
		return nil, invalidPath(ps)
	}
	for _, in := range snap.list {
		if len(in.path) == n && snap.matches(p, n, in.path) {
			out = append(out, &codec.GetResp_ResolvedPathResult{
				ResolvedPath: in.name(), ResultParams: map[string]string{p.Segs[n]: in.values[p.Segs[n]]},
			})
		}
	}
	if len(out) == 0 && !p.Search() {
		return nil, invalidPath(ps)
	}
	return out, nil
}

func hasInstance(segs []string) bool { return slices.ContainsFunc(segs, instanceNumber) }

// getSupportedDM answers a GetSupportedDM (TR-369 "The GetSupportedDM
// Message").
func getSupportedDM(req *codec.GetSupportedDM, snap *snapshot, b *budget) (*codec.GetSupportedDMResp, error) {
	resp := &codec.GetSupportedDMResp{}
	for _, ps := range req.ObjPaths {
		res := &codec.GetSupportedDMResp_RequestedObjectResult{ReqObjPath: ps, DataModelInstUri: dataModelURI}
		objs, perr := resolveSupported(ps, req, snap)
		if perr != nil {
			res.ErrCode, res.ErrMsg, res.DataModelInstUri = perr.code, perr.msg, ""
		}
		if err := b.spend(ps, res.ErrMsg, res.DataModelInstUri); err != nil {
			return nil, err
		}
		for _, o := range objs {
			if err := b.spend(o.SupportedObjPath); err != nil {
				return nil, err
			}
			for _, p := range o.SupportedParams {
				if err := b.spend(p.ParamName, "type"); err != nil {
					return nil, err
				}
			}
			for _, c := range o.SupportedCommands {
				if err := b.spend(c.CommandName, strings.Join(c.InputArgNames, ""), strings.Join(c.OutputArgNames, "")); err != nil {
					return nil, err
				}
			}
			for _, e := range o.SupportedEvents {
				if err := b.spend(e.EventName, strings.Join(e.ArgNames, "")); err != nil {
					return nil, err
				}
			}
		}
		res.SupportedObjs = objs
		resp.ReqObjResults = append(resp.ReqObjResults, res)
	}
	return resp, nil
}

func resolveSupported(ps string, req *codec.GetSupportedDM, snap *snapshot) ([]*codec.GetSupportedDMResp_SupportedObjectResult, *pathError) {
	p, err := ParsePath(ps)
	if err != nil {
		return nil, &pathError{codePathSyntax, err.Error()}
	}
	sup := supportedPath(p.Segs)
	if !p.searchable() {
		return nil, invalidPath(ps)
	}
	if !p.Object {
		n := len(sup) - 1
		o := findObject(sup[:n])
		if o == nil || !slices.Equal(o.path, sup[:n]) || !exists(p, n, snap) {
			return nil, invalidPath(ps)
		}
		prm, ok := o.param(p.Segs[n])
		if !ok {
			return nil, invalidPath(ps)
		}
		r := supportedObject(o, nil)
		r.SupportedParams = []*codec.GetSupportedDMResp_SupportedParamResult{supportedParam(prm)}
		return []*codec.GetSupportedDMResp_SupportedObjectResult{r}, nil
	}
	o := findObject(sup)
	if o == nil || !exists(p, len(p.Segs), snap) {
		return nil, invalidPath(ps)
	}
	out := []*codec.GetSupportedDMResp_SupportedObjectResult{supportedObject(o, req)}
	for _, c := range model {
		if len(c.path) <= len(o.path) || !slices.Equal(c.path[:len(o.path)], o.path) {
			continue
		}
		if !req.FirstLevelOnly {
			out = append(out, supportedObject(c, req))
		} else if depth(o.path, c.path) == 1 {
			out = append(out, supportedObject(c, nil))
		}
	}
	return out, nil
}

// exists says whether the first n segments of a path with instance
// numbers name instantiated objects (GetSupportedDM accepts such paths
// for objects that exist).
func exists(p Path, n int, snap *snapshot) bool {
	if !hasInstance(p.Segs[:n]) {
		return true
	}
	for _, in := range snap.list {
		if snap.matches(p, n, in.path) {
			return true
		}
	}
	return false
}

// supportedObject describes o; with req nil, without its parameters and
// keys (first_level_only's children).
func supportedObject(o *object, req *codec.GetSupportedDM) *codec.GetSupportedDMResp_SupportedObjectResult {
	r := &codec.GetSupportedDMResp_SupportedObjectResult{
		SupportedObjPath: strings.Join(o.path, ".") + ".",
		Access:           objAccess(o),
		IsMultiInstance:  o.multi(),
	}
	if req == nil {
		return r
	}
	if req.ReturnParams {
		for _, p := range o.params {
			r.SupportedParams = append(r.SupportedParams, supportedParam(p))
		}
	}
	if req.ReturnCommands {
		for _, c := range commands {
			if c.obj == o {
				typ := codec.GetSupportedDMResp_CMD_SYNC
				if c.async {
					typ = codec.GetSupportedDMResp_CMD_ASYNC
				}
				r.SupportedCommands = append(r.SupportedCommands, &codec.GetSupportedDMResp_SupportedCommandResult{
					CommandName: c.name, InputArgNames: c.in, OutputArgNames: c.out, CommandType: typ})
			}
		}
	}
	if req.ReturnEvents {
		for _, e := range events {
			if e.obj == o {
				r.SupportedEvents = append(r.SupportedEvents, &codec.GetSupportedDMResp_SupportedEventResult{EventName: e.name, ArgNames: e.args})
			}
		}
	}
	if req.ReturnUniqueKeySets {
		for _, k := range o.keys {
			r.UniqueKeySets = append(r.UniqueKeySets, &codec.GetSupportedDMResp_SupportedUniqueKeySet{KeyNames: k})
		}
	}
	return r
}

func supportedParam(p param) *codec.GetSupportedDMResp_SupportedParamResult {
	vc := codec.GetSupportedDMResp_VALUE_CHANGE_ALLOWED
	if p.noValueChange {
		vc = codec.GetSupportedDMResp_VALUE_CHANGE_WILL_IGNORE
	}
	return &codec.GetSupportedDMResp_SupportedParamResult{
		ParamName: p.name, Access: paramAccess(p), ValueType: p.typ, ValueChange: vc,
	}
}

func objAccess(o *object) codec.GetSupportedDMResp_ObjAccessType {
	if o.writable {
		return codec.GetSupportedDMResp_OBJ_ADD_DELETE
	}
	return codec.GetSupportedDMResp_OBJ_READ_ONLY
}

func paramAccess(p param) codec.GetSupportedDMResp_ParamAccessType {
	if p.writable {
		return codec.GetSupportedDMResp_PARAM_READ_WRITE
	}
	return codec.GetSupportedDMResp_PARAM_READ_ONLY
}
