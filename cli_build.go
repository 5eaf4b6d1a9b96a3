package main

import (
	"fmt"
	"os"
)

// registerAbsent stands for a command that the router build leaves out:
// hidden from the usage, it answers in one line where to find it.
func registerAbsent(name string) {
	register(name, command{hidden: true, run: func([]string) int {
		fmt.Fprintf(os.Stderr, "paradrop: %s is not in this router build (make build has it)\n", name)
		return 2
	}})
}
