package sandbox

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"time"
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

// PanicOp is a request op that makes the shim serving it panic, and
// PanicAtStart the name of a chute whose shim panics once the chute
// started: in a test binary run as a monitor, to show a panic ends no
// other chute.
// HangAtStart names a chute whose init the test monitor stops as soon as
// it is cloned (or assigned, if warm), so that its start never ends.
const (
	PanicOp      = "test-panic"
	PanicAtStart = "test-panic-at-start"
	HangAtStart  = "test-hang-at-start"
	// SlowWarmRunDir, in a monitor's run directory, has the test monitor
	// take 30 ms more to make each warm init, from its clone on.
	SlowWarmRunDir = "WaitsForTheWarmInit"
)

func init() {
	testHook = func(chute, event string) {
		if event == "request "+PanicOp || chute == PanicAtStart && event == "started" {
			panic("test: " + chute + ": " + event)
		}
		if strings.HasPrefix(event, "warm ") && strings.Contains(chute, SlowWarmRunDir) {
			time.Sleep(30 * time.Millisecond)
		}
		if pid, ok := strings.CutPrefix(event, "init "); ok && chute == HangAtStart {
			p, _ := strconv.Atoi(pid)
			syscall.Kill(p, syscall.SIGSTOP)
		}
	}
}

// Request sends one request to the shim of the chute in stateDir.
func Request(ctx context.Context, stateDir, op string) error {
	_, err := call(ctx, stateDir, request{Op: op})
	return err
}
