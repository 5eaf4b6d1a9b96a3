package sandboxtest

import (
	"os"

	"paradrop/chute/sandbox"
)

// PlayRoles makes a test binary play the roles the daemon re-executes
// itself as: when the sandbox started it as a chute's shim or init, it does
// that and exits. TestMain calls it first.
func PlayRoles() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case sandbox.ShimCommand:
		os.Exit(sandbox.ShimMain(os.Args[2:]))
	case sandbox.InitCommand:
		os.Exit(sandbox.InitMain())
	}
}
