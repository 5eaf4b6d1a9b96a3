//go:build !router

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"paradrop/cgroup"
	"paradrop/examples"
	"paradrop/examples/camera"
	"paradrop/examples/viewer"
	"paradrop/netconf/nettest"
)

type hdStreamStatus struct {
	RateMbps float64 `json:"rate_mbps"`
	SentMbps float64 `json:"sent_mbps"`
	Reports  []struct {
		Viewer string
		Mbps   float64
		At     time.Time
	}
}

// TestFigure3 is the paper's Figure 3 on a demo-like home: SecCams and the
// HD stream chute on one CPU (the operator's cpus policy), a viewer on the
// LAN pulling the stream. The stream alone (the camera unplugged, SecCams
// idle) arrives at its rate; SecCams flat out (the camera back) slows it
// measurably; the operator lowers SecCams' cpu_max and the stream
// recovers to near its rate alone. The rates are what the viewer reports,
// as the stream chute's /api/status shows them.
func TestFigure3(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nettest.Require(t, "busybox")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	secCams, err := examples.SecCams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hdStream, err := examples.HDStream(ctx)
	if err != nil {
		t.Fatal(err)
	}

	lanAddr := netip.MustParsePrefix("198.51.100.1/24")
	gw, internet, l := startTestHome(t, lanAddr)
	var mode atomic.Value
	mode.Store(camera.Off)
	startCamera(t, l, "lan0", &mode)
	tv, err := l.Add("tv", "lan1", netip.MustParseAddr("198.51.100.41"))
	if err != nil {
		t.Fatal(err)
	}

	cgroups := fmt.Sprintf("/paradrop-fig3-%d", os.Getpid())
	// The chutes' parent and this process (the home's devices, the
	// gateway's Open vSwitch it starts) outweigh the rest of this shared
	// machine, as on a gateway, where they are what runs: so that the
	// stream contends with SecCams rather than with whatever else runs on
	// CPU 0, and SecCams' camera answers as fast as the gateway forwards.
	// startHomeDaemon removes the parent at the end.
	if _, err := cgroup.Open(cgroups, cgroup.Resources{CPUWeight: 10000}); err != nil {
		t.Fatal(err)
	}
	favourTest(t, cgroups+"-home")
	base, operator := startHomeDaemon(t, gw, internet, l, lanAddr, t.TempDir(), cgroups)
	for name, pkg := range map[string][]byte{"seccams": secCams, "hdstream": hdStream} {
		if code, body := call(t, http.DefaultClient, base+"?wait=1", operator, "POST", string(pkg)); code != 200 || !strings.Contains(string(body), `"state": "done"`) {
			t.Fatalf("install %s: %d %s", name, code, body)
		}
		t.Cleanup(func() { call(t, http.DefaultClient, base+"/"+name+"?wait=1", operator, "DELETE", "") })
		if code, body := call(t, http.DefaultClient, base+"/"+name+"/resources?wait=1", operator, "PUT", `{"cpus":"`+demoSharedCPU+`","grace":"0s"}`); code != 200 || !strings.Contains(string(body), `"state": "done"`) {
			t.Fatalf("%s on CPU 0: %d %s", name, code, body)
		}
	}

	page := "http://" + netip.AddrPortFrom(lanAddr.Addr(), 8004).String()
	vctx, stopViewer := context.WithCancel(ctx)
	_, viewerDone := viewer.Start(vctx, viewer.Config{ID: "tv", StreamURL: page + "/stream", ReportURL: page + "/api/report", Client: tv.HTTPClient(0)})
	defer viewerDone()
	defer stopViewer()
	owner := tv.HTTPClient(5 * time.Second)

	// rate is the median of the viewer's reports over d, as the stream
	// chute's status shows them, once a second.
	rate := func(what string, d time.Duration) float64 {
		t.Helper()
		var rates []float64
		var fps []float64
		for end := time.Now().Add(d); time.Now().Before(end); {
			time.Sleep(time.Second)
			var st hdStreamStatus
			if err := lanGet(owner, page, "/api/status", &st); err != nil {
				t.Fatal(err)
			}
			if len(st.Reports) == 1 && time.Since(st.Reports[0].At) < 2*time.Second {
				rates = append(rates, st.Reports[0].Mbps)
			}
			var sc secCamsStatus
			if err := lanGet(owner, "http://"+netip.AddrPortFrom(lanAddr.Addr(), secCamsPort).String(), "/api/status", &sc); err == nil {
				fps = append(fps, sc.FPS)
			}
		}
		if len(rates) < int(d/time.Second)/2 {
			t.Fatalf("%s: %d fresh reports of the viewer in %s", what, len(rates), d)
		}
		slices.Sort(rates)
		t.Logf("%s: stream %.1f Mbit/s (median; %v), seccams fps %v", what, rates[len(rates)/2], rates, fps)
		return rates[len(rates)/2]
	}
	time.Sleep(3 * time.Second)
	alone := rate("stream alone (camera unplugged)", 6*time.Second)
	mode.Store(camera.Still)
	secCamsUp := time.Now().Add(15 * time.Second)
	for {
		var sc secCamsStatus
		if lanGet(owner, "http://"+netip.AddrPortFrom(lanAddr.Addr(), secCamsPort).String(), "/api/status", &sc) == nil && sc.CameraOK {
			break
		}
		if time.Now().After(secCamsUp) {
			t.Fatal("seccams did not see the camera back within 15 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	contended := rate("seccams flat out on the same CPU", 6*time.Second)
	if code, body := call(t, http.DefaultClient, base+"/seccams/resources?wait=1", operator, "PUT", `{"cpu_max":0.1,"grace":"1s"}`); code != 200 {
		t.Fatalf("cpu_max 0.1: %d %s", code, body)
	}
	time.Sleep(2 * time.Second)
	after := rate("seccams at cpu_max 0.1", 6*time.Second)
	t.Logf("alone %.1f, contended %.1f (%.0f%%), after %.1f (%.0f%%)", alone, contended, 100*contended/alone, after, 100*after/alone)
	if alone < 0.75*hdStreamRate {
		t.Errorf("the stream alone reached its viewer at %.1f Mbit/s, not near its %.0f", alone, hdStreamRate)
	}
	// Over 5 runs on this 2-core machine shared with other work (load 10
	// to 26): alone 20.0 Mbit/s; SecCams flat out 35 to 68% of it (median
	// 53%); after cpu_max 0.1, 100%; without the limit, 58%.
	if contended > 0.8*alone {
		t.Errorf("SecCams flat out on the same CPU left the stream at %.1f Mbit/s, %.0f%% of its %.1f alone: no contention", contended, 100*contended/alone, alone)
	}
	if after < 0.85*alone {
		t.Errorf("after SecCams' cpu_max 0.1 the stream reached %.1f Mbit/s, %.0f%% of its %.1f alone: not recovered", after, 100*after/alone, alone)
	}
}

// hdStreamRate is the HD stream's rate in Mbit/s, as its chute.yaml sets it.
const hdStreamRate = 20.0

// favourTest moves this process into a group of its own at path, weighted
// as the chutes' parent is, until the test ends: then back where it was,
// and the group removed.
func favourTest(t *testing.T, path string) {
	t.Helper()
	home, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	g, err := cgroup.Open(path, cgroup.Resources{CPUWeight: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Add(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Each hierarchy's line: ID:CONTROLLERS:PATH.
		for line := range strings.SplitSeq(strings.TrimSpace(string(home)), "\n") {
			f := strings.SplitN(line, ":", 3)
			if len(f) != 3 {
				continue
			}
			dir := "/sys/fs/cgroup" + f[2]
			if f[1] != "" {
				dir = "/sys/fs/cgroup/" + strings.TrimPrefix(strings.Split(f[1], ",")[0], "name=") + f[2]
			}
			os.WriteFile(dir+"/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0)
		}
		if procs, _ := g.Procs(); len(procs) > 0 {
			t.Errorf("%s still holds %v", path, procs)
			return
		}
		if err := g.Delete(); err != nil {
			t.Error(err)
		}
	})
}
