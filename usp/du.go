package usp

import (
	"context"
	"fmt"
	"io"
	"time"

	"paradrop/chute"
)

// The commands on Device.SoftwareModules.DeploymentUnit: a chute's
// package. Each ends with DUStateChange!, which the chute manager's
// OnChangeEnd sends once a change ran (ChangeEnded), and the agent itself
// when the package could not be had or was refused before that.

// installDU is Device.SoftwareModules.InstallDU(URL, ExecutionEnvRef,
// X_ParaDrop_SignatureURL).
func (a *Agent) installDU(ctx context.Context, op operation) (map[string]string, error) {
	start := time.Now()
	o, body, err := a.fetch(ctx, op)
	var ch chute.Change
	if err == nil {
		ch, err = a.cfg.Chutes.Install(ctx, body, o)
		body.Close()
	}
	if err == nil {
		a.noteChange(op, ch)
	}
	if err != nil {
		a.duStateChange("", chute.Owner(op.ctl.Developer), "Install", start, time.Now(), err)
		return nil, err
	}
	a.setURL(ch.Chute, op.args["URL"])
	if err := a.waitChange(ctx, ch, nil); err != nil {
		return nil, err
	}
	return map[string]string{"DeploymentUnitRef": "Device.SoftwareModules.DeploymentUnit." + a.numberString(ch.Chute)}, nil
}

// updateDU is DeploymentUnit.{i}.Update(URL, X_ParaDrop_SignatureURL,
// X_ParaDrop_Force).
func (a *Agent) updateDU(ctx context.Context, op operation) (map[string]string, error) {
	start := time.Now()
	name := op.obj.values["Name"]
	var ch chute.Change
	force, err := parseForce(op.args[argForce])
	if err == nil {
		var o chute.Origin
		var body io.ReadCloser
		if o, body, err = a.fetch(ctx, op); err == nil {
			ch, err = a.cfg.Chutes.Update(ctx, name, body, force, o)
			body.Close()
		}
	}
	if err == nil {
		a.noteChange(op, ch)
	}
	if err != nil {
		a.duStateChange(name, chute.Owner(op.obj.values["Vendor"]), "Update", start, time.Now(), err)
		return nil, err
	}
	if err := a.waitChange(ctx, ch, nil); err != nil {
		return nil, err
	}
	a.setURL(name, op.args["URL"])
	return map[string]string{}, nil
}

// uninstallDU is DeploymentUnit.{i}.Uninstall(): the chute and its data.
func (a *Agent) uninstallDU(ctx context.Context, op operation) (map[string]string, error) {
	name := op.obj.values["Name"]
	ch, err := a.cfg.Chutes.Remove(name, false, op.ctl.actor())
	if err == nil {
		a.noteChange(op, ch)
	}
	if err := a.waitChange(ctx, ch, err); err != nil {
		return nil, err
	}
	a.setURL(name, "")
	return map[string]string{}, nil
}

// parseForce reads X_ParaDrop_Force: absent is false.
func parseForce(v string) (bool, error) {
	switch v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, fmt.Errorf("%w: %s %q is not a boolean", errArgs, argForce, v)
}
