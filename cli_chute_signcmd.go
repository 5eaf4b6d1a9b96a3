package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"paradrop/chute/signature"
)

func init() {
	chuteCommands["sign"] = subcommand{"sign PKG --key KEY.sec [-o PKG.minisig] [--force]", cmdSign}
}

// cmdSign writes a package's detached minisign signature, as `minisign -S`
// would, for a developer without the tool: the .minisig goes with the
// package to `install --signature` or to curl's signature field.
func cmdSign(_ context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	keyPath := fs.String("key", "", "password-less minisign secret key (minisign -G -W)")
	out := fs.String("o", "", "where to write the signature (default PKG.minisig)")
	force := fs.Bool("force", false, "replace an existing signature file")
	ops, err := parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	if *keyPath == "" {
		return usagef("--key KEY.sec is required")
	}
	pkg := ops[0]
	if *out == "" {
		*out = pkg + ".minisig"
	}
	key, err := readBounded(*keyPath, 4096)
	if err != nil {
		return err
	}
	f, err := os.Open(pkg)
	if err != nil {
		return err
	}
	defer f.Close()
	sig, err := signature.Sign(f, f.Name(), key)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyPath, err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	w, err := os.OpenFile(*out, flags, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: pass --force to replace it", *out)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(sig)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return err
	}
	parsed, err := signature.ParseSignature(sig)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: signed by key %s\n", *out, parsed.KeyID())
	return nil
}
