package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"paradrop/chute"
)

func init() {
	register("hosts", command{
		summary: "show the LAN devices the gateway sees (operator)",
		run:     func(args []string) int { return hostsMain(osEnv(), args) },
	})
}

func hostsMain(env *cliEnv, args []string) int {
	return runCLI(env, "hosts", cmdHosts, args)
}

func cmdHosts(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("hosts", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the daemon's JSON, for scripts")
	co := addClientFlags(fs)
	_, c, err := co.parseArgs(env, fs, "hosts [--json]", args, 0, 0)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.call(ctx, "GET", "/api/v1/hosts", nil, nil, 0, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, raw)
	}
	var resp struct {
		Hosts []chute.Host `json:"hosts"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tACTIVE\tPORT\tADDRESSES\tLAST SEEN")
	for _, h := range resp.Hosts {
		ips := strings.Join(h.IPs, ",")
		if ips == "" {
			ips = "-"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", h.MAC, h.Active, h.Port, ips, h.LastSeen.Format(time.RFC3339))
	}
	return tw.Flush()
}
