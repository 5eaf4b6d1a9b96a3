// Command bench measures the gateway against its peers. Each suite runs
// paradrop and the tools it stands in for on the same machine, in the same
// run and on the same input, and reports medians and ratios against the
// peers rather than absolute times, which a shared machine makes noisy.
//
// Run it as root from the module root (make bench does):
//
//	go run ./bench [-n N] [SUITE...]
//
// Without a suite name every suite runs. Each suite prints its tables and
// rewrites its own section of bench/README.md, leaving the others alone.
// Benchmarks live here, never in timed tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"paradrop/chute/sandbox"
)

// suite is one benchmark suite; each lives in a file of its own.
type suite struct {
	summary string
	// run measures and returns the suite's README section (markdown,
	// without its heading), having printed its tables on stdout.
	run func(ctx context.Context, o options) (string, error)
	// manual suites run only when named: they need something set up
	// beforehand (figure3-demo, a running demo).
	manual bool
}

var suites = map[string]suite{
	"runtime": {summary: "chute start, install, daemon and monitor RSS, binary size; vs runc and LXC", run: runRuntime},
	"fleet":   {summary: "a rollout by paradrop fleet to N simulated USP agents on one broker", run: runFleet},
}

// options are the command line's settings, shared by all suites.
type options struct {
	n          int    // timed repetitions of each measurement (at least)
	gateways   []int  // the fleet suite's sizes
	command    string // the command line, recorded in the README
	daemon     string // the router suite's daemon binary; "" builds one
	demoData   string // figure3-demo: the demo gateway's data directory
	demoAPI    string // figure3-demo: its API address
	demoCgroup string // figure3-demo: its cgroup parent
	demoNetNS  string // figure3-demo: the network namespace its chutes are reached in ("" this one)
	// routerMemory stops the router suite after its memory readings (0,
	// 10, 30 chutes) and idle CPU, printed only: the README's section
	// needs all steps.
	routerMemory bool
	// idleOnly makes the router suite measure only the idle CPU with 30
	// chutes, over this many windows, and leave the README as it is.
	idleOnly int
	// floorOnly makes the network suite measure only ours against the
	// minimal conntrack pipeline (its paired rounds), printed.
	floorOnly bool
	// floorTransfers is the network suite's TCP transfers per family
	// against the floor: more of them narrow the TCP interval, 6 s each.
	floorTransfers int
}

const readmePath = "bench/README.md"

func main() {
	// This binary is also the monitor and shim of the chutes it starts through the
	// sandbox package (their init role runs before main): dispatch it
	// before anything.
	if len(os.Args) > 1 && os.Args[1] == sandbox.ShimCommand {
		os.Exit(sandbox.ShimMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == sandbox.MonitorCommand {
		os.Exit(sandbox.MonitorMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == boxedCommand {
		os.Exit(boxedMain(os.Args[2:]))
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	o := options{command: strings.TrimSpace("go run ./bench " + strings.Join(args, " "))}
	fs.IntVar(&o.n, "n", 20, "timed repetitions of each start measurement")
	o.gateways = []int{100, 1000}
	fs.Func("gateways", "the fleet suite's numbers of gateways, comma-separated (default 100,1000)", func(s string) error {
		o.gateways = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				return fmt.Errorf("want positive numbers, not %q", f)
			}
			o.gateways = append(o.gateways, n)
		}
		return nil
	})
	fs.StringVar(&o.demoData, "demo-data", "/var/lib/paradrop-demo", "figure3-demo: the demo gateway's data directory")
	fs.StringVar(&o.demoAPI, "demo-api", "127.0.0.1:8080", "figure3-demo: the demo gateway's API address")
	fs.StringVar(&o.demoCgroup, "demo-cgroup", "/paradrop-demo", "figure3-demo: the demo gateway's cgroup parent")
	fs.StringVar(&o.demoNetNS, "demo-netns", "", "figure3-demo: the network namespace (a path) of a demo gateway that runs in one")
	fs.StringVar(&o.daemon, "daemon", "", "router suite: this daemon binary instead of one built from the tree (to compare builds)")
	fs.BoolVar(&o.routerMemory, "router-memory", false, "router suite: only the daemon's memory with 0, 10 and 30 chutes and its idle CPU with 30, printed (bench/README.md left as it is)")
	fs.IntVar(&o.idleOnly, "idle-only", 0, "router suite: only the idle CPU with 30 chutes, over this many windows, printed (README left as it is)")
	fs.BoolVar(&o.floorOnly, "floor-only", false, "network suite: only ours against the minimal conntrack pipeline (paired rounds, IPv4 and IPv6), printed (README left as it is)")
	fs.IntVar(&o.floorTransfers, "floor-transfers", floorTransfers, "network suite: TCP transfers per family against the minimal conntrack pipeline (6 s each, 28 pairs of turns)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./bench [-n N] [SUITE...]\nsuites:")
		for _, name := range suiteNames() {
			fmt.Fprintf(fs.Output(), "  %-10s %s\n", name, suites[name].summary)
		}
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Flags may follow the suites too (go run ./bench figure3-demo -demo-api ADDR).
	var names []string
	for fs.NArg() > 0 {
		names = append(names, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if o.n < 5 {
		return errors.New("-n: want at least 5 repetitions for a median")
	}
	if len(names) == 0 {
		for _, n := range suiteNames() {
			if !suites[n].manual {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		if _, ok := suites[n]; !ok {
			fs.Usage()
			return fmt.Errorf("unknown suite %q", n)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("run as root: chutes, runc and LXC need namespaces and cgroups")
	}
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the module root (go run ./bench)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, n := range names {
		fmt.Printf("== %s: %s\n", n, suites[n].summary)
		started := time.Now()
		body, err := suites[n].run(ctx, o)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		fmt.Printf("(%s suite took %s)\n\n", n, time.Since(started).Round(time.Second))
		if body == "" || (n == "router" && o.routerMemory) {
			continue // a partial run: nothing to record
		}
		section := fmt.Sprintf("Made by `%s` on %s.\nMachine: %s.\n\n%s", o.command,
			time.Now().UTC().Format("2006-01-02 15:04 MST"), machine(), body)
		if err := writeSection(readmePath, n, section); err != nil {
			return err
		}
	}
	return nil
}

func suiteNames() []string {
	names := make([]string, 0, len(suites))
	for n := range suites {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// machine describes the host, load included: the figures mean little
// without it.
func machine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	model := "unknown CPU"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	loadFields := strings.Fields(string(load))
	if len(loadFields) > 3 {
		loadFields = loadFields[:3]
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s, load average %s at the end", runtime.NumCPU(), model,
		strings.TrimSpace(string(kernel)), runtime.Version(), strings.Join(loadFields, " "))
}

const readmeIntro = `# Benchmarks

` + "`make bench`" + ` (or ` + "`go run ./bench [SUITE...]`" + ` as root from the module root)
measures the gateway against its peers on this machine. Each section below
is rewritten by its suite; figures are medians over repeated runs, taken in
the same run as the peer they are compared with, so ratios matter more than
absolute times.
`

// writeSection replaces the suite's section of the README, between its
// markers, or appends it; other suites' sections stay as they are.
func writeSection(path, name, body string) error {
	begin, end := "<!-- begin "+name+" -->", "<!-- end "+name+" -->"
	block := begin + "\n## " + name + "\n\n" + strings.TrimSpace(body) + "\n" + end
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		old, err = []byte(readmeIntro), nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	text := string(old)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i >= 0 && j > i {
		text = text[:i] + block + text[j+len(end):]
	} else {
		text = strings.TrimRight(text, "\n") + "\n\n" + block + "\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Printf("wrote %s (section %s)\n", filepath.Clean(path), name)
	return nil
}
