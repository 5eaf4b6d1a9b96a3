//go:build !router

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"paradrop/examples/camera"
	"paradrop/examples/cloud"
	"paradrop/examples/lan"
	"paradrop/examples/sensor"
	"paradrop/examples/viewer"
)

// The demo's home, in TEST-NET addresses that no real network uses (the
// LAN and the uplink refuse a subnet the machine routes already): the LAN
// 198.51.100.0/24 with the gateway at .1, the sensors at .11 and up and
// the camera's slot at .20; the WAN 203.0.113.0/24 with the gateway at .1
// on its uplink and the cloud host at .53, also the address of each of the
// cloud's names.
var (
	demoLANAddr   = netip.MustParsePrefix("198.51.100.1/24")
	demoWANAddr   = netip.MustParsePrefix("203.0.113.1/24")
	demoCloudHost = netip.MustParseAddr("203.0.113.53")
)

// demoUplink is the gateway's end of the link to the fake Internet.
const demoUplink = "pdwan0"

// demoCameraHost is the camera's host number on the LAN (.30): SecCams'
// manifest reaches the camera there, with demoCameraUser's credentials.
const demoCameraHost = 30

const demoCameraUser, demoCameraPassword = "admin", "seccams"

// demoViewerHost is the HD stream's viewer's host number on the LAN (.41).
const demoViewerHost = 41

// demoCloudNames are the fake Internet's names. cloud.seccams.example is
// SecCams' vendor's cloud, the address the owner's browser asks for and
// the SecCams chute answers on the LAN instead (its manifest redirects
// 203.0.113.80:80);
// alerts.seccams.example is where the chute sends its alerts, by name.
var demoCloudNames = map[string]netip.Addr{
	"cloud.seccams.example":  netip.MustParseAddr("203.0.113.80"),
	"alerts.seccams.example": netip.MustParseAddr("203.0.113.11"),
}

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

// demoHome is what the demo simulates around the gateway: its LAN of
// devices and, unless --wan names a real uplink, the fake Internet.
type demoHome struct {
	dir     string // DATA/lan: namespaces and mode files
	lanAddr netip.Prefix
	lan     *lan.LAN
	sensors []*lan.Device
	camera  *lan.Device
	cameraS *http.Server
	viewer  *lan.Device  // pulls the HD stream and reports its rate
	cloud   *cloud.Cloud // nil with a real uplink
	stop    context.CancelFunc
	running sync.WaitGroup
}

// startHome builds the home of the gateway that opts describe (opts must
// have a network) and points the gateway at it: its LAN ports, its LAN
// address and, with no --wan, its uplink and upstream resolver (unless
// --dns names one). The sensors report to EnvSense until close, which
// removes everything startHome made, also when it fails.
func startHome(ctx context.Context, opts *serveOptions, nSensors int, logf func(string, ...any)) (_ *demoHome, err error) {
	netCfg := opts.network
	if !netCfg.LANAddr.IsValid() {
		netCfg.LANAddr = demoLANAddr
	}
	h := &demoHome{dir: filepath.Join(opts.dataDir, "lan"), lanAddr: netCfg.LANAddr, stop: func() {}}
	h.lan = lan.New(h.dir, netCfg.NetNS, netCfg.LANAddr)
	defer func() {
		if err != nil {
			if cerr := h.close(); cerr != nil {
				logf("demo: %v", cerr)
			}
		}
	}()
	if netCfg.WAN == "" {
		h.cloud, err = cloud.Start(cloud.Config{Dir: filepath.Join(opts.dataDir, "wan"), NetNS: netCfg.NetNS, Uplink: demoUplink,
			Gateway: demoWANAddr, Host: demoCloudHost, Names: demoCloudNames, Logf: logf})
		if err != nil {
			return nil, err
		}
		netCfg.WAN = demoUplink
		if len(opts.dns.upstreams) == 0 && !opts.dns.off {
			opts.dns.upstreams = []string{h.cloud.DNS().String()}
		}
	}
	devices, stop := context.WithCancel(ctx)
	h.stop = stop
	if err := h.addSensors(devices, nSensors); err != nil {
		return nil, err
	}
	if err := h.addCamera(); err != nil {
		return nil, err
	}
	if err := h.addViewer(devices); err != nil {
		return nil, err
	}
	netCfg.LANPorts = append(netCfg.LANPorts, h.lan.Ports()...)
	return h, nil
}

// lanHost is host number n of the LAN.
func (h *demoHome) lanHost(n int) netip.Addr {
	a := h.lanAddr.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// addSensors puts n sensors on the LAN, at .11 and up, reporting to
// EnvSense at the gateway's LAN address, each switched by its mode file.
func (h *demoHome) addSensors(ctx context.Context, n int) error {
	report := "http://" + netip.AddrPortFrom(h.lanAddr.Addr(), envSensePort).String() + "/api/report"
	for i, cfg := range demoSensors[:n] {
		d, err := h.lan.Add("sensor-"+cfg.ID, "pdlan-"+cfg.ID, h.lanHost(11+i))
		if err != nil {
			return err
		}
		h.sensors = append(h.sensors, d)
		cfg.Seed = uint64(i + 1)
		cfg.Mode = sensor.ModeFile(h.modeFile(cfg.ID))
		h.running.Go(func() { sensor.Run(ctx, cfg, sensor.Poster(d.HTTPClient(5*time.Second), report)) })
	}
	return nil
}

// addCamera puts SecCams' camera on the LAN, a DCS-931L serving
// /image.jpg behind basic authentication, switched by its mode file.
func (h *demoHome) addCamera() error {
	d, err := h.lan.Add("camera", "pdlan-cam", h.lanHost(demoCameraHost))
	if err != nil {
		return err
	}
	h.camera = d
	ln, err := d.Listen("tcp", ":80")
	if err != nil {
		return fmt.Errorf("camera: %w", err)
	}
	cam := camera.New(camera.Config{User: demoCameraUser, Password: demoCameraPassword, Seed: 1, Mode: camera.ModeFile(h.modeFile("camera"))})
	h.cameraS = &http.Server{Handler: cam, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	h.running.Go(func() { h.cameraS.Serve(ln) })
	return nil
}

// addViewer puts the HD stream's viewer on the LAN: until ctx ends, it
// pulls the stream from the gateway's port demoHDStreamPort, reconnecting
// while the chute is not there, and reports the rate it gets to it.
func (h *demoHome) addViewer(ctx context.Context) error {
	d, err := h.lan.Add("tv", "pdlan-tv", h.lanHost(demoViewerHost))
	if err != nil {
		return err
	}
	h.viewer = d
	page := "http://" + netip.AddrPortFrom(h.lanAddr.Addr(), demoHDStreamPort).String()
	cfg := viewer.Config{ID: "tv", StreamURL: page + "/stream", ReportURL: page + "/api/report", Client: d.HTTPClient(0)}
	h.running.Go(func() {
		_, wait := viewer.Start(ctx, cfg)
		wait()
	})
	return nil
}

// modeFile switches sensor id (normal, silent, garbage), or the camera
// (auto, still, motion, off).
func (h *demoHome) modeFile(id string) string { return filepath.Join(h.dir, id+".mode") }

// close stops the devices and removes the LAN and the fake Internet.
func (h *demoHome) close() error {
	h.stop()
	if h.cameraS != nil {
		h.cameraS.Close()
	}
	h.running.Wait()
	err := h.lan.Close()
	if h.cloud != nil {
		err = errors.Join(err, h.cloud.Close())
	}
	if err != nil {
		return fmt.Errorf("remove the demo's home: %w", err)
	}
	return nil
}
