package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"paradrop/chute/manifest"
	"paradrop/tenant"
)

func init() {
	register("developer", command{
		summary: "add, change and remove developers and their tokens (operator only)",
		run:     func(args []string) int { return developerMain(osEnv(), args) },
	})
}

const specFlags = "[--key FILE.pub]... [--chutes N] [--cpu CORES] [--memory SIZE] [--disk SIZE] [--egress RATE] [--allow-unsigned] [--allow-follow] [--device PATH]... [--cap NAME]..."

var developerCommands = map[string]subcommand{
	"add":    {"add NAME " + specFlags, cmdDeveloperAdd},
	"set":    {"set NAME " + specFlags, cmdDeveloperSet},
	"list":   {"list [--json]", cmdDeveloperList},
	"show":   {"show [NAME]", cmdDeveloperShow},
	"remove": {"remove NAME [--remove-chutes]", cmdDeveloperRemove},
}

var tokenCommands = map[string]subcommand{
	"add":    {"add NAME [--expires DURATION]", cmdTokenAdd},
	"revoke": {"revoke NAME ID", cmdTokenRevoke},
}

func developerMain(env *cliEnv, args []string) int {
	if len(args) > 0 && args[0] == "token" {
		return dispatch(env, "developer token", tokenCommands, args[1:])
	}
	return dispatch(env, "developer", developerCommands, args)
}

// listFlag is a flag given any number of times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// specOpts are the flags that set what the operator sets of a developer.
type specOpts struct {
	keys, devices, caps listFlag
	chutes              int
	cpu                 float64
	memory, disk        string
	egress              string
	unsigned, follow    bool
}

func addSpecFlags(fs *flag.FlagSet) *specOpts {
	o := &specOpts{}
	fs.Var(&o.keys, "key", "a minisign public key file (.pub) of the developer; repeat for more (set: replaces them)")
	fs.IntVar(&o.chutes, "chutes", 0, "quota: chutes at most (0: no bound)")
	fs.Float64Var(&o.cpu, "cpu", 0, "quota: the chutes' cpu_max together, in cores (0: no bound)")
	fs.StringVar(&o.memory, "memory", "", "quota: the chutes' memory together, e.g. 256Mi")
	fs.StringVar(&o.disk, "disk", "", "quota: the chutes' /data together, e.g. 512Mi")
	fs.StringVar(&o.egress, "egress", "", "quota: the chutes' egress together, e.g. 20Mbit")
	fs.BoolVar(&o.unsigned, "allow-unsigned", false, "let the developer install unsigned packages")
	fs.BoolVar(&o.follow, "allow-follow", false, "let the developer's chutes follow a LAN device (manifest follow: where they move tells it where the device is)")
	fs.Var(&o.devices, "device", "a device node its chutes may have; repeat for more (set: replaces them)")
	fs.Var(&o.caps, "cap", "a capability its chutes may have; repeat for more (set: replaces them)")
	return o
}

// maxKeyFile bounds a key file read: a .pub file is two short lines.
const maxKeyFile = 4 << 10

// apply sets in s what the flags the user gave say.
func (o *specOpts) apply(fs *flag.FlagSet, s *tenant.Spec) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil {
			return
		}
		switch f.Name {
		case "key":
			s.Keys = nil
			for _, path := range o.keys {
				raw, rerr := readSmall(path, maxKeyFile)
				if rerr != nil {
					err = rerr
					return
				}
				s.Keys = append(s.Keys, string(raw))
			}
		case "chutes":
			s.Quota.Chutes = o.chutes
		case "cpu":
			s.Quota.CPU = o.cpu
		case "memory", "disk":
			n, perr := manifest.ParseBytes(f.Value.String())
			if perr != nil {
				err = usagef("--%s: %v", f.Name, perr)
				return
			}
			if f.Name == "memory" {
				s.Quota.Memory = manifest.Bytes(n)
			} else {
				s.Quota.Disk = manifest.Bytes(n)
			}
		case "egress":
			n, perr := manifest.ParseRate(o.egress)
			if perr != nil {
				err = usagef("--egress: %v", perr)
				return
			}
			s.Quota.Egress = manifest.Rate(n)
		case "allow-unsigned":
			s.Allow.Unsigned = o.unsigned
		case "allow-follow":
			s.Allow.Follow = o.follow
		case "device":
			s.Allow.Devices = o.devices
		case "cap":
			s.Allow.Capabilities = o.caps
		}
	})
	return err
}

// readSmall reads a file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a minisign public key file", path, limit)
	}
	return raw, nil
}

func sendJSON(ctx context.Context, c *client, method, path string, q url.Values, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.call(ctx, method, path, q, bytes.NewReader(body), int64(len(body)), out)
}

func cmdDeveloperAdd(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("add", flag.ContinueOnError)
	so := addSpecFlags(fs)
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	spec := tenant.Spec{Name: ops[0]}
	if err := so.apply(fs, &spec); err != nil {
		return err
	}
	var made struct {
		Name    string `json:"name"`
		Token   string `json:"token"`
		TokenID string `json:"token_id"`
	}
	if err := sendJSON(ctx, c, "POST", "/api/v1/developers", nil, spec, &made); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "developer %s added; its token (id %s), shown only now:\n%s\n", made.Name, made.TokenID, made.Token)
	return nil
}

func cmdDeveloperSet(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("set", flag.ContinueOnError)
	so := addSpecFlags(fs)
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	path := "/api/v1/developers/" + url.PathEscape(ops[0])
	var d developerView
	if err := c.call(ctx, "GET", path, nil, nil, 0, &d); err != nil {
		return err
	}
	if err := so.apply(fs, &d.Spec); err != nil {
		return err
	}
	if err := sendJSON(ctx, c, "PUT", path, nil, d.Spec, &d); err != nil {
		return err
	}
	return printDeveloper(env.stdout, d)
}

func cmdDeveloperList(ctx context.Context, env *cliEnv, usage string, args []string) error {
	var list struct {
		Developers []tenant.Developer `json:"developers"`
	}
	if table, err := getList(ctx, env, usage, args, "/api/v1/developers", &list); !table {
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKEYS\tTOKENS\tQUOTA\tCREATED")
	for _, d := range list.Developers {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", d.Name, len(d.Keys), len(d.Tokens), quotaText(d.Quota), d.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// quotaText is a quota in one line, "-" for no bound at all.
func quotaText(q tenant.Quota) string {
	var parts []string
	if q.Chutes > 0 {
		parts = append(parts, fmt.Sprintf("chutes=%d", q.Chutes))
	}
	if q.CPU > 0 {
		parts = append(parts, fmt.Sprintf("cpu=%g", q.CPU))
	}
	if q.Memory > 0 {
		parts = append(parts, "memory="+q.Memory.String())
	}
	if q.Disk > 0 {
		parts = append(parts, "disk="+q.Disk.String())
	}
	if q.Egress > 0 {
		parts = append(parts, "egress="+q.Egress.String())
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// developerView is a developer as the API shows it, with what its chutes
// hold against its quota.
type developerView struct {
	tenant.Developer
	Used tenant.Quota `json:"used"`
}

// cmdDeveloperShow shows a developer to the operator; without a NAME, the
// developer whose token it is, itself (GET /api/v1/whoami).
func cmdDeveloperShow(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 0, 1)
	if err != nil {
		return err
	}
	var d developerView
	if len(ops) == 1 {
		if err := c.call(ctx, "GET", "/api/v1/developers/"+url.PathEscape(ops[0]), nil, nil, 0, &d); err != nil {
			return err
		}
		return printDeveloper(env.stdout, d)
	}
	var me struct {
		Actor     string         `json:"actor"`
		Developer *developerView `json:"developer"`
	}
	if err := c.call(ctx, "GET", "/api/v1/whoami", nil, nil, 0, &me); err != nil {
		return err
	}
	if me.Developer == nil {
		return usagef("this token is the %s's, not a developer's: name the developer to show", me.Actor)
	}
	return printDeveloper(env.stdout, *me.Developer)
}

func printDeveloper(w io.Writer, d developerView) error {
	fmt.Fprintf(w, "developer %s (since %s)\nquota: %s\n", d.Name, d.Created.Local().Format(time.DateTime), quotaText(d.Quota))
	fmt.Fprintf(w, "used: %s\n", usedText(d.Used, d.Quota))
	fmt.Fprintf(w, "allow: unsigned=%t follow=%t devices=%v capabilities=%v\n", d.Allow.Unsigned, d.Allow.Follow, d.Allow.Devices, d.Allow.Capabilities)
	for _, k := range d.Keys {
		fmt.Fprintf(w, "key: %s\n", k)
	}
	for _, t := range d.Tokens {
		exp := "never"
		if t.Expires != nil {
			exp = t.Expires.Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "token %s: made %s, expires %s\n", t.ID, t.Created.Local().Format(time.DateTime), exp)
	}
	return nil
}

// usedText is what is used of each quota field, as "used/limit", "-" for
// a field with no bound: "chutes=1/3 cpu=0.5/- ...".
func usedText(used, q tenant.Quota) string {
	bound := func(set bool, limit string) string {
		if !set {
			return "-"
		}
		return limit
	}
	return strings.Join([]string{
		fmt.Sprintf("chutes=%d/%s", used.Chutes, bound(q.Chutes > 0, fmt.Sprint(q.Chutes))),
		fmt.Sprintf("cpu=%g/%s", used.CPU, bound(q.CPU > 0, fmt.Sprintf("%g", q.CPU))),
		fmt.Sprintf("memory=%s/%s", used.Memory, bound(q.Memory > 0, q.Memory.String())),
		fmt.Sprintf("disk=%s/%s", used.Disk, bound(q.Disk > 0, q.Disk.String())),
		fmt.Sprintf("egress=%s/%s", used.Egress, bound(q.Egress > 0, q.Egress.String())),
	}, " ")
}

func cmdDeveloperRemove(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("remove", flag.ContinueOnError)
	withChutes := fs.Bool("remove-chutes", false, "remove the developer's chutes too (else a developer with chutes is refused)")
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	var q url.Values
	if *withChutes {
		q = url.Values{"chutes": {"remove"}}
	}
	var out struct {
		Name    string   `json:"name"`
		Changes []uint64 `json:"changes"`
	}
	if err := c.call(ctx, "DELETE", "/api/v1/developers/"+url.PathEscape(ops[0]), q, nil, 0, &out); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "developer %s removed", out.Name)
	if len(out.Changes) > 0 {
		fmt.Fprintf(env.stdout, "; its chutes are being removed (changes %v)", out.Changes)
	}
	fmt.Fprintln(env.stdout)
	return nil
}

func cmdTokenAdd(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("add", flag.ContinueOnError)
	expires := fs.Duration("expires", 0, "the token stops working after this long, e.g. 720h (default: never)")
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	req := map[string]any{}
	if *expires < 0 {
		return usagef("--expires %s: want a duration after now", *expires)
	}
	if *expires > 0 {
		req["expires"] = time.Now().Add(*expires).UTC()
	}
	var out struct {
		ID      string     `json:"id"`
		Token   string     `json:"token"`
		Expires *time.Time `json:"expires"`
	}
	if err := sendJSON(ctx, c, "POST", "/api/v1/developers/"+url.PathEscape(ops[0])+"/tokens", nil, req, &out); err != nil {
		return err
	}
	exp := "never expires"
	if out.Expires != nil {
		exp = "expires " + out.Expires.Local().Format(time.DateTime)
	}
	fmt.Fprintf(env.stdout, "token %s of %s (%s), shown only now:\n%s\n", out.ID, ops[0], exp, out.Token)
	return nil
}

func cmdTokenRevoke(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("revoke", flag.ContinueOnError)
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 2, 2)
	if err != nil {
		return err
	}
	var out map[string]string
	if err := c.call(ctx, "DELETE", "/api/v1/developers/"+url.PathEscape(ops[0])+"/tokens/"+url.PathEscape(ops[1]), nil, nil, 0, &out); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "token %s of %s revoked\n", ops[1], ops[0])
	return nil
}
