package main

import (
	"fmt"
	"os"
)

// registerAbsent stands for a command that routerBuild leaves out: hidden
// from the usage, it answers in one line where to find it. Its init checks
// routerBuild itself, so that the command's code is unreachable and the
// linker drops it.
func registerAbsent(name string) {
	register(name, command{hidden: true, run: func([]string) int {
		fmt.Fprintf(os.Stderr, "paradrop: %s is not in this router build (make build has it)\n", name)
		return 2
	}})
}
