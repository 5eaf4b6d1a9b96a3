package main

import (
	"flag"
	"fmt"
	"strings"

	"paradrop/chute"
	"paradrop/chute/manifest"
)

// allowFlags defines --allow-devices and --allow-caps on fs, setting
// allow: the privileges the operator's own installs may ask for. None by
// default: a package the operator installs does not get a device or a
// capability the operator did not name on the command line.
func allowFlags(fs *flag.FlagSet, allow *chute.Privileges) {
	fs.Func("allow-devices", "host device nodes the operator's chutes may ask for, as /dev/PATH,... (default none)", func(s string) (err error) {
		allow.Devices, err = parseList(s, manifest.CheckDevice)
		return err
	})
	fs.Func("allow-caps", "capabilities beyond the default set the operator's chutes may ask for, as NAME,... NET_RAW or NET_ADMIN (default none)", func(s string) (err error) {
		caps, err := parseList(s, manifest.CheckCapability)
		for i := range caps {
			caps[i] = manifest.NormalizeCap(caps[i])
		}
		allow.Capabilities = caps
		return err
	})
}

// parseList splits a comma-separated flag value, each item checked.
func parseList(s string, check func(string) error) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if err := check(f); err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, f)
	}
	return out, nil
}
