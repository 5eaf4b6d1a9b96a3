package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"paradrop/api"
	"paradrop/chute"
	"paradrop/chute/archive"
	"paradrop/chute/manifest"
	"paradrop/chute/sandbox"
	"paradrop/migrate"
	"paradrop/sdn"
	"paradrop/store"
	"paradrop/tenant"
	"paradrop/webui"
)

func init() {
	register("serve", command{
		summary: "run the gateway daemon",
		run:     func(args []string) int { return runCLI(osEnv(), "serve", cmdServe, args) },
	})
}

const serveUsage = "serve [--uci FILE | [--data DIR] [--listen ADDR,...] [--max-upload BYTES] [--cgroup-parent PATH] [--memory-overcommit RATIO] [--gc-percent N] [--gateway-ports LIST] [--allow-devices LIST] [--allow-caps LIST] [--metrics-open] [--tls-cert FILE --tls-key FILE] [--trusted-keys FILE [--require-signed]] [connection limits] [network flags] [--usp-broker tcp://HOST:PORT --usp-controller ID=TOPIC[,developer=NAME]... [--usp-endpoint-id ID] [--usp-topic TOPIC] [--usp-ca FILE] [--usp-username NAME [--usp-password-file FILE]]] [--follow-peer URL,TOKEN_FILE[,FINGERPRINT]... [--follow-hold DURATION]]]"

// serveOptions configure the daemon.
type serveOptions struct {
	dataDir   string
	listen    string // comma-separated; "" is loopback and the LAN address (apiAddrs)
	maxUpload int64
	cgroups   string // parent cgroup of the chutes
	logf      func(format string, args ...any)
	ready     func(net.Addr) // called once listening; tests learn the port of :0

	metricsOpen bool // serve /metrics without a token

	overcommit float64 // of the gateway's memory by the chutes' limits
	// gcPercent is the daemon's GOGC: how far its heap grows past what
	// is live before a collection; 0 keeps the runtime's.
	gcPercent int
	// gatewayPorts are the gateway's own services; serve adds its own.
	gatewayPorts []chute.GatewayPort
	limits       api.Limits  // what clients may hold; zero fields take api.DefaultLimits
	signing      api.Signing // keys trusted to sign packages, and whether they must
	maxUnpacked  int64       // bytes all uploads being unpacked may take at once
	tls          tlsOptions  // the HTTPS listeners' certificate
	// allow are the privileges the operator's installs may ask for.
	allow chute.Privileges

	// network connects chutes through Open vSwitch; nil gives them
	// loopback only.
	network *sdn.Config
	dns     dnsOptions // the chutes' resolver, with network
	// usp is the TR-369 agent; off without a broker.
	usp uspOptions
	// follow is follow-me with trusted peers; off without any.
	follow followOptions
}

// defaultServeOptions are serve's defaults, which the demo shares.
func defaultServeOptions() serveOptions {
	ports, err := parseGatewayPorts(defaultGatewayPorts)
	if err != nil {
		panic(err) // a constant
	}
	return serveOptions{
		maxUpload: 256 << 20, maxUnpacked: 1 << 30, overcommit: chute.DefaultOvercommit, gcPercent: defaultGCPercent,
		cgroups: "/paradrop", gatewayPorts: ports,
		// The operator's own chutes may follow the household's devices.
		allow: chute.Privileges{Follow: true},
	}
}

func cmdServe(ctx context.Context, env *cliEnv, args []string) error {
	opts, err := parseServe(env, args)
	if err != nil {
		return err
	}
	opts.logf = log.New(env.stderr, "", log.LstdFlags).Printf
	return serve(ctx, opts)
}

// parseServe turns serve's command line, or the UCI file it names, into
// the daemon's options.
func parseServe(env *cliEnv, args []string) (serveOptions, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	opts := defaultServeOptions()
	fs.StringVar(&opts.dataDir, "data", defaultDataDir, "data directory: state, chutes, operator token")
	fs.Var(listenFlag{&opts.listen}, "listen", "address of the API, repeatable or comma-separated (default: 127.0.0.1:8080 and, with --lan-addr, the LAN address port 8080)")
	fs.StringVar(&opts.cgroups, "cgroup-parent", opts.cgroups, "cgroup holding the chutes' groups; groups under it that are not this daemon's chutes are removed")
	fs.BoolVar(&opts.metricsOpen, "metrics-open", false, "serve /metrics without a token, for a Prometheus on a trusted network")
	bytesFlag(fs, &opts.maxUpload, "max-upload", "largest package accepted, e.g. 256Mi (default 256Mi)")
	bytesFlag(fs, &opts.maxUnpacked, "max-unpacked", "bytes all packages being unpacked at once may take on the data filesystem, which also keeps 5% free, e.g. 1Gi (default 1Gi)")
	apiLimitFlags(fs, &opts.limits)
	tlsFlags(fs, &opts.tls)
	fs.Func("memory-overcommit", fmt.Sprintf("how many times the gateway's memory the chutes' memory limits may add up to (default %g)", chute.DefaultOvercommit), func(s string) (err error) {
		opts.overcommit, err = strconv.ParseFloat(s, 64)
		if err == nil && !(opts.overcommit > 0 && opts.overcommit <= 100) {
			err = errors.New("must be more than 0, at most 100")
		}
		return err
	})
	fs.Func("gc-percent", fmt.Sprintf("how far, in %% of its live heap, the daemon's heap may grow before Go collects garbage (GOGC; default %d: less memory, more CPU than Go's 100)", defaultGCPercent), func(s string) (err error) {
		opts.gcPercent, err = strconv.Atoi(s)
		if err == nil && !(opts.gcPercent >= 10 && opts.gcPercent <= 1000) {
			err = errors.New("must be from 10 to 1000")
		}
		return err
	})
	gatewayPortsFlag(fs, &opts.gatewayPorts)
	allowFlags(fs, &opts.allow)
	signingFlags(fs, &opts.signing)
	netCfg, withNetwork := networkFlags(fs)
	dnsFlags(fs, &opts.dns)
	uspFlags(fs, &opts.usp)
	followFlags(fs, &opts.follow)
	uciFile := fs.String("uci", "", "read every other flag from this UCI file's 'config paradrop' section (OpenWrt's /etc/config/paradrop), options named as the flags with _ for -")
	if _, err := parseArgs(env, fs, serveUsage, args, 0, 0); err != nil {
		return opts, err
	}
	if *uciFile != "" {
		if err := setFromUCI(fs, *uciFile); err != nil {
			return opts, err
		}
	}
	if err := checkLimits(opts.limits); err != nil {
		return opts, usagef("%v", err)
	}
	if err := opts.tls.check(); err != nil {
		return opts, err
	}
	if err := checkSigning(opts.signing); err != nil {
		return opts, usagef("%v", err)
	}
	if err := opts.usp.check(); err != nil {
		return opts, usagef("%v", err)
	}
	if err := opts.follow.check(*withNetwork); err != nil {
		return opts, usagef("%v", err)
	}
	if *withNetwork {
		opts.network = netCfg
	}
	return opts, nil
}

// serve runs the daemon until ctx ends. Chutes are left running: the
// manager re-adopts them on the next start.
func serve(ctx context.Context, opts serveOptions) error {
	// Flags are checked before anything is made.
	addrs, lan, err := apiAddrs(opts.listen, opts.network)
	if err != nil {
		return err
	}
	if opts.gcPercent > 0 {
		debug.SetGCPercent(opts.gcPercent)
	}
	if err := os.MkdirAll(opts.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	db, err := store.Open(filepath.Join(opts.dataDir, "paradrop.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	// Once this daemon owns the data directory (a second one refused
	// above says only that), and before OVS or any shim is started, so
	// that they inherit it: out of memory, the kernel takes a chute, not
	// the gateway's supervisor.
	if err := sandbox.ProtectFromOOM(); err != nil {
		opts.logf("keeping the daemon's OOM score, chutes get theirs raised instead: %v", err)
	}

	tokenPath, created, err := api.EnsureOperatorToken(db, opts.dataDir)
	if err != nil {
		return err
	}
	switch _, statErr := os.Stat(tokenPath); {
	case created:
		opts.logf("created operator token in %s", tokenPath)
	case statErr != nil:
		opts.logf("operator token file %s is missing; the token stays valid (it is never rotated automatically)", tokenPath)
	default:
		opts.logf("operator token in %s", tokenPath)
	}

	// Listen before the manager touches any chute, so that a busy port
	// fails fast. Serve closes them; the deferred Close covers early returns.
	lns, err := listenAPI(ctx, addrs, lan)
	if err != nil {
		return err
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	tenants := tenant.New(db)
	mgrCfg := chute.Config{
		DataDir: opts.dataDir, DB: db, Executable: exe, MaxUpload: opts.maxUpload, Logf: opts.logf,
		CgroupParent: opts.cgroups, MemoryOvercommit: opts.overcommit, Unpack: archive.NewSpace(opts.dataDir, opts.maxUnpacked),
		GatewayPorts: ownPorts(opts.gatewayPorts, listenerAddrs(lns), ""), Allow: opts.allow,
		Quota: developerQuota(tenants), Reopen: migrate.Reopen,
	}
	apiCfg := api.Config{
		DB: db, Version: buildVersion(), Started: time.Now(),
		MaxUpload: opts.maxUpload, Logf: opts.logf, MetricsOpen: opts.metricsOpen, Limits: opts.limits,
		Signing: opts.signing,
	}
	if opts.network != nil {
		apiCfg.LANAddr = opts.network.LANAddr.Addr()
	}
	if len(opts.signing.Keys) > 0 {
		opts.logf("packages signed by %s are trusted (signature required: %t)", keyIDs(opts.signing.Keys), opts.signing.Required)
	}
	var chuteLns []net.Listener // the chutes' API on their network, IPv4 then IPv6
	if opts.network != nil {
		cfg := *opts.network
		cfg.DataDir, cfg.Logf = opts.dataDir, opts.logf
		n, err := sdn.Open(ctx, cfg)
		if err != nil {
			return fmt.Errorf("chute network (--network=false runs chutes with loopback only): %w", err)
		}
		defer n.Close(context.Background())
		mgrCfg.Network, mgrCfg.Subnet, mgrCfg.Subnet6, mgrCfg.Global6, apiCfg.Network = n, cfg.Subnet, n.Subnet6(), n.Global6(), n
		if chuteLns, err = listenChuteAPI(n, cfg.APIPort); err != nil {
			return err
		}
		defer closeAll(chuteLns)
		mgrCfg.GatewayPorts = ownPorts(opts.gatewayPorts, listenerAddrs(withListeners(lns, chuteLns)), cfg.Controller)
		defer serveChuteDNS(n, opts.dns, opts.logf)()
		opts.logf("chute network: bridge %s, chutes in %s and %s", cfg.Bridge, cfg.Subnet, n.Subnet6())
		if g := n.Global6(); g.IsValid() {
			opts.logf("chute network: chutes' global IPv6 in %s, to the WAN %q from it (routed)", g, cfg.WAN)
		}
	}
	// The certificate names the chutes' API's address too.
	cert, err := apiCertificate(opts.tls, opts.dataDir, withListeners(lns, chuteLns), opts.logf)
	if err != nil {
		return err
	}
	if cert != nil {
		apiCfg.TLSFingerprint = cert.Fingerprint.String()
	}
	mgrCfg.NetworkAPI = networkAPI(chuteLns, cert)
	// Set below, once the API exists, before the manager's Run starts a
	// chute.
	var serveChute func(string, net.Listener) io.Closer
	mgrCfg.ServeAPI = func(name string, ln net.Listener) io.Closer { return serveChute(name, ln) }
	mgr, err := chute.NewManager(mgrCfg)
	if err != nil {
		return err // it names itself
	}

	// Requests derive from reqCtx, canceled at shutdown, so that followed
	// logs and ?wait=1 calls end instead of holding Shutdown up.
	reqCtx, cancelReqs := context.WithCancel(context.Background())
	defer cancelReqs()
	// The API under /api/, the web UI everywhere else.
	mux := http.NewServeMux()
	apiCfg.Chutes, apiCfg.Metrics = mgr, mgr.Metrics()
	apiHandler := api.New(apiCfg)
	mux.Handle("/api/", apiHandler)
	mux.Handle("/metrics", apiHandler)
	mux.Handle("/", webui.Handler())
	srv := api.NewServer(reqCtx, mux, opts.limits)
	srv.RegisterOnShutdown(cancelReqs)
	// Each running chute's /paradrop/api.sock: the API under the same
	// limits, to that chute alone.
	serveChute = func(name string, ln net.Listener) io.Closer {
		s := api.NewServer(reqCtx, api.ForChute(apiHandler, name, mgr), opts.limits)
		go s.Serve(ln)
		return s
	}

	if len(chuteLns) > 0 {
		chuteSrv := api.NewServer(reqCtx, api.ForChuteNetwork(apiHandler, mgr), opts.limits)
		for _, ln := range chuteLns {
			go chuteSrv.ServeTLS(ln, cert.TLS)
			opts.logf("API for chutes listening on %s (HTTPS, chute tokens only)", ln.Addr())
		}
		srv.RegisterOnShutdown(func() { chuteSrv.Close() })
		defer chuteSrv.Close()
	}

	origin := func(developer string, actor chute.Actor) (chute.Origin, error) {
		return tenants.Origin(developer, actor, opts.signing)
	}
	startUSP, err := newUSP(opts.usp, opts.dataDir, db, mgr, origin, opts.maxUpload, opts.logf)
	if err != nil {
		return err
	}
	mgrCtx, stopMgr := context.WithCancel(context.Background())
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Run(mgrCtx) }()
	defer func() { stopMgr(); <-mgrDone }()
	defer startUSP()()
	defer startFollow(opts.follow, mgr, opts.logf)()

	served := serveAPI(srv, lns, cert)
	for _, ln := range lns {
		opts.logf("API listening on %s", listenLog(ln))
	}
	if opts.ready != nil {
		opts.ready(lns[0].Addr())
	}

	select {
	case err = <-served:
		return fmt.Errorf("serve API: %w", err)
	case err = <-mgrDone:
		mgrDone <- err // for the deferred wait
		srv.Close()
		return fmt.Errorf("chute manager: %w", err)
	case <-ctx.Done():
	}
	opts.logf("shutting down; chutes keep running")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
		return fmt.Errorf("shut down API: %w", err)
	}
	return nil
}

// defaultGCPercent is the daemon's GOGC. Its heap is small (5 MiB live
// with 30 chutes) and its garbage steady (the sampler's, every second):
// at Go's 100 the heap doubled that; at 50 its private memory is about
// 2 MiB less with 30 chutes, for about 0.2% of a core more (twice the
// collections). A soft memory limit (debug.SetMemoryLimit) is not used:
// once what is live nears it the collector may take half the CPU, all of
// a small box's.
const defaultGCPercent = 50

// version is set at link time (the Makefile passes -X main.version=...).
var version string

// buildVersion names the build: the linked-in version, else the module
// version or the VCS revision Go stamped into the binary.
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 && (v == "" || v == "(devel)") {
			v = s.Value[:12]
		}
	}
	return v
}

// bytesFlag defines a flag of a positive size such as 256Mi.
func bytesFlag(fs *flag.FlagSet, v *int64, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		n, err := manifest.ParseBytes(s)
		if err == nil && n <= 0 {
			err = errors.New("must be more than 0")
		}
		*v = n
		return err
	})
}

// networkFlags defines the chute network's flags on fs. The defaults keep
// every chute packet on the host: no LAN ports and no WAN until the operator
// names them.
func networkFlags(fs *flag.FlagSet) (*sdn.Config, *bool) {
	cfg := &sdn.Config{Bridge: sdn.DefaultBridge, Controller: sdn.DefaultController, Subnet: sdn.DefaultSubnet}
	on := fs.Bool("network", true, "connect chutes through Open vSwitch (false: loopback only)")
	fs.StringVar(&cfg.OVSDB, "ovsdb", "", "OVSDB of the Open vSwitch to use (default: the system's if it runs, else our own under DATA/ovs)")
	fs.StringVar(&cfg.Bridge, "bridge", cfg.Bridge, "the chutes' bridge")
	fs.StringVar(&cfg.Controller, "controller", cfg.Controller, "listen address of the OpenFlow controller")
	fs.IntVar(&cfg.APIPort, "chute-api-port", defaultChuteAPIPort, "TCP port of the API for chutes at the gateway's address on the chute network, HTTPS, chute tokens only (0: none; chutes keep /paradrop/api.sock)")
	fs.StringVar(&cfg.WAN, "wan", "", "uplink interface chute traffic may leave by: IPv4 masqueraded, IPv6 from --prefix6 routed (default: none)")
	fs.Func("subnet", "chute subnet; the gateway takes .1 (default "+sdn.DefaultSubnet.String()+")", func(s string) (err error) {
		cfg.Subnet, err = netip.ParsePrefix(s)
		return err
	})
	fs.Func("subnet6", "chutes' IPv6 /64; the gateway takes ::1, a chute the host index of its IPv4 address (default: a unique local prefix derived from the machine id, the datapath id and --subnet)", func(s string) (err error) {
		cfg.Subnet6, err = netip.ParsePrefix(s)
		return err
	})
	fs.Func("prefix6", "IPv6 prefix delegated to the gateway (a /64 or shorter, e.g. a /56 from the ISP): chutes get a global address in its first /64 beside their ULA, and with --wan those with wan reach the WAN over IPv6 from it, routed without NAT (default: none)", func(s string) (err error) {
		cfg.Prefix6, err = netip.ParsePrefix(s)
		return err
	})
	fs.Func("lan", "interface on the LAN side, added to the bridge (repeatable)", func(s string) error {
		cfg.LANPorts = append(cfg.LANPorts, s)
		return nil
	})
	fs.Func("lan-host", "MAC=INTERFACE: the LAN port of a LAN host, instead of the one learned from its ARP (repeatable)", func(s string) error {
		mac, port, ok := strings.Cut(s, "=")
		hw, err := net.ParseMAC(mac)
		if !ok || err != nil || len(hw) != 6 || port == "" {
			return fmt.Errorf("%q is not MAC=INTERFACE", s)
		}
		if cfg.LANHosts == nil {
			cfg.LANHosts = map[string]string{}
		}
		cfg.LANHosts[hw.String()] = port
		return nil
	})
	fs.Func("lan-addr", "the gateway's address on the LAN, e.g. 192.168.1.1/24", func(s string) (err error) {
		cfg.LANAddr, err = netip.ParsePrefix(s)
		return err
	})
	fs.Func("lan-addr6", "the gateway's IPv6 address on the LAN with its prefix, e.g. fd00:1::1/64: LAN users reach exposed chute ports at it, and chutes may redirect IPv6 addresses (default: none, IPv4 only)", func(s string) (err error) {
		cfg.LANAddr6, err = netip.ParsePrefix(s)
		return err
	})
	return cfg, on
}

// developerQuota gives the chute manager the quota the operator set for a
// developer. A developer deleted with chutes left has none: the operator
// now manages them.
func developerQuota(reg *tenant.Registry) func(chute.Owner) (chute.Quota, error) {
	return func(o chute.Owner) (chute.Quota, error) {
		d, err := reg.Get(string(o))
		if errors.Is(err, tenant.ErrNotFound) {
			return chute.Quota{}, nil
		}
		if err != nil {
			return chute.Quota{}, err
		}
		q := d.Quota
		return chute.Quota{Chutes: q.Chutes, CPU: q.CPU, Memory: int64(q.Memory), Disk: int64(q.Disk), Egress: uint64(q.Egress)}, nil
	}
}
