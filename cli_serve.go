package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"paradrop/api"
	"paradrop/chute"
	"paradrop/chute/manifest"
	"paradrop/store"
	"paradrop/webui"
)

func init() {
	register("serve", command{
		summary: "run the gateway daemon",
		run:     func(args []string) int { return runCLI(osEnv(), "serve", cmdServe, args) },
	})
}

const serveUsage = "serve [--data DIR] [--listen ADDR] [--max-upload BYTES] [--cgroup-parent PATH] [--metrics-open]"

// serveOptions configure the daemon.
type serveOptions struct {
	dataDir   string
	listen    string
	maxUpload int64
	cgroups   string // parent cgroup of the chutes
	logf      func(format string, args ...any)
	ready     func(net.Addr) // called once listening; tests learn the port of :0

	metricsOpen bool // serve /metrics without a token
}

func cmdServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	opts := serveOptions{maxUpload: 256 << 20}
	fs.StringVar(&opts.dataDir, "data", defaultDataDir, "data directory: state, chutes, operator token")
	fs.StringVar(&opts.listen, "listen", ":8080", "address of the API")
	fs.StringVar(&opts.cgroups, "cgroup-parent", "/paradrop", "cgroup holding the chutes' groups; groups under it that are not this daemon's chutes are removed")
	fs.BoolVar(&opts.metricsOpen, "metrics-open", false, "serve /metrics without a token, for a Prometheus on a trusted network")
	fs.Func("max-upload", "largest package accepted, e.g. 256Mi (default 256Mi)", func(s string) error {
		n, err := manifest.ParseBytes(s)
		if err == nil && n <= 0 {
			err = errors.New("must be more than 0")
		}
		opts.maxUpload = n
		return err
	})
	if _, err := parseArgs(env, fs, serveUsage, args, 0, 0); err != nil {
		return err
	}
	opts.logf = log.New(env.stderr, "", log.LstdFlags).Printf
	return serve(ctx, opts)
}

// serve runs the daemon until ctx ends. Chutes are left running: the
// manager re-adopts them on the next start.
func serve(ctx context.Context, opts serveOptions) error {
	if err := os.MkdirAll(opts.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	db, err := store.Open(filepath.Join(opts.dataDir, "paradrop.db"))
	if err != nil {
		return err
	}
	defer db.Close()

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
	// fails fast. Serve closes ln; the deferred Close covers early returns.
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return err
	}
	defer ln.Close()

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	mgr, err := chute.NewManager(chute.Config{
		DataDir: opts.dataDir, DB: db, Executable: exe, MaxUpload: opts.maxUpload, Logf: opts.logf,
		CgroupParent: opts.cgroups,
	})
	if err != nil {
		return fmt.Errorf("chute manager: %w", err)
	}

	mgrCtx, stopMgr := context.WithCancel(context.Background())
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Run(mgrCtx) }()
	defer func() { stopMgr(); <-mgrDone }()

	// Requests derive from reqCtx, canceled at shutdown, so that followed
	// logs and ?wait=1 calls end instead of holding Shutdown up.
	reqCtx, cancelReqs := context.WithCancel(context.Background())
	defer cancelReqs()
	// The API under /api/, the web UI everywhere else.
	mux := http.NewServeMux()
	apiHandler := api.New(api.Config{
		Chutes: mgr, DB: db, Version: buildVersion(), Started: time.Now(),
		MaxUpload: opts.maxUpload, Logf: opts.logf,
		Metrics: mgr.Metrics(), MetricsOpen: opts.metricsOpen,
	})
	mux.Handle("/api/", apiHandler)
	mux.Handle("/metrics", apiHandler)
	mux.Handle("/", webui.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
	}
	srv.RegisterOnShutdown(cancelReqs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	opts.logf("API listening on %s", ln.Addr())
	if opts.ready != nil {
		opts.ready(ln.Addr())
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
