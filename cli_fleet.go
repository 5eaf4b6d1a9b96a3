//go:build !router

package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"paradrop/chute/manifest"
	"paradrop/fleet"
	"paradrop/usp/mqttmtp"
)

func init() {
	register("fleet", command{
		summary: "run a TR-369 (USP) controller of many gateways and roll chutes out to them",
		run:     func(args []string) int { return fleetMain(osEnv(), args) },
	})
}

var fleetCommands = map[string]subcommand{
	"serve":    {"serve --broker URL --endpoint-id ID [--topic TOPIC] [--gateway ID=TOPIC]... [--listen ADDR] [--public-url URL] [--probe-every D] [--follow-gateway ID=URL,TOKEN_FILE[,FINGERPRINT]... [--follow-hold D] [--follow-every D]]", cmdFleetServe},
	"gateways": {"gateways --broker URL [--json]", cmdFleetGateways},
	"label":    {"label --broker URL GATEWAY LABEL... [--remove]", cmdFleetLabel},
}

// rolloutCommands is made when called, not at init: its pause, resume and
// abort are made by a call, which a package variable's map would run at
// every start.
func rolloutCommands() map[string]subcommand {
	return map[string]subcommand{
		"start": {"start --broker URL --package FILE --signature FILE.minisig (--targets ID,... | --label LABEL) [--id ID] [--canary N] " +
			"[--rate PER_MIN] [--factor F] [--max-rate PER_MIN] [--max-in-flight N] [--timeout D] [--abort-min N] [--abort-percent P] [--wait]", cmdRolloutStart},
		"status": {"status --broker URL [ID] [--json]", cmdRolloutStatus},
		"pause":  {"pause --broker URL ID", cmdRolloutControl(fleet.ActionPause)},
		"resume": {"resume --broker URL ID", cmdRolloutControl(fleet.ActionResume)},
		"abort":  {"abort --broker URL ID", cmdRolloutControl(fleet.ActionAbort)},
	}
}

func fleetMain(env *cliEnv, args []string) int {
	if len(args) > 0 && args[0] == "rollout" {
		return dispatch(env, "fleet rollout", rolloutCommands(), args[1:])
	}
	if len(args) == 0 || fleetCommands[args[0]].run == nil {
		// The usage lists the rollout group too, and the broker's flags
		// every command takes.
		defer fmt.Fprintln(env.stderr, "  paradrop fleet rollout start|status|pause|resume|abort ...\n"+
			"every command: [--prefix TOPIC] and, for an ssl:// --broker, [--ca FILE] [--username NAME [--password-file FILE]]")
	}
	return dispatch(env, "fleet", fleetCommands, args)
}

// stateFlags are the flags every fleet command shares: where the state
// is, and how to reach the broker.
type stateFlags struct {
	broker, prefix string
	// MQTT over TLS (an ssl:// broker), as the agents' --usp-ca,
	// --usp-username and --usp-password-file.
	ca, username, passwordFile string
	tls                        *tls.Config
	password                   string
}

func addStateFlags(env *cliEnv, fs *flag.FlagSet) *stateFlags {
	var f stateFlags
	fs.StringVar(&f.broker, "broker", env.getenv("PARADROP_FLEET_BROKER"), "MQTT broker holding the fleet's state, tcp://HOST:PORT or ssl://HOST:PORT (env PARADROP_FLEET_BROKER)")
	fs.StringVar(&f.prefix, "prefix", fleet.DefaultPrefix, "topic prefix of the fleet's state")
	fs.StringVar(&f.ca, "ca", env.getenv("PARADROP_FLEET_CA"), "PEM file of the CAs that sign an ssl:// broker's certificate, the only ones trusted (default the system's; env PARADROP_FLEET_CA)")
	fs.StringVar(&f.username, "username", env.getenv("PARADROP_FLEET_USERNAME"), "user name given to the broker (env PARADROP_FLEET_USERNAME)")
	fs.StringVar(&f.passwordFile, "password-file", env.getenv("PARADROP_FLEET_PASSWORD_FILE"), "file holding the password given to the broker (needs --username; env PARADROP_FLEET_PASSWORD_FILE)")
	return &f
}

func (f *stateFlags) check() error {
	if f.broker == "" {
		return usagef("--broker is required")
	}
	if err := mqttmtp.CheckBroker(f.broker); err != nil {
		return usagef("--broker: %v", err)
	}
	if f.ca != "" && !mqttmtp.Secure(f.broker) {
		return usagef("--ca needs an ssl:// --broker")
	}
	if f.passwordFile != "" && f.username == "" {
		return usagef("--password-file needs --username")
	}
	var err error
	if f.tls, err = brokerTLS("--ca", f.ca); err != nil {
		return err
	}
	if f.passwordFile != "" {
		if f.password, err = brokerPassword("--password-file", f.passwordFile); err != nil {
			return err
		}
	}
	for _, p := range strings.Split(f.prefix, "/") {
		if err := fleet.CheckName(p); err != nil {
			return usagef("--prefix %q: %v", f.prefix, err)
		}
	}
	return nil
}

// parseAndOpen parses a fleet command's arguments and reads the state.
func (f *stateFlags) parseAndOpen(ctx context.Context, env *cliEnv, fs *flag.FlagSet, usage string, args []string, minArgs, maxArgs int) ([]string, *fleet.Retained, error) {
	ops, err := parseArgs(env, fs, usage, args, minArgs, maxArgs)
	if err != nil {
		return nil, nil, err
	}
	if err := f.check(); err != nil {
		return nil, nil, err
	}
	st, err := f.open(ctx)
	return ops, st, err
}

// open reads the state, as a client that runs no controller.
func (f *stateFlags) open(ctx context.Context) (*fleet.Retained, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return fleet.OpenRetained(ctx, fleet.RetainedConfig{Broker: f.broker, TLS: f.tls, Username: f.username, Password: f.password,
		Prefix: f.prefix, ClientID: "paradrop-fleet-cli-" + rand.Text()[:10]})
}

func cmdFleetServe(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	sf := addStateFlags(env, fs)
	cfg := fleet.ServerConfig{Agents: map[string]string{}}
	fs.StringVar(&cfg.EndpointID, "endpoint-id", "", "the controller's USP endpoint ID, as the agents' --usp-controller names it")
	fs.StringVar(&cfg.Topic, "topic", "", "the controller's MQTT topic (default usp/controllers/ENDPOINT-ID)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8090", "address where gateways download packages")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "URL under which gateways reach --listen (default http://LISTEN)")
	fs.DurationVar(&cfg.ProbeEvery, "probe-every", time.Minute, "how often every gateway is asked its state")
	fs.Func("gateway", "a gateway known beforehand, ENDPOINT_ID=TOPIC (repeatable); others are found when they connect", func(s string) error {
		id, topic, ok := strings.Cut(s, "=")
		if !ok || fleet.CheckName(id) != nil || mqttmtp.CheckTopic(topic) != nil {
			return errors.New("want ENDPOINT_ID=TOPIC")
		}
		cfg.Agents[id] = topic
		return nil
	})
	var fo fleetFollowOptions
	fleetFollowFlags(fs, &fo)
	if _, err := parseArgs(env, fs, usage, args, 0, 0); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if cfg.EndpointID == "" {
		return usagef("--endpoint-id is required")
	}
	if cfg.ProbeEvery <= 0 {
		return usagef("--probe-every: want a positive duration")
	}
	cfg.Broker, cfg.Prefix = sf.broker, sf.prefix
	cfg.TLS, cfg.Username, cfg.Password = sf.tls, sf.username, sf.password
	logger := log.New(env.stderr, "", log.LstdFlags)
	cfg.Logf = logger.Printf
	var err error
	if cfg.Follow, err = fo.config(logger.Printf); err != nil {
		return usagef("%v", err)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	s, err := fleet.NewServer(octx, cfg)
	cancel()
	if err != nil {
		return err
	}
	logger.Printf("fleet controller %s on %s; packages at %s", cfg.EndpointID, cfg.Broker, s.URL())
	return s.Run(ctx)
}

func cmdFleetGateways(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("gateways", flag.ContinueOnError)
	sf := addStateFlags(env, fs)
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	_, st, err := sf.parseAndOpen(ctx, env, fs, usage, args, 0, 0)
	if err != nil {
		return err
	}
	defer st.Close()
	gws := st.Gateways()
	if *asJSON {
		return json.NewEncoder(env.stdout).Encode(gws)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tONLINE\tLAST SEEN\tVERSION\tCHUTES\tLABELS")
	for _, g := range gws {
		seen := "never"
		if !g.LastSeen.IsZero() {
			seen = shortDuration(time.Since(g.LastSeen)) + " ago"
		}
		var chutes []string
		for _, c := range g.Chutes {
			chutes = append(chutes, c.Name+"@"+c.Version)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\n", g.ID, g.Online, seen, dash(g.Version), dash(strings.Join(chutes, ",")), dash(strings.Join(g.Labels, ",")))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdFleetLabel(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("label", flag.ContinueOnError)
	sf := addStateFlags(env, fs)
	remove := fs.Bool("remove", false, "remove the labels rather than add them")
	ops, err := parseArgs(env, fs, usage, args, 2, 1<<10)
	if err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	for _, l := range ops[1:] {
		if err := fleet.CheckName(l); err != nil || strings.Contains(l, ",") {
			return usagef("label %q: want 1 to 128 characters, none of / + # , NUL", l)
		}
	}
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	i := slices.IndexFunc(st.Gateways(), func(g fleet.Gateway) bool { return g.ID == ops[0] })
	if i < 0 {
		return fmt.Errorf("no gateway %q (see paradrop fleet gateways)", ops[0])
	}
	g := st.Gateways()[i]
	for _, l := range ops[1:] {
		switch has := slices.Contains(g.Labels, l); {
		case *remove && has:
			g.Labels = slices.DeleteFunc(g.Labels, func(x string) bool { return x == l })
		case !*remove && !has:
			g.Labels = append(g.Labels, l)
		}
	}
	sort.Strings(g.Labels)
	return st.SaveGateway(ctx, g)
}

func cmdRolloutStart(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	sf := addStateFlags(env, fs)
	pkgPath := fs.String("package", "", "the chute package (tar or tar.gz)")
	sigPath := fs.String("signature", "", "its minisign signature (.minisig), checked by each gateway")
	targets := fs.String("targets", "", "gateway endpoint IDs, comma-separated")
	label := fs.String("label", "", "every gateway with this label")
	var spec fleet.Spec
	fs.StringVar(&spec.ID, "id", "", "the rollout's ID (default made up)")
	fs.IntVar(&spec.Canary, "canary", 1, "gateways installed first, alone; one failure aborts (0: none)")
	fs.Float64Var(&spec.BasePerMinute, "rate", 0, "installs started per minute after the canary (0: unlimited)")
	fs.Float64Var(&spec.Factor, "factor", 2, "the rate's growth each time --increase-every more gateways succeeded")
	fs.IntVar(&spec.IncreaseEvery, "increase-every", 0, "successes between rate increases (default --rate)")
	fs.Float64Var(&spec.MaxPerMinute, "max-rate", 0, "the rate's maximum per minute (0: none)")
	fs.IntVar(&spec.MaxInFlight, "max-in-flight", 100, "installs under way at most")
	fs.DurationVar(&spec.Timeout, "timeout", 5*time.Minute, "each gateway's install time at most")
	fs.IntVar(&spec.AbortMin, "abort-min", 1, "gateways that must have ended before the abort threshold applies")
	fs.Float64Var(&spec.AbortPercent, "abort-percent", 0, "abort and roll back once this percentage of ended gateways failed (0: never)")
	wait := fs.Bool("wait", false, "wait for the rollout to end, printing its progress")
	if _, err := parseArgs(env, fs, usage, args, 0, 0); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	switch {
	case *pkgPath == "" || *sigPath == "":
		return usagef("--package and --signature are required")
	case (*targets == "") == (*label == ""):
		return usagef("give either --targets or --label")
	case spec.Canary == 0:
		spec.Canary = -1
	}
	if spec.ID == "" {
		spec.ID = "r-" + time.Now().UTC().Format("20060102-150405") + "-" + strings.ToLower(rand.Text()[:4])
	}
	data, err := readBounded(*pkgPath, fleet.MaxPackage)
	if err != nil {
		return err
	}
	sig, err := readSignatureFile(*sigPath)
	if err != nil {
		return err
	}
	man, err := packageManifest(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *pkgPath, err)
	}
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if *label != "" {
		spec.Targets = st.Labelled(*label)
		if len(spec.Targets) == 0 {
			return fmt.Errorf("no gateway has the label %q", *label)
		}
	} else {
		spec.Targets = strings.Split(*targets, ",")
	}
	if spec.Package, err = st.AddPackage(ctx, man.Name, man.Version, data, sig); err != nil {
		return err
	}
	if err := st.StartRollout(ctx, spec); err != nil {
		if errors.Is(err, fleet.ErrBadSpec) {
			return usagef("%v", err)
		}
		return err
	}
	fmt.Fprintf(env.stdout, "rollout %s: %s %s to %d gateways\n", spec.ID, man.Name, man.Version, len(spec.Targets))
	if len(st.Online()) == 0 {
		fmt.Fprintln(env.stderr, "paradrop: fleet rollout start: no controller is online: it starts once one is (paradrop fleet serve)")
	}
	if !*wait {
		return nil
	}
	return waitRollout(ctx, env, st, spec.ID)
}

// waitRollout prints a rollout's counts as they change until it ends:
// exit 1 if it aborted.
func waitRollout(ctx context.Context, env *cliEnv, st *fleet.Retained, id string) error {
	last := ""
	for {
		s, _, _ := st.Rollout(id)
		if line := string(s.State) + " " + countsLine(s); line != last {
			fmt.Fprintln(env.stdout, line)
			last = line
		}
		switch s.State {
		case fleet.Completed:
			return nil
		case fleet.Aborted:
			return fmt.Errorf("rollout %s aborted: %s", id, s.Reason)
		}
		select {
		case <-st.Changed():
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func countsLine(s fleet.Status) string {
	var parts []string
	for _, k := range []fleet.GatewayState{fleet.Pending, fleet.Installing, fleet.Succeeded, fleet.Failed, fleet.TimedOut,
		fleet.Cancelled, fleet.RolledBack, fleet.RollbackFailed} {
		if n := s.Counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	return strings.Join(parts, " ")
}

// packageManifest reads and checks the chute.yaml of a package.
func packageManifest(data []byte) (*manifest.Manifest, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	var r io.Reader = br
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		r = gz
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("no chute.yaml in the package")
		}
		if err != nil {
			return nil, fmt.Errorf("not a chute package: %w", err)
		}
		if strings.TrimPrefix(h.Name, "./") != "chute.yaml" {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return nil, err
		}
		return manifest.Parse(b)
	}
}

func cmdRolloutStatus(ctx context.Context, env *cliEnv, usage string, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	sf := addStateFlags(env, fs)
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	ops, st, err := sf.parseAndOpen(ctx, env, fs, usage, args, 0, 1)
	if err != nil {
		return err
	}
	defer st.Close()
	if len(ops) == 0 {
		list := st.Rollouts()
		if *asJSON {
			return json.NewEncoder(env.stdout).Encode(list)
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLLOUT\tCHUTE\tSTATE\tGATEWAYS\tCONTROLLER")
		for _, s := range list {
			full, _, _ := st.Rollout(s.Spec.ID)
			fmt.Fprintf(tw, "%s\t%s@%s\t%s\t%s\t%s\n", s.Spec.ID, s.Spec.Package.Name, s.Spec.Package.Version, s.State, countsLine(full), dash(s.Owner))
		}
		return tw.Flush()
	}
	s, control, ok := st.Rollout(ops[0])
	if !ok {
		return fmt.Errorf("no rollout %q", ops[0])
	}
	if *asJSON {
		return json.NewEncoder(env.stdout).Encode(struct {
			fleet.Status
			Control string                  `json:"control,omitempty"`
			Results map[string]fleet.Result `json:"results"`
		}{s, control, s.Result})
	}
	fmt.Fprintf(env.stdout, "rollout %s: %s@%s, %s", s.Spec.ID, s.Spec.Package.Name, s.Spec.Package.Version, s.State)
	if s.Reason != "" {
		fmt.Fprintf(env.stdout, " (%s)", s.Reason)
	}
	fmt.Fprintf(env.stdout, ", controller %s\n%s\n", dash(s.Owner), countsLine(s))
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tSTATE\tPREVIOUS\tERROR")
	for _, gw := range s.Spec.Targets {
		r := s.Result[gw]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", gw, r.State, dash(r.Prev), dash(r.Error))
	}
	return tw.Flush()
}

func cmdRolloutControl(action string) func(context.Context, *cliEnv, string, []string) error {
	return func(ctx context.Context, env *cliEnv, usage string, args []string) error {
		fs := flag.NewFlagSet(action, flag.ContinueOnError)
		sf := addStateFlags(env, fs)
		ops, st, err := sf.parseAndOpen(ctx, env, fs, usage, args, 1, 1)
		if err != nil {
			return err
		}
		defer st.Close()
		s, _, ok := st.Rollout(ops[0])
		switch {
		case !ok:
			return fmt.Errorf("no rollout %q", ops[0])
		case s.State.Done():
			return fmt.Errorf("rollout %s has ended (%s)", ops[0], s.State)
		}
		return st.SetControl(ctx, ops[0], action)
	}
}
