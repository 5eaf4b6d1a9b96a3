package usp

import (
	"context"
	"fmt"
)

// The commands on Device.SoftwareModules.ExecutionUnit: a chute's
// process. They queue the change and answer: the EU's Status tells the
// rest (and its ValueChange).

// setRequestedState is ExecutionUnit.{i}.SetRequestedState(RequestedState):
// Active starts the chute, Idle stops it.
func (a *Agent) setRequestedState(_ context.Context, op operation) (map[string]string, error) {
	name := op.obj.values["Name"]
	var err error
	switch s := op.args["RequestedState"]; s {
	case "Active":
		_, err = a.cfg.Chutes.Start(name, op.ctl.actor())
	case "Idle":
		_, err = a.cfg.Chutes.Stop(name, op.ctl.actor())
	default:
		return nil, fmt.Errorf("%w: RequestedState %.40q: want Active or Idle", errArgs, s)
	}
	if err != nil {
		return nil, err
	}
	return map[string]string{}, nil
}

// restartEU is ExecutionUnit.{i}.Restart().
func (a *Agent) restartEU(_ context.Context, op operation) (map[string]string, error) {
	if _, err := a.cfg.Chutes.Restart(op.obj.values["Name"], op.ctl.actor()); err != nil {
		return nil, err
	}
	return map[string]string{}, nil
}
