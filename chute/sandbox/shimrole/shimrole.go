// Package shimrole plays a chute's shim (`BINARY __shim ...`) from its
// init function, as package pid1 plays the chute's init: before the
// packages the daemon needs and the shim does not (its API, store, USP,
// metrics, registries) initialise. Every chute has a shim for its whole
// life; what those packages allocate at start-up would stay in each one.
//
// A binary that re-executes itself as shim imports this package for its
// side effect.
package shimrole

import (
	"os"

	"paradrop/chute/sandbox"
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == sandbox.ShimCommand {
		os.Exit(sandbox.ShimMain(os.Args[2:]))
	}
}
