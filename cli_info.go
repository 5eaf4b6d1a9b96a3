package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"
)

func init() {
	register("info", command{
		summary: "show the gateway: version, API URL, TLS certificate fingerprint",
		run:     func(args []string) int { return runCLI(osEnv(), "info", cmdGatewayInfo, args) },
	})
}

const infoUsage = "info [--server URL] [--token TOKEN] [--fingerprint SHA256]"

// gatewayInfo is GET /api/v1/info.
type gatewayInfo struct {
	Version        string `json:"version"`
	UptimeSeconds  int64  `json:"uptime_seconds"`
	Kernel         string `json:"kernel"`
	CgroupMode     string `json:"cgroup_mode"`
	Chutes         int    `json:"chutes"`
	TLSFingerprint string `json:"tls_fingerprint"`
}

func cmdGatewayInfo(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	o := addClientFlags(fs)
	_, c, err := o.parseArgs(env, fs, infoUsage, args, 0, 0)
	if err != nil {
		return err
	}
	var info gatewayInfo
	if err := c.call(ctx, "GET", "/api/v1/info", nil, nil, 0, &info); err != nil {
		return err
	}
	// Over HTTPS, the certificate this connection was made with; over
	// loopback, the one the daemon says its HTTPS listeners serve.
	fp := info.TLSFingerprint
	if c.pin != nil {
		if seen, ok := c.pin.fingerprint(); ok {
			fp = seen.String()
		}
	}
	if fp == "" {
		fp = "none (no HTTPS listener)"
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "API:\t%s\n", c.base)
	fmt.Fprintf(tw, "version:\t%s\n", info.Version)
	fmt.Fprintf(tw, "uptime:\t%s\n", time.Duration(info.UptimeSeconds)*time.Second)
	fmt.Fprintf(tw, "kernel:\t%s (cgroup %s)\n", info.Kernel, info.CgroupMode)
	fmt.Fprintf(tw, "chutes:\t%d\n", info.Chutes)
	fmt.Fprintf(tw, "TLS SHA-256 fingerprint:\t%s\n", fp)
	return tw.Flush()
}
