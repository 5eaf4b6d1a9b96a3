package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/url"

	"paradrop/migrate"
)

func init() {
	chuteCommands["migrate"] = subcommand{"migrate NAME --to URL [--to-token TOKEN] [--to-fingerprint FP] [--no-wait]", cmdMigrate}
}

// cmdMigrate asks the gateway the chute is on to move it to another: the
// source gateway, not the CLI, streams it there.
func cmdMigrate(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	noWait := fs.Bool("no-wait", false, "return once the change is queued")
	var t migrate.Target
	fs.StringVar(&t.URL, "to", "", "the target gateway's URL, https://HOST:PORT")
	fs.StringVar(&t.Token, "to-token", "", "a token the target accepts for the chute's owner (default $PARADROP_TO_TOKEN)")
	fs.StringVar(&t.Fingerprint, "to-fingerprint", "", "SHA-256 fingerprint of the target's certificate (its paradrop info); required over https")
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	t.Token = firstOf(t.Token, env.getenv("PARADROP_TO_TOKEN"))
	if t.URL == "" {
		return usagef("--to is required (usage: paradrop %s)", usage)
	}
	body, err := json.Marshal(t)
	if err != nil {
		return err
	}
	var q queued
	if err := c.call(ctx, "POST", "/api/v1/chutes/"+url.PathEscape(ops[0])+"/migrate", nil, bytes.NewReader(body), int64(len(body)), &q); err != nil {
		return err
	}
	return follow(ctx, env, c, q, *noWait, "migrated")
}
