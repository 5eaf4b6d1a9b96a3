package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/url"
	"time"

	"paradrop/chute"
	"paradrop/chute/manifest"
)

// The verb joins the chute command's table, which is filled before init.
func init() { chuteCommands["resources"] = subcommand{resourcesUsage, cmdResources} }

const resourcesUsage = "resources NAME [--cpu-max CORES] [--cpu-weight N] [--cpus LIST] [--memory BYTES] [--pids N] " +
	"[--egress RATE] [--ingress RATE] [--grace DURATION] [--force] [--no-wait]"

// cmdResources changes a running chute's resource policy: the chute is
// asked first, then the limits are enforced; the steps say which took
// effect.
func cmdResources(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("resources", flag.ContinueOnError)
	var req chute.ResourceRequest
	fs.Func("cpu-max", "CPU limit in cores, e.g. 0.5", func(s string) error {
		return setJSON(s, &req.CPUMax)
	})
	fs.Func("cpu-weight", "relative CPU share, 1 to 10000 (default of a chute: 100)", func(s string) error {
		return setJSON(s, &req.CPUWeight)
	})
	fs.Func("cpus", `CPUs the chute runs on, e.g. 0 or 0-1 ("" for every CPU)`, func(s string) error {
		req.CPUs = &s
		return nil
	})
	fs.Func("memory", "memory limit, e.g. 32Mi", func(s string) error { return setQuantity(s, &req.Memory) })
	fs.Func("pids", "process and thread limit", func(s string) error { return setJSON(s, &req.Pids) })
	bw := &chute.BandwidthPolicy{}
	fs.Func("egress", "outgoing bandwidth, e.g. 5Mbit (0: unlimited)", func(s string) error { return setQuantity(s, &bw.Egress) })
	fs.Func("ingress", "incoming bandwidth, e.g. 5Mbit (0: unlimited)", func(s string) error { return setQuantity(s, &bw.Ingress) })
	fs.Func("grace", "how long the chute has to comply before the limits are forced, e.g. 2s", func(s string) error {
		d, err := time.ParseDuration(s)
		md := manifest.Duration(d)
		req.Grace = &md
		return err
	})
	fs.BoolVar(&req.Force, "force", false, "lower memory even below what the chute cannot give back (restarts it)")
	noWait := fs.Bool("no-wait", false, "return once the change is queued")
	co := addClientFlags(fs)
	ops, err := parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	if bw.Egress != nil || bw.Ingress != nil {
		req.Bandwidth = bw
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	c, err := co.client(env)
	if err != nil {
		return err
	}
	var q queued
	if err := c.call(ctx, "PUT", "/api/v1/chutes/"+url.PathEscape(ops[0])+"/resources", nil, bytes.NewReader(body), int64(len(body)), &q); err != nil {
		return err
	}
	return follow(ctx, env, c, q, *noWait, "resources changed")
}

// setJSON parses a flag's value as the JSON number it will be sent as.
func setJSON[T any](s string, dst **T) error {
	v := new(T)
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return usagef("%q is not a number", s)
	}
	*dst = v
	return nil
}

// setQuantity parses a size or rate the way the daemon will ("32Mi",
// "5Mbit").
func setQuantity[T any, P interface {
	*T
	UnmarshalJSON([]byte) error
}](s string, dst **T) error {
	v := new(T)
	raw, _ := json.Marshal(s)
	if err := P(v).UnmarshalJSON(raw); err != nil {
		return err
	}
	*dst = v
	return nil
}
