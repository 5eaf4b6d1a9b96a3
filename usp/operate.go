package usp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"paradrop/chute"
	"paradrop/chute/signature"
	"paradrop/usp/codec"
)

// errArgs is a command's input that cannot be used (7027).
var errArgs = errors.New("invalid command arguments")

// The input argument naming a package's signature (a vendor extension,
// TR-106's X_ prefix): without it, the package's URL with .minisig added
// to its path is tried.
const argSignatureURL = "X_ParaDrop_SignatureURL"

// argForce ("true") lets Update() install a version not newer than the
// one installed (a vendor extension): a controller rolling a gateway back
// to its former version says so; without it a downgrade is refused, as
// the API refuses one without force.
const argForce = "X_ParaDrop_Force"

// operation is one command to run on one object instance.
type operation struct {
	from string     // the controller's endpoint ID
	ctl  Controller // and its scope
	obj  instance   // the object the command is on
	args map[string]string
	// req is the async command's record (nil for a sync one): what
	// it queued is noted there (noteChange).
	req *launch
}

// launch is an async command accepted, to run once its record is kept
// (state.commit).
type launch struct {
	key   string // its record's store key ("" when not kept)
	saved savedRequest
	run   func()
}

// command is a command of the supported data model: on an object, sync or
// async (answered at once, ended with OperationComplete).
type command struct {
	obj     *object
	name    string
	async   bool
	in, out []string // argument names, as GetSupportedDM tells them
	run     func(a *Agent, ctx context.Context, op operation) (map[string]string, error)
}

var commands = []command{
	{obj: softwareModules, name: "InstallDU()", async: true, run: (*Agent).installDU,
		in: []string{"URL", "ExecutionEnvRef", argSignatureURL}, out: []string{"DeploymentUnitRef"}},
	{obj: deploymentUnit, name: "Update()", async: true, run: (*Agent).updateDU, in: []string{"URL", argSignatureURL, argForce}},
	{obj: deploymentUnit, name: "Uninstall()", async: true, run: (*Agent).uninstallDU},
	{obj: executionUnit, name: "SetRequestedState()", run: (*Agent).setRequestedState, in: []string{"RequestedState"}},
	{obj: executionUnit, name: "Restart()", run: (*Agent).restartEU},
}

// operate answers an Operate (TR-369 "The Operate Message"): the command
// runs on each object its path names that the controller may see. The
// async commands are added to launches, to be run once the answer is kept.
func (a *Agent) operate(from string, ctl Controller, req *codec.Operate, launches *[]*launch) *codec.Body {
	objPath, name, ok := cutCommand(req.Command)
	if !ok {
		return errorMsg(codePathSyntax, fmt.Sprintf("%.200q names no command", req.Command))
	}
	p, err := ParsePath(objPath)
	if err != nil {
		return errorMsg(codePathSyntax, err.Error())
	}
	var cmd *command
	for i, c := range commands {
		if c.name == name && slicesEqual(c.obj.path, supportedPath(p.Segs)) {
			cmd = &commands[i]
		}
	}
	if cmd == nil || !p.searchable() {
		return errorMsg(codeInvalidPath, fmt.Sprintf("%.200s is not a command of the data model", req.Command))
	}
	snap := a.snapshot(from, ctl)
	var targets []instance
	for _, in := range snap.list {
		if in.obj == cmd.obj && len(in.path) == len(p.Segs) && snap.matches(p, len(p.Segs), in.path) {
			targets = append(targets, in)
		}
	}
	// Another developer's chute is answered as one that does not exist.
	if len(targets) == 0 && !p.Search() && !hasWildcard(p.Segs) {
		return errorMsg(codeInvalidPath, fmt.Sprintf("%.200s: no such object", objPath))
	}
	resp := &codec.OperateResp{}
	for _, in := range targets {
		executed := in.name() + cmd.name
		res := &codec.OperateResp_OperationResult{ExecutedCommand: executed}
		op := operation{from: from, ctl: ctl, obj: in, args: req.InputArgs}
		if cmd.async {
			*launches = append(*launches, a.start(*cmd, op, executed, req.CommandKey, res)...)
		} else if out, err := cmd.run(a, a.ctx, op); err != nil {
			code, msg := commandError(err)
			res.OperationResp = &codec.OperateResp_OperationResult_CmdFailure{CmdFailure: &codec.OperateResp_OperationResult_CommandFailure{ErrCode: code, ErrMsg: msg}}
		} else {
			res.OperationResp = &codec.OperateResp_OperationResult_ReqOutputArgs{ReqOutputArgs: &codec.OperateResp_OperationResult_OutputArgs{OutputArgs: out}}
		}
		resp.OperationResults = append(resp.OperationResults, res)
	}
	return &codec.Body{MsgBody: &codec.Body_Response{Response: &codec.Response{RespType: &codec.Response_OperateResp{OperateResp: resp}}}}
}

// start makes an async command's Request object and answers its path, or
// a failure when too many are running. The command runs once launched.
func (a *Agent) start(cmd command, op operation, executed, key string, res *codec.OperateResp_OperationResult) []*launch {
	n, ok := a.ops.begin(request{from: op.from, command: executed, key: key})
	if !ok {
		res.OperationResp = &codec.OperateResp_OperationResult_CmdFailure{CmdFailure: &codec.OperateResp_OperationResult_CommandFailure{
			ErrCode: codeResources, ErrMsg: fmt.Sprintf("%d commands already running (%d of yours at most); try again later", maxOperations, maxPerController)}}
		return nil
	}
	l := &launch{saved: savedRequest{From: op.from, Obj: op.obj.name(), Command: cmd.name, Key: key,
		Chute: op.obj.values["Name"], Started: time.Now().UTC()}}
	op.req = l
	l.run = func() {
		defer a.ops.end(n)
		out, err := cmd.run(a, a.ctx, op)
		if a.ctx.Err() != nil {
			return // the agent stops: the next start tells how it ended (recover.go)
		}
		a.finish(l, out, err)
	}
	res.OperationResp = &codec.OperateResp_OperationResult_ReqObjPath{ReqObjPath: "Device.LocalAgent.Request." + strconv.FormatUint(uint64(n), 10) + "."}
	return []*launch{l}
}

// noteChange records the chute change an async command queued, so that a
// restart meanwhile learns how it ended from the chute manager.
func (a *Agent) noteChange(op operation, ch chute.Change) {
	if op.req == nil {
		return
	}
	op.req.saved.Change, op.req.saved.Chute = ch.ID, ch.Chute
	if err := a.state.put(op.req.key, op.req.saved); err != nil {
		a.cfg.Logf("usp: %v", err)
	}
}

// finish tells the controller how an async command ended; its record is
// kept, with the outcome, until the OperationComplete is sent.
func (a *Agent) finish(l *launch, out map[string]string, err error) {
	done := &savedOutcome{Out: out}
	if err != nil {
		done.Code, done.Msg = commandError(err)
	}
	l.saved.Done = done
	if perr := a.state.put(l.key, l.saved); perr != nil {
		a.cfg.Logf("usp: %v", perr)
	}
	a.operationComplete(l, *done)
}

// cutCommand splits a command path into its object's path and the
// command's name.
func cutCommand(s string) (obj, name string, ok bool) {
	if !strings.HasSuffix(s, "()") {
		return "", "", false
	}
	i := strings.LastIndexByte(s, '.')
	if i < 0 || i == len(s)-3 {
		return "", "", false
	}
	return s[:i+1], s[i+1:], true
}

func hasWildcard(segs []string) bool {
	for _, s := range segs {
		if s == "*" {
			return true
		}
	}
	return false
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, ".") == strings.Join(b, ".")
}

// commandError is the USP error code and message of a command's failure.
func commandError(err error) (uint32, string) {
	switch {
	case errors.Is(err, errArgs), errors.Is(err, chute.ErrInvalid):
		return codeCommandArgs, err.Error()
	case errors.Is(err, chute.ErrForbidden), errors.Is(err, chute.ErrQuota),
		errors.Is(err, signature.ErrMissing), errors.Is(err, signature.ErrMalformed),
		errors.Is(err, signature.ErrUnknownKey), errors.Is(err, signature.ErrBadSignature):
		return codePermission, err.Error()
	case errors.Is(err, chute.ErrTooLarge):
		return codeResources, err.Error()
	}
	return codeCommandFailure, err.Error()
}

// waitChange waits for the change the chute manager queued, an error if
// it failed.
func (a *Agent) waitChange(ctx context.Context, ch chute.Change, err error) error {
	if err != nil {
		return err
	}
	ch, err = a.cfg.Chutes.WaitChange(ctx, ch.ID)
	switch {
	case err != nil:
		return err
	case ch.State == chute.ChangeError:
		return fmt.Errorf("%s %s: %s", ch.Action, ch.Chute, ch.Error)
	}
	return nil
}

// fetch opens the package at the URL in args, and fetches its signature,
// on the terms of the controller's scope (Config.Origin). The signature
// comes first: a package whose signature cannot be had is not downloaded.
func (a *Agent) fetch(ctx context.Context, op operation) (chute.Origin, io.ReadCloser, error) {
	if a.cfg.Origin == nil {
		return chute.Origin{}, nil, fmt.Errorf("%w: this agent installs no packages", errArgs)
	}
	u, err := checkURL(op.args["URL"])
	if err != nil {
		return chute.Origin{}, nil, err
	}
	if ref := op.args["ExecutionEnvRef"]; ref != "" && strings.TrimSuffix(ref, ".") != execEnvRef {
		return chute.Origin{}, nil, fmt.Errorf("%w: ExecutionEnvRef %.100q: this gateway has %s only", errArgs, ref, execEnvRef)
	}
	o, err := a.cfg.Origin(op.ctl.Developer, op.ctl.actor())
	if err != nil {
		return o, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Download.Timeout)
	client := a.cfg.Download.client(op.ctl.Developer != "")
	sig, err := a.cfg.Download.signature(ctx, client, u, op.args[argSignatureURL])
	if err != nil {
		cancel()
		return o, nil, err
	}
	body, err := a.cfg.Download.open(ctx, client, u.String(), a.cfg.Download.MaxSize)
	if err != nil {
		cancel()
		return o, nil, fmt.Errorf("package: %w", err)
	}
	o.Seal.Signature = sig
	return o, cancelling{body, cancel}, nil
}

// cancelling is a download whose Close ends its context too.
type cancelling struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelling) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}
