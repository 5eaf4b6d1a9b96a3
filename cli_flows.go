package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"text/tabwriter"

	"paradrop/sdn"
)

func init() {
	register("flows", command{
		summary: "show the switch's rules (all, or one chute's) with their counters",
		run:     func(args []string) int { return flowsMain(osEnv(), args) },
	})
}

func flowsMain(env *cliEnv, args []string) int {
	run := func(ctx context.Context, env *cliEnv, args []string) error {
		return cmdFlows(ctx, env, "flows [NAME] [--json]", args)
	}
	return runCLI(env, "flows", run, args)
}

func cmdFlows(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("flows", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the daemon's JSON, for scripts")
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 0, 1)
	if err != nil {
		return err
	}
	path := "/api/v1/flows"
	if len(ops) == 1 {
		path = "/api/v1/chutes/" + url.PathEscape(ops[0]) + "/flows"
	}
	var raw json.RawMessage
	if err := c.call(ctx, "GET", path, nil, nil, 0, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, raw)
	}
	var resp struct {
		Rules []sdn.Rule `json:"rules"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHUTE\tTABLE\tPRIO\tPACKETS\tBYTES\tRULE")
	for _, r := range resp.Rules {
		owner := r.Chute
		if owner == "" {
			owner = "-"
		}
		rule := r.Rule
		if !r.Installed {
			// Desired but not (yet) in the switch: say so rather than
			// show a misleading zero.
			rule += " (not installed)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", owner, r.Table, r.Priority, r.Packets, r.Bytes, rule)
	}
	return tw.Flush()
}
