package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"paradrop/api"
	"paradrop/examples"
	"paradrop/sdn"
)

func init() {
	register("demo", command{
		summary: "run a demo gateway with a sample chute",
		run:     func(args []string) int { return runCLI(osEnv(), "demo", cmdDemo, args) },
	})
}

const demoUsage = "demo [--data DIR] [--listen ADDR] [network flags of serve]"

// cmdDemo runs the daemon on embedded defaults and installs the sample
// chute once it is up, printing where the operator finds everything.
func cmdDemo(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	opts := defaultServeOptions()
	// Its own cgroup parent too: serve removes every group under its
	// parent that is not its chute, so a demo on /paradrop would kill the
	// chutes of a gateway running beside it.
	opts.cgroups = "/paradrop-demo"
	fs.StringVar(&opts.dataDir, "data", "/var/lib/paradrop-demo", "data directory of the demo gateway")
	fs.StringVar(&opts.listen, "listen", "127.0.0.1:8080", "address of the API and web UI")
	netCfg, withNetwork := networkFlags(fs)
	if _, err := parseArgs(env, fs, demoUsage, args, 0, 0); err != nil {
		return err
	}
	if *withNetwork {
		opts.network = netCfg
	}
	opts.logf = log.New(env.stderr, "", log.LstdFlags).Printf
	opts.ready = func(addr net.Addr) {
		go func() {
			if err := demoInstall(ctx, env, opts.dataDir, opts.network, addr); err != nil {
				opts.logf("demo: %v", err)
			}
		}()
	}
	return serve(ctx, opts)
}

func demoInstall(ctx context.Context, env *cliEnv, dataDir string, network *sdn.Config, addr net.Addr) error {
	token, err := os.ReadFile(filepath.Join(dataDir, api.TokenFile))
	if err != nil {
		return err
	}
	base := "http://" + addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		base = fmt.Sprintf("http://127.0.0.1:%d", tcp.Port)
	}
	c := &client{base: base, token: strings.TrimSpace(string(token)), hc: http.DefaultClient}
	var chute struct {
		State string
	}
	err = c.call(ctx, http.MethodGet, "/api/v1/chutes/hello", nil, nil, -1, &chute)
	var apiErr *apiError
	if errors.As(err, &apiErr) && apiErr.status == http.StatusNotFound {
		pkg, err := examples.Hello()
		if err != nil {
			return err
		}
		var started struct {
			ChangeID uint64 `json:"change_id"`
		}
		if err := c.call(ctx, http.MethodPost, "/api/v1/chutes", nil, bytes.NewReader(pkg), int64(len(pkg)), &started); err != nil {
			return fmt.Errorf("install the sample chute: %w", err)
		}
		if ch, err := waitChange(ctx, env, c, started.ChangeID); err != nil || ch.Error != "" {
			if err == nil {
				err = errors.New(ch.Error)
			}
			return fmt.Errorf("install the sample chute: %w", err)
		}
	} else if err != nil {
		return err
	}
	pageHint := ", loopback only (--network=false)"
	if network != nil {
		pageHint = fmt.Sprintf(", its page: http://%s/ (from the gateway)", sdn.AddressFor(network.Subnet, 1))
	}
	fmt.Fprintf(env.stdout, `
ParaDrop demo gateway is up.
  web UI and API: %s/
  operator token: %s  (also in %s)
  sample chute:   hello (busybox httpd)%s
  try:            PARADROP_DATA=%s paradrop chute list
Press Ctrl-C to stop the daemon; chutes keep running and are re-adopted next time.
`, base, strings.TrimSpace(string(token)), filepath.Join(dataDir, api.TokenFile), pageHint, dataDir)
	return nil
}
