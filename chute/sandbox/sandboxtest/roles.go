package sandboxtest

import (
	"os"

	"paradrop/chute/sandbox"
)

// PlayRoles makes a test binary play the shim and monitor roles the daemon re-executes
// itself as: when the sandbox started it as a chute's shim, it does that
// and exits. TestMain calls it first. (The init role needs no call: it is
// played before any test code runs, by package chute/sandbox/pid1.)
func PlayRoles() {
	if len(os.Args) < 2 {
		return
	}
	if os.Args[1] == sandbox.ShimCommand {
		os.Exit(sandbox.ShimMain(os.Args[2:]))
	}
	if os.Args[1] == sandbox.MonitorCommand {
		os.Exit(sandbox.MonitorMain(os.Args[2:]))
	}
}
