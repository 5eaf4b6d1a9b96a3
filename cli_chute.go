package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"paradrop/chute"
)

func init() {
	register("chute", command{
		summary: "install, update, start, stop, remove chutes and read their logs",
		run:     func(args []string) int { return chuteMain(osEnv(), args) },
	})
	register("changes", command{
		summary: "show the history of changes, or one change",
		run:     func(args []string) int { return changesMain(osEnv(), args) },
	})
}

type subcommand struct {
	usage string // synopsis after "paradrop chute "
	run   func(ctx context.Context, env *cliEnv, usage string, args []string) error
}

var chuteCommands = map[string]subcommand{
	"install": {"install PKG [--signature FILE.minisig | --sign KEY.sec] [--no-wait]", cmdInstall},
	"update":  {"update NAME PKG [--signature FILE.minisig | --sign KEY.sec] [--force] [--no-wait]", cmdUpdate},
	"list":    {"list [--json]", cmdList},
	"info":    {"info NAME", cmdInfo},
	"start":   {"start NAME [--no-wait]", cmdAction("start")},
	"stop":    {"stop NAME [--no-wait]", cmdAction("stop")},
	"restart": {"restart NAME [--no-wait]", cmdAction("restart")},
	"remove":  {"remove NAME [--keep-data] [--yes] [--no-wait]", cmdRemove},
	"logs":    {"logs NAME [-n LINES] [-f]", cmdLogs},
}

// pollInterval is how often a waiting command asks for its change's news.
var pollInterval = 200 * time.Millisecond

func chuteMain(env *cliEnv, args []string) int {
	return dispatch(env, "chute", chuteCommands, args)
}

// dispatch runs the subcommand of group that args name, or prints the
// group's usage.
func dispatch(env *cliEnv, group string, cmds map[string]subcommand, args []string) int {
	if len(args) > 0 {
		if sub, ok := cmds[args[0]]; ok {
			run := func(ctx context.Context, env *cliEnv, args []string) error {
				return sub.run(ctx, env, group+" "+sub.usage, args)
			}
			return runCLI(env, args[0], run, args[1:])
		}
		if args[0] != "help" && args[0] != "-h" && args[0] != "--help" {
			fmt.Fprintf(env.stderr, "paradrop: %s: unknown subcommand %q\n", group, args[0])
		}
	}
	fmt.Fprintln(env.stderr, "usage:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(env.stderr, "  paradrop %s %s\n", group, cmds[n].usage)
	}
	return 2
}

func changesMain(env *cliEnv, args []string) int {
	run := func(ctx context.Context, env *cliEnv, args []string) error {
		return cmdChanges(ctx, env, "changes [ID] [--json]", args)
	}
	return runCLI(env, "changes", run, args)
}

// queued is the daemon's answer to a change-making call.
type queued struct {
	ChangeID uint64 `json:"change_id"`
	Chute    string `json:"chute"`
}

func cmdInstall(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	noWait := fs.Bool("no-wait", false, "return once the change is queued")
	sig := addSignFlags(fs)
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	q, err := upload(ctx, env, c, "POST", "/api/v1/chutes", nil, ops[0], sig)
	if err != nil {
		return err
	}
	return follow(ctx, env, c, q, *noWait, "installed")
}

func cmdUpdate(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	noWait := fs.Bool("no-wait", false, "return once the change is queued")
	sig := addSignFlags(fs)
	force := fs.Bool("force", false, "update even to the version already installed")
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 2, 2)
	if err != nil {
		return err
	}
	var params url.Values
	if *force {
		params = url.Values{"force": {"1"}}
	}
	q, err := upload(ctx, env, c, "PUT", "/api/v1/chutes/"+url.PathEscape(ops[0]), params, ops[1], sig)
	if err != nil {
		return err
	}
	return follow(ctx, env, c, q, *noWait, "updated")
}

// upload sends the package file at path as the request body, or with the
// signature sign gives as a multipart form, showing progress on a terminal.
func upload(ctx context.Context, env *cliEnv, c *client, method, apiPath string, params url.Values, path string, sign *signFlags) (queued, error) {
	f, err := os.Open(path)
	if err != nil {
		return queued{}, err
	}
	defer f.Close()
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	var body io.Reader = f
	var ctype string
	sig, err := sign.signature(f)
	if err != nil {
		return queued{}, err
	}
	if sig != nil {
		if body, size, ctype, err = signedForm(f, path, size, sig); err != nil {
			return queued{}, err
		}
	}
	p := &progress{r: body, w: env.stderr, tty: env.stderrTTY, total: size, contentType: ctype}
	var q queued
	err = c.call(ctx, method, apiPath, params, p, size, &q)
	p.done(err == nil)
	return q, err
}

// progress counts the bytes of an upload. On a terminal it redraws one
// line as they go; elsewhere it says only the total, once, so that logs
// are not filled with progress.
type progress struct {
	r     io.Reader
	w     io.Writer
	tty   bool
	total int64
	sent  int64
	drawn time.Time

	contentType string // of the body; "" for a raw package
}

// ContentType tells client.open the body's type.
func (p *progress) ContentType() string { return p.contentType }

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.sent += int64(n)
	if p.tty && time.Since(p.drawn) >= 100*time.Millisecond {
		p.draw()
	}
	return n, err
}

func (p *progress) draw() {
	p.drawn = time.Now()
	if p.total > 0 {
		fmt.Fprintf(p.w, "\ruploading %s / %s (%d%%)  ", humanBytes(p.sent), humanBytes(p.total), p.sent*100/p.total)
	} else {
		fmt.Fprintf(p.w, "\ruploading %s  ", humanBytes(p.sent))
	}
}

func (p *progress) done(ok bool) {
	switch {
	case p.tty:
		p.draw()
		fmt.Fprintln(p.w)
	case ok:
		fmt.Fprintf(p.w, "uploaded %s\n", humanBytes(p.sent))
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// follow waits for a queued change unless told not to, printing its steps
// as they come; a failed change is the command's error.
func follow(ctx context.Context, env *cliEnv, c *client, q queued, noWait bool, verb string) error {
	if noWait {
		fmt.Fprintf(env.stdout, "change %d queued for %s\n", q.ChangeID, q.Chute)
		return nil
	}
	ch, err := waitChange(ctx, env, c, q.ChangeID)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s %s (change %d)\n", q.Chute, verb, ch.ID)
	return nil
}

func waitChange(ctx context.Context, env *cliEnv, c *client, id uint64) (chute.Change, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	path := "/api/v1/changes/" + strconv.FormatUint(id, 10)
	printed := 0
	for {
		var ch chute.Change
		if err := c.call(ctx, "GET", path, nil, nil, 0, &ch); err != nil {
			if ctx.Err() != nil {
				return ch, fmt.Errorf("stopped waiting; change %d goes on (see paradrop changes %d)", id, id)
			}
			return ch, err
		}
		for _, s := range ch.Steps[min(printed, len(ch.Steps)):] {
			fmt.Fprintf(env.stdout, "  %s\n", s.Message)
		}
		printed = len(ch.Steps)
		if ch.Done() {
			if ch.State == chute.ChangeError {
				if ch.Error == "" {
					return ch, fmt.Errorf("change %d failed", id)
				}
				return ch, errors.New(ch.Error)
			}
			return ch, nil
		}
		select {
		case <-ctx.Done():
			return ch, fmt.Errorf("stopped waiting; change %d goes on (see paradrop changes %d)", id, id)
		case <-tick.C:
		}
	}
}

func cmdAction(action string) func(context.Context, *cliEnv, string, []string) error {
	verbs := map[string]string{"start": "started", "stop": "stopped", "restart": "restarted"}
	return func(ctx context.Context, env *cliEnv, usage string, args []string) error {
		fs := flag.NewFlagSet(action, flag.ContinueOnError)
		noWait := fs.Bool("no-wait", false, "return once the change is queued")
		co := addClientFlags(fs)
		ops, c, err := co.parseArgs(env, fs, usage, args, 1, 1)
		if err != nil {
			return err
		}
		var q queued
		if err := c.call(ctx, "POST", "/api/v1/chutes/"+url.PathEscape(ops[0])+"/"+action, nil, nil, 0, &q); err != nil {
			return err
		}
		return follow(ctx, env, c, q, *noWait, verbs[action])
	}
}

func cmdRemove(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("remove", flag.ContinueOnError)
	noWait := fs.Bool("no-wait", false, "return once the change is queued")
	keep := fs.Bool("keep-data", false, "keep the chute's /data for a later install")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	co := addClientFlags(fs)
	ops, err := parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	name := ops[0]
	if !*yes {
		what := "remove chute " + name + " and delete its data"
		if *keep {
			what = "remove chute " + name + " (keeping its data)"
		}
		if !env.stdinTTY {
			return usagef("not a terminal, so cannot ask: pass --yes to %s", what)
		}
		fmt.Fprintf(env.stderr, "%s? [y/N] ", what)
		answer, _ := bufio.NewReader(env.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return errors.New("not removed")
		}
	}
	c, err := co.client(env)
	if err != nil {
		return err
	}
	var params url.Values
	if *keep {
		params = url.Values{"keep_data": {"1"}}
	}
	var q queued
	if err := c.call(ctx, "DELETE", "/api/v1/chutes/"+url.PathEscape(name), params, nil, 0, &q); err != nil {
		return err
	}
	return follow(ctx, env, c, q, *noWait, "removed")
}

// getList serves a list command that takes --json: it GETs path and
// prints the daemon's JSON itself, or decodes it into v and returns true
// for the caller to print it as a table.
func getList(ctx context.Context, env *cliEnv, usage string, args []string, path string, v any) (bool, error) {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the daemon's JSON, for scripts")
	co := addClientFlags(fs)
	_, c, err := co.parseArgs(env, fs, usage, args, 0, 0)
	if err != nil {
		return false, err
	}
	var raw json.RawMessage
	if err := c.call(ctx, "GET", path, nil, nil, 0, &raw); err != nil {
		return false, err
	}
	if *asJSON {
		return false, printJSON(env.stdout, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("bad answer: %w", err)
	}
	return true, nil
}

func cmdList(ctx context.Context, env *cliEnv, usage string, args []string) error {
	var list struct {
		Chutes []chute.Info `json:"chutes"`
	}
	if table, err := getList(ctx, env, usage, args, "/api/v1/chutes", &list); !table {
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSTATE\tPID\tRESTARTS\tUPTIME\tOWNER")
	for _, ch := range list.Chutes {
		pid, up := "-", "-"
		if ch.Pid != 0 {
			pid = strconv.Itoa(ch.Pid)
		}
		if ch.State == chute.Running && ch.StartedAt != nil {
			up = shortDuration(time.Since(*ch.StartedAt))
		}
		owner := "operator"
		if ch.Owner != "" {
			owner = "developer:" + string(ch.Owner)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", ch.Name, ch.Version, ch.State, pid, ch.Restarts, up, owner)
	}
	return tw.Flush()
}

// shortDuration prints the two largest units: 45s, 12m3s, 3h4m, 2d5h.
func shortDuration(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", max(s, 0))
	case s < 3600:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	}
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	out, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

func cmdInfo(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	co := addClientFlags(fs)
	ops, c, err := co.parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.call(ctx, "GET", "/api/v1/chutes/"+url.PathEscape(ops[0]), nil, nil, 0, &raw); err != nil {
		return err
	}
	return printJSON(env.stdout, raw)
}

func cmdLogs(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	lines := fs.Int("n", 100, "number of lines to show from the end")
	follow := fs.Bool("f", false, "keep printing new lines until ^C")
	co := addClientFlags(fs)
	ops, err := parseArgs(env, fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	if *lines < 0 {
		return usagef("-n %d: want a number of lines, 0 or more", *lines)
	}
	c, err := co.client(env)
	if err != nil {
		return err
	}
	params := url.Values{"tail": {strconv.Itoa(*lines)}}
	if *follow {
		params.Set("follow", "1")
	}
	resp, err := c.open(ctx, "GET", "/api/v1/chutes/"+url.PathEscape(ops[0])+"/logs", params, nil, 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(env.stdout, resp.Body); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading logs: %w", err)
	}
	if !*follow || ctx.Err() != nil {
		return nil // ^C is how a follower stops
	}
	// The daemon ended the follow: the chute was removed, the token
	// revoked or expired, or the daemon stopped. Say which.
	var in chute.Info
	if err := c.call(ctx, "GET", "/api/v1/chutes/"+url.PathEscape(ops[0]), nil, nil, 0, &in); err != nil {
		return fmt.Errorf("the log ended: %w", err)
	}
	return errors.New("the log ended: the daemon closed it")
}

func cmdChanges(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("changes", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the daemon's JSON, for scripts")
	co := addClientFlags(fs)
	ops, err := parseArgs(env, fs, usage, args, 0, 1)
	if err != nil {
		return err
	}
	path := "/api/v1/changes"
	if len(ops) == 1 {
		id, err := strconv.ParseUint(ops[0], 10, 64)
		if err != nil || id == 0 {
			return usagef("change id %q: want a positive number", ops[0])
		}
		path += "/" + ops[0]
	}
	c, err := co.client(env)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.call(ctx, "GET", path, nil, nil, 0, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, raw)
	}
	if len(ops) == 1 {
		var ch chute.Change
		if err := json.Unmarshal(raw, &ch); err != nil {
			return fmt.Errorf("bad answer: %w", err)
		}
		fmt.Fprintf(env.stdout, "change %d: %s %s: %s\n", ch.ID, ch.Action, ch.Chute, ch.State)
		if ch.Actor != "" {
			fmt.Fprintf(env.stdout, "by %s\n", ch.Actor)
		}
		for _, s := range ch.Steps {
			fmt.Fprintf(env.stdout, "  %s  %s\n", s.Time.Local().Format(time.TimeOnly), s.Message)
		}
		if ch.Error != "" {
			fmt.Fprintf(env.stdout, "error: %s\n", ch.Error)
		}
		return nil
	}
	var list struct {
		Changes []chute.Change `json:"changes"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCHUTE\tACTION\tACTOR\tSTATE\tCREATED\tERROR")
	for _, ch := range list.Changes {
		actor := string(ch.Actor)
		if actor == "" {
			actor = "-" // a change recorded before changes named their actor
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ch.ID, ch.Chute, ch.Action, actor, ch.State,
			ch.Created.Local().Format(time.DateTime), ch.Error)
	}
	return tw.Flush()
}
