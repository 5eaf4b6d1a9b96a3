package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"paradrop/uci"
)

// uciSectionType is the type of the section of /etc/config/paradrop that
// holds serve's options.
const uciSectionType = "paradrop"

// uciLists are serve's flags that may be given more than once, and so may
// be UCI lists.
var uciLists = map[string]bool{"listen": true, "lan": true, "lan-host": true, "usp-controller": true, "dns": true, "follow-peer": true}

// setFromUCI sets fs's flags from the one "config paradrop" section of a
// UCI file: each option is the flag of the same name with - for _ (UCI
// names have no -), set through the flag itself so that a file and the
// same command line give the same options. The command line holds --uci
// alone: a flag given both ways would leave the operator guessing which
// one the router runs with, so it is refused.
func setFromUCI(fs *flag.FlagSet, path string) error {
	var others []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "uci" {
			others = append(others, "--"+f.Name)
		}
	})
	if len(others) > 0 {
		return usagef("--uci takes no other flag: set %s in %s", strings.Join(others, ", "), path)
	}
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	cfg, err := uci.Parse(file)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var section *uci.Section
	for i := range cfg.Sections {
		s := &cfg.Sections[i]
		switch {
		case s.Type != uciSectionType:
			return fmt.Errorf("%s line %d: unknown section type %q (want %q)", path, s.Line, s.Type, uciSectionType)
		case section != nil:
			return fmt.Errorf("%s line %d: a second %q section (the first is on line %d)", path, s.Line, uciSectionType, section.Line)
		}
		section = s
	}
	if section == nil {
		return fmt.Errorf("%s: no %q section", path, "config "+uciSectionType)
	}
	for _, o := range section.Options {
		if err := setUCIOption(fs, o); err != nil {
			return fmt.Errorf("%s line %d: option %s: %w", path, o.Line, o.Name, err)
		}
	}
	return nil
}

func setUCIOption(fs *flag.FlagSet, o uci.Option) error {
	name := strings.ReplaceAll(o.Name, "_", "-")
	f := fs.Lookup(name)
	if f == nil || name == "uci" {
		return errors.New("unknown option (see paradrop serve -h: the flags, with _ for -)")
	}
	if o.List && !uciLists[name] {
		return errors.New("takes one value: use option, not list")
	}
	for _, v := range o.Values {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			var err error
			if v, err = uciBool(v); err != nil {
				return err
			}
		}
		if err := fs.Set(name, v); err != nil {
			return err
		}
	}
	return nil
}

// uciBool reads UCI's boolean words as OpenWrt's config_get_bool does.
func uciBool(v string) (string, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "on", "true", "enabled":
		return "true", nil
	case "0", "no", "off", "false", "disabled":
		return "false", nil
	}
	return "", fmt.Errorf("%q is not a boolean (1/0, yes/no, on/off, true/false, enabled/disabled)", v)
}
