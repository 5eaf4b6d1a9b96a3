// Command paradrop runs a ParaDrop gateway: the daemon that installs and
// isolates third-party chutes, and the CLI that talks to it.
package main

import (
	"fmt"
	"os"
	"sort"
)

// command is one subcommand of the binary. Each cli_*.go file registers its
// own in init, so that the dispatcher does not need to know them all.
type command struct {
	summary string
	hidden  bool
	run     func(args []string) int
}

var commands = map[string]command{}

func register(name string, c command) {
	if _, dup := commands[name]; dup {
		panic("duplicate command " + name)
	}
	commands[name] = c
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: paradrop COMMAND [ARGS]")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		if os.Args[1] != "help" && os.Args[1] != "-h" && os.Args[1] != "--help" {
			fmt.Fprintf(os.Stderr, "paradrop: unknown command %q\n", os.Args[1])
		}
		usage()
		os.Exit(2)
	}
	os.Exit(c.run(os.Args[2:]))
}
