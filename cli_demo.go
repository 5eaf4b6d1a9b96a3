//go:build !router

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"paradrop/api"
	"paradrop/examples"
)

func init() {
	register("demo", command{
		summary: "run a demo gateway in a simulated home (LAN sensors, a camera, a fake Internet) with the sample chutes",
		run:     func(args []string) int { return runCLI(osEnv(), "demo", cmdDemo, args) },
	})
}

const demoUsage = "demo [--data DIR] [--listen ADDR] [--sensors N] [network flags of serve] [--dns HOST[:PORT]]"

// envSensePort is EnvSense's port on the gateway, as its chute.yaml
// exposes it: its page, its API and where its sensors report.
const envSensePort = 8002

// demoSecCamsPort is SecCams' page on the gateway, as its chute.yaml
// exposes it.
const demoSecCamsPort = 8003

// demoHDStreamPort is the HD stream's page and stream on the gateway, as
// its chute.yaml exposes it.
const demoHDStreamPort = 8004

// demoSharedCPU is the CPU the demo's operator gives SecCams and the HD
// stream to share (the paper's Figure 3 scene: the camera processing
// flat out slows the stream down), as a cpus policy of each.
const demoSharedCPU = "0"

// cmdDemo runs the daemon on embedded defaults in a simulated home (see
// demoHome), installs the sample chutes once it is up and prints where
// the operator finds everything. Ctrl-C removes the home.
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
	dnsFlags(fs, &opts.dns)
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

// runDemo runs the demo gateway with its home (see demoHome; sensors
// simulated sensors, none with no network) until ctx is done; the home is
// gone when it returns.
func runDemo(ctx context.Context, env *cliEnv, opts serveOptions, sensors int) error {
	var home *demoHome
	if opts.network != nil {
		var err error
		if home, err = startHome(ctx, &opts, sensors, opts.logf); err != nil {
			return fmt.Errorf("%w (--lan-addr sets the demo's LAN, --wan a real uplink)", err)
		}
		defer func() {
			if err := home.close(); err != nil {
				opts.logf("demo: %v", err)
			}
		}()
	}
	ready := opts.ready
	opts.ready = func(addr net.Addr) {
		if ready != nil {
			ready(addr)
		}
		go func() {
			if err := demoInstall(ctx, env, opts.dataDir, home, addr); err != nil {
				opts.logf("demo: %v", err)
			}
		}()
	}
	return serve(ctx, opts)
}

// demoApp is a sample chute the demo installs.
type demoApp struct {
	name, title string
	build       func(context.Context) ([]byte, error)
	lanPort     uint16 // the gateway's port it exposes its page on to the LAN
	// wants says whether the home has the devices it serves (nil: any).
	wants func(*demoHome) bool
	// building says what its build takes, if anything worth saying.
	building string
	// more is what the operator should know of it, beyond its page, once
	// installed in home: lines, each ending in a newline.
	more func(home *demoHome) string
	// policy, if set, is the operator's resources request (JSON) the demo
	// makes of it once installed.
	policy string
}

// demoApps are the demo's chutes, in the order they are installed.
func demoApps(cache string) []demoApp {
	return []demoApp{
		{name: "hello", title: "hello (busybox httpd)", lanPort: 8001,
			build: func(context.Context) ([]byte, error) { return examples.Hello() }},
		{name: "envsense", title: "EnvSense", lanPort: envSensePort,
			wants:    func(h *demoHome) bool { return h != nil && len(h.sensors) > 0 },
			building: "its image is Debian's python3, from apt or " + cache,
			build:    func(ctx context.Context) ([]byte, error) { return examples.EnvSense(ctx, cache) },
			more: func(h *demoHome) string {
				var ids []string
				for _, d := range h.sensors {
					ids = append(ids, fmt.Sprintf("%s %s", strings.TrimPrefix(d.Name, "sensor-"), d.Addr))
				}
				return fmt.Sprintf("  its sensors:    %s, on the LAN\n                  echo silent > %s (or garbage, normal) switches one\n",
					strings.Join(ids, ", "), h.modeFile("s1"))
			}},
		{name: "seccams", title: "SecCams", lanPort: demoSecCamsPort,
			wants:    func(h *demoHome) bool { return h != nil && h.camera != nil },
			building: "the Go toolchain builds its program",
			build:    examples.SecCams,
			policy:   `{"cpus":"` + demoSharedCPU + `"}`,
			more: func(h *demoHome) string {
				return fmt.Sprintf("                  and at http://%s/ (cloud.seccams.example, its vendor's cloud: the LAN's requests are answered by the chute)\n"+
					"  its camera:     %s (user %s, password %s), on the LAN\n                  echo motion > %s (or still, off, auto) switches it\n",
					demoCloudNames["cloud.seccams.example"], h.camera.Addr, demoCameraUser, demoCameraPassword, h.modeFile("camera"))
			}},
		{name: "hdstream", title: "HD stream", lanPort: demoHDStreamPort,
			wants:    func(h *demoHome) bool { return h != nil && h.viewer != nil },
			building: "the Go toolchain builds its program",
			build:    examples.HDStream,
			policy:   `{"cpus":"` + demoSharedCPU + `"}`,
			more: func(h *demoHome) string {
				return fmt.Sprintf("  its viewer:     %s %s, on the LAN: pulls /stream, reports the Mbit/s it gets (the page, /api/status)\n"+
					"  Figure 3:       SecCams and the HD stream share CPU %s (the operator's cpus policy); SecCams flat out slows the stream.\n"+
					"                  Lower its CPU and the stream recovers: paradrop chute resources seccams --cpu-max 0.1\n"+
					"                  Record it (camera off, on, the limit): go run ./bench figure3-demo\n",
					h.viewer.Name, h.viewer.Addr, demoSharedCPU)
			}},
	}
}

// demoInstall installs the demo's chutes on the gateway at addr and says
// where everything is.
func demoInstall(ctx context.Context, env *cliEnv, dataDir string, home *demoHome, addr net.Addr) error {
	token, err := os.ReadFile(filepath.Join(dataDir, api.TokenFile))
	if err != nil {
		return err
	}
	base := "http://" + addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		base = fmt.Sprintf("http://127.0.0.1:%d", tcp.Port)
	}
	c := &client{base: base, token: strings.TrimSpace(string(token)), hc: http.DefaultClient}
	cache := examples.CacheDir()
	var where strings.Builder
	for _, app := range demoApps(cache) {
		if app.wants != nil && !app.wants(home) {
			continue
		}
		if app.building != "" {
			fmt.Fprintf(env.stdout, "demo: installing %s (%s)\n", app.title, app.building)
		}
		ip, err := demoChute(ctx, env, c, app.name, app.build)
		if err == nil && app.policy != "" {
			err = demoPolicy(ctx, env, c, app.name, app.policy)
		}
		if ctx.Err() != nil {
			return err
		}
		switch {
		case err != nil:
			// The gateway and the other chutes are up all the same: say so.
			fmt.Fprintf(&where, "  %-15s not installed: %v\n", app.title+":", err)
		case home == nil:
			fmt.Fprintf(&where, "  %-15s installed, loopback only (--network=false)\n", app.title+":")
		default:
			fmt.Fprintf(&where, "  %-15s http://%s/ (from the LAN), http://%s/ (from the gateway)\n", app.title+":",
				netip.AddrPortFrom(home.lanAddr.Addr(), app.lanPort), ip)
		}
		if err == nil && home != nil && app.more != nil {
			where.WriteString(app.more(home))
		}
	}
	if home != nil && home.cloud != nil {
		var names []string
		for _, n := range slices.Sorted(maps.Keys(demoCloudNames)) {
			names = append(names, fmt.Sprintf("%s %s", n, demoCloudNames[n]))
		}
		fmt.Fprintf(&where, "  fake Internet:  %s on the uplink %s, the chutes' upstream resolver; its names: %s\n"+
			"  alerts it got:  http://%s/alerts (from the gateway)\n",
			demoCloudHost, demoUplink, strings.Join(names, ", "), demoCloudNames["alerts.seccams.example"])
	}
	fmt.Fprintf(env.stdout, `
ParaDrop demo gateway is up.
  operator UI:    %s/  (each chute's row links its page on the LAN)
  operator token: %s  (also in %s)
%s  try:            PARADROP_DATA=%s paradrop chute list
Press Ctrl-C to stop the daemon and remove the simulated LAN and Internet; chutes keep running and are re-adopted next time.
`, base, strings.TrimSpace(string(token)), filepath.Join(dataDir, api.TokenFile), where.String(), dataDir)
	return nil
}

// demoPolicy makes the operator's resources request policy (JSON) of the
// chute name and waits for it to apply.
func demoPolicy(ctx context.Context, env *cliEnv, c *client, name, policy string) error {
	var started struct {
		ChangeID uint64 `json:"change_id"`
	}
	if err := c.call(ctx, http.MethodPut, "/api/v1/chutes/"+name+"/resources", nil, strings.NewReader(policy), int64(len(policy)), &started); err != nil {
		return fmt.Errorf("the %s chute's policy %s: %w", name, policy, err)
	}
	if ch, err := waitChange(ctx, env, c, started.ChangeID); err != nil || ch.Error != "" {
		if err == nil {
			err = errors.New(ch.Error)
		}
		return fmt.Errorf("the %s chute's policy %s: %w", name, policy, err)
	}
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
