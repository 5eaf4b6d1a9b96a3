package main

import "paradrop/chute/sandbox"

// The binary re-executes itself as each chute's shim (its supervisor, which
// outlives the daemon) and as the chute's init (which builds the sandbox
// before exec'ing the chute's command). The init role needs no entry: it
// is played before main, by package chute/sandbox/pid1.
func init() {
	register(sandbox.ShimCommand, command{hidden: true, run: sandbox.ShimMain})
}
