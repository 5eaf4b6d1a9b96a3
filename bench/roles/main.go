// Command roles is a what-if of the runtime benchmark: a binary that links
// only chute/sandbox and serves its shim and init roles, to show what the
// package initialisation of the daemon's other dependencies still costs a
// cold chute start (the shim is a re-exec of the whole binary; init runs
// before that initialisation).
package main

import (
	"os"

	"paradrop/chute/sandbox"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == sandbox.ShimCommand {
		os.Exit(sandbox.ShimMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == sandbox.MonitorCommand {
		os.Exit(sandbox.MonitorMain(os.Args[2:]))
	}
	os.Exit(2)
}
