package main

import "paradrop/chute/sandbox"

// The binary re-executes itself as each chute's shim (its supervisor, which
// outlives the daemon) and as the chute's init (which builds the sandbox
// before exec'ing the chute's command).
func init() {
	register(sandbox.ShimCommand, command{hidden: true, run: sandbox.ShimMain})
	register(sandbox.InitCommand, command{hidden: true, run: func([]string) int { return sandbox.InitMain() }})
}
