// Package shimrole plays a chute's shim (`BINARY __shim ...`) and the
// chutes' monitor (`BINARY __monitor ...`) from its init function, as
// package pid1 plays the chute's init: before the packages the daemon
// needs and they do not (its API, store, USP, metrics, registries)
// initialise. What those packages allocate at start-up would stay in them
// for the chutes' whole life.
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
	if len(os.Args) > 1 && os.Args[1] == sandbox.MonitorCommand {
		os.Exit(sandbox.MonitorMain(os.Args[2:]))
	}
}
