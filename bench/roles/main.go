// Command roles is a what-if of the runtime benchmark: a binary that links
// only chute/sandbox and serves its shim and init roles, to show what the
// package initialisation of the daemon's other dependencies costs each
// chute start (the shim and init are re-execs of a whole binary).
package main

import (
	"os"

	"paradrop/chute/sandbox"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case sandbox.ShimCommand:
			os.Exit(sandbox.ShimMain(os.Args[2:]))
		case sandbox.InitCommand:
			os.Exit(sandbox.InitMain())
		}
	}
	os.Exit(2)
}
