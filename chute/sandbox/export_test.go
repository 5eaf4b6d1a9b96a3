package sandbox

import (
	"context"
)

// MonitorPid starts l's monitor if need be and returns its pid, for tests
// that check which process serves a start.
func (l *Launcher) MonitorPid(ctx context.Context) (int, error) {
	m, err := l.monitor(ctx)
	if err != nil {
		return 0, err
	}
	return m.pid, nil
}

// PanicOp is a request op that makes the shim serving it panic: in a
// test binary run as a monitor, to show a panic ends no other chute.
const PanicOp = "test-panic"

func init() {
	testRequestHook = func(req request) {
		if req.Op == PanicOp {
			panic("test: " + PanicOp)
		}
	}
}

// Request sends one request to the shim of the chute in stateDir.
func Request(ctx context.Context, stateDir, op string) error {
	_, err := call(ctx, stateDir, request{Op: op})
	return err
}
