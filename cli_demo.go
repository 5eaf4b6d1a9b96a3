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
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"paradrop/api"
	"paradrop/examples"
	"paradrop/examples/lan"
	"paradrop/examples/sensor"
	"paradrop/sdn"
)

func init() {
	register("demo", command{
		summary: "run a demo gateway with simulated LAN sensors and sample chutes",
		run:     func(args []string) int { return runCLI(osEnv(), "demo", cmdDemo, args) },
	})
}

const demoUsage = "demo [--data DIR] [--listen ADDR] [--sensors N] [network flags of serve]"

// demoLANAddr is the demo gateway's LAN address unless --lan-addr says
// otherwise: TEST-NET-2, which no real network uses (lan refuses one
// that the machine routes already).
var demoLANAddr = netip.MustParsePrefix("198.51.100.1/24")

// envSensePort is EnvSense's port on the gateway, as its chute.yaml
// exposes it: its page, its API and where its sensors report.
const envSensePort = 8002

// demoSensors are the simulated sensors' clocks: one right, the others
// off by up to half a minute and drifting, as cheap sensors' are.
var demoSensors = []sensor.Config{
	{ID: "s1", Skew: 0, DriftPPM: 20},
	{ID: "s2", Skew: 30 * time.Second, DriftPPM: 150},
	{ID: "s3", Skew: -12 * time.Second, DriftPPM: -80},
	{ID: "s4", Skew: 4 * time.Second, DriftPPM: 0},
	{ID: "s5", Skew: -3 * time.Second, DriftPPM: 300},
	{ID: "s6", Skew: 7 * time.Second, DriftPPM: -40},
}

// cmdDemo runs the daemon on embedded defaults with a LAN of simulated
// sensors, installs the sample chutes once it is up and prints where the
// operator finds everything. Ctrl-C removes the LAN.
func cmdDemo(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	opts := defaultServeOptions()
	// Its own cgroup parent too: serve removes every group under its
	// parent that is not its chute, so a demo on /paradrop would kill the
	// chutes of a gateway running beside it.
	opts.cgroups = "/paradrop-demo"
	fs.StringVar(&opts.dataDir, "data", "/var/lib/paradrop-demo", "data directory of the demo gateway")
	fs.StringVar(&opts.listen, "listen", "127.0.0.1:8080", "address of the API and web UI")
	nSensors := fs.Int("sensors", 4, fmt.Sprintf("simulated sensors on the LAN, 0 to %d (needs --network)", len(demoSensors)))
	netCfg, withNetwork := networkFlags(fs)
	if _, err := parseArgs(env, fs, demoUsage, args, 0, 0); err != nil {
		return err
	}
	if *nSensors < 0 || *nSensors > len(demoSensors) {
		return usagef("--sensors: want 0 to %d", len(demoSensors))
	}
	if !*withNetwork {
		*nSensors = 0
	} else {
		opts.network = netCfg
	}
	opts.logf = log.New(env.stderr, "", log.LstdFlags).Printf
	return runDemo(ctx, env, opts, *nSensors)
}

// runDemo runs the demo gateway with sensors simulated sensors (0 with no
// network) until ctx is done; the LAN it made is gone when it returns.
func runDemo(ctx context.Context, env *cliEnv, opts serveOptions, sensors int) error {
	var devices []*lan.Device
	if sensors > 0 {
		netCfg := opts.network
		if !netCfg.LANAddr.IsValid() {
			netCfg.LANAddr = demoLANAddr
		}
		l := lan.New(filepath.Join(opts.dataDir, "lan"), netCfg.NetNS, netCfg.LANAddr)
		defer func() {
			if err := l.Close(); err != nil {
				opts.logf("demo: remove the LAN: %v", err)
			}
		}()
		var err error
		if devices, err = demoLAN(l, netCfg.LANAddr, sensors); err != nil {
			return fmt.Errorf("%w (--lan-addr sets the demo's LAN)", err)
		}
		netCfg.LANPorts = append(netCfg.LANPorts, l.Ports()...)
		report := "http://" + netip.AddrPortFrom(netCfg.LANAddr.Addr(), envSensePort).String() + "/api/report"
		sensorCtx, stop := context.WithCancel(ctx)
		var running sync.WaitGroup
		// Deferred after the LAN's removal, so run before it.
		defer running.Wait()
		defer stop()
		for i, d := range devices {
			cfg := demoSensors[i]
			cfg.Seed = uint64(i + 1)
			cfg.Mode = sensor.ModeFile(filepath.Join(opts.dataDir, "lan", cfg.ID+".mode"))
			running.Go(func() { sensor.Run(sensorCtx, cfg, sensor.Poster(d.HTTPClient(5*time.Second), report)) })
		}
	}
	ready := opts.ready
	opts.ready = func(addr net.Addr) {
		if ready != nil {
			ready(addr)
		}
		go func() {
			if err := demoInstall(ctx, env, opts.dataDir, opts.network, devices, addr); err != nil {
				opts.logf("demo: %v", err)
			}
		}()
	}
	return serve(ctx, opts)
}

// demoLAN adds n sensors to l, at .11 and up of the gateway's LAN.
func demoLAN(l *lan.LAN, gw netip.Prefix, n int) ([]*lan.Device, error) {
	var devices []*lan.Device
	addr := gw.Masked().Addr()
	for range 10 {
		addr = addr.Next()
	}
	for _, s := range demoSensors[:n] {
		addr = addr.Next()
		d, err := l.Add("sensor-"+s.ID, "pdlan-"+s.ID, addr)
		if err != nil {
			return nil, err
		}
		devices = append(devices, d)
	}
	return devices, nil
}

func demoInstall(ctx context.Context, env *cliEnv, dataDir string, network *sdn.Config, sensors []*lan.Device, addr net.Addr) error {
	token, err := os.ReadFile(filepath.Join(dataDir, api.TokenFile))
	if err != nil {
		return err
	}
	base := "http://" + addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		base = fmt.Sprintf("http://127.0.0.1:%d", tcp.Port)
	}
	c := &client{base: base, token: strings.TrimSpace(string(token)), hc: http.DefaultClient}
	helloIP, err := demoChute(ctx, env, c, "hello", func(context.Context) ([]byte, error) { return examples.Hello() })
	if err != nil {
		return err
	}
	var envSense string
	if len(sensors) > 0 {
		cache := examples.CacheDir()
		fmt.Fprintf(env.stdout, "demo: installing EnvSense (its image is Debian's python3, from apt or %s)\n", cache)
		ip, err := demoChute(ctx, env, c, "envsense", func(ctx context.Context) ([]byte, error) { return examples.EnvSense(ctx, cache) })
		if ctx.Err() != nil {
			return err
		}
		var ids []string
		for _, d := range sensors {
			ids = append(ids, fmt.Sprintf("%s %s", strings.TrimPrefix(d.Name, "sensor-"), d.Addr))
		}
		envSense = fmt.Sprintf(`  EnvSense:       http://%s/ (from the gateway), http://%s/ (from the LAN)
  its sensors:    %s, on the LAN
                  echo silent > %s (or garbage, normal) switches one
`, ip, netip.AddrPortFrom(network.LANAddr.Addr(), envSensePort), strings.Join(ids, ", "),
			filepath.Join(dataDir, "lan", "s1.mode"))
		if err != nil {
			// The gateway and hello are up all the same: say so.
			envSense = fmt.Sprintf("  EnvSense:       not installed: %v\n", err)
		}
	}
	pageHint := ", loopback only (--network=false)"
	if network != nil && helloIP != "" {
		pageHint = fmt.Sprintf(", its page: http://%s/ (from the gateway)", helloIP)
	}
	fmt.Fprintf(env.stdout, `
ParaDrop demo gateway is up.
  web UI and API: %s/
  operator token: %s  (also in %s)
  sample chute:   hello (busybox httpd)%s
%s  try:            PARADROP_DATA=%s paradrop chute list
Press Ctrl-C to stop the daemon and remove the simulated LAN; chutes keep running and are re-adopted next time.
`, base, strings.TrimSpace(string(token)), filepath.Join(dataDir, api.TokenFile), pageHint, envSense, dataDir)
	return nil
}

// demoChute installs the chute name from build unless the gateway has it,
// and returns its address on the chute network ("" without one).
func demoChute(ctx context.Context, env *cliEnv, c *client, name string, build func(context.Context) ([]byte, error)) (string, error) {
	var chute struct {
		IP string `json:"ip"`
	}
	err := c.call(ctx, http.MethodGet, "/api/v1/chutes/"+name, nil, nil, -1, &chute)
	var apiErr *apiError
	if !errors.As(err, &apiErr) || apiErr.status != http.StatusNotFound {
		return chute.IP, err
	}
	pkg, err := build(ctx)
	if err != nil {
		return "", fmt.Errorf("build the %s chute: %w", name, err)
	}
	var started struct {
		ChangeID uint64 `json:"change_id"`
	}
	if err := c.call(ctx, http.MethodPost, "/api/v1/chutes", nil, bytes.NewReader(pkg), int64(len(pkg)), &started); err != nil {
		return "", fmt.Errorf("install the %s chute: %w", name, err)
	}
	if ch, err := waitChange(ctx, env, c, started.ChangeID); err != nil || ch.Error != "" {
		if err == nil {
			err = errors.New(ch.Error)
		}
		return "", fmt.Errorf("install the %s chute: %w", name, err)
	}
	err = c.call(ctx, http.MethodGet, "/api/v1/chutes/"+name, nil, nil, -1, &chute)
	return chute.IP, err
}
