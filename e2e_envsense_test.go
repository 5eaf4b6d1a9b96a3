//go:build !router

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"paradrop/api"
	"paradrop/examples"
	"paradrop/examples/lan"
	"paradrop/examples/sensor"
	"paradrop/netconf/nettest"
	"paradrop/sdn"
)

// envSenseStatus is GET /api/sensors of the EnvSense chute.
type envSenseStatus struct {
	Now     float64
	Sensors []struct {
		ID     string
		Count  int
		Stale  bool
		Offset *float64
		Age    float64
	}
	Accepted int
	Rejected int
	ByReason map[string]int `json:"rejected_by_reason"`
}

type envSenseReading struct {
	T       float64 `json:"t"`
	SensorT float64 `json:"sensor_t"`
	Temp    float64
	Hum     float64
	Seq     int
}

// TestEnvSense runs the real daemon with a LAN of simulated sensors, each
// in its own namespace, and the EnvSense chute built from Debian's python3:
// readings from every working sensor reach /data and the JSON API through
// the port the chute exposes on the LAN, a sensor 30 s ahead is corrected, garbage is
// counted and refused, a silent sensor turns stale, the WAN going down
// changes nothing, and a restart keeps the readings.
func TestEnvSense(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nettest.Require(t, "busybox")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pkg, err := examples.EnvSense(ctx, examples.CacheDir())
	if errors.Is(err, examples.ErrNoPackages) {
		t.Skipf("apt cannot give Debian's python3: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}

	// The gateway in a namespace of its own, a WAN uplink to a cloud host,
	// and the sensors on its LAN.
	lanAddr := netip.MustParsePrefix("198.51.100.1/24")
	gw, internet, l := startTestHome(t, lanAddr)
	modes := map[string]*atomic.Value{}
	configs := []sensor.Config{
		{ID: "s1", Interval: 500 * time.Millisecond},
		{ID: "s2", Interval: 500 * time.Millisecond, Skew: 30 * time.Second, DriftPPM: 100},
		{ID: "s3", Interval: 500 * time.Millisecond}, // garbage from the start
		{ID: "s4", Interval: 500 * time.Millisecond}, // goes silent
	}
	var devices []*lan.Device
	for i, c := range configs {
		d, err := l.Add("sensor-"+c.ID, fmt.Sprintf("lan%d", i), netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", 21+i)))
		if err != nil {
			t.Fatal(err)
		}
		devices = append(devices, d)
		m := new(atomic.Value)
		m.Store(sensor.Normal)
		modes[c.ID] = m
	}
	modes["s3"].Store(sensor.Garbage)

	data := t.TempDir()
	cgroups := fmt.Sprintf("/paradrop-envsense-%d", os.Getpid())
	t.Cleanup(func() { dropCgroupParent(t, cgroups) })
	addr := startServe(t, serveOptions{
		dataDir: data, maxUpload: 64 << 20, maxUnpacked: 256 << 20, cgroups: cgroups,
		network: &sdn.Config{NetNS: gw.NetNS, Subnet: sdn.DefaultSubnet, LANPorts: l.Ports(), LANAddr: lanAddr, WAN: "wan0"},
	})
	tok, err := os.ReadFile(filepath.Join(data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	operator := strings.TrimSpace(string(tok))
	base := "http://" + addr + "/api/v1/chutes"
	if code, body := call(t, http.DefaultClient, base+"?wait=1", operator, "POST", string(pkg)); code != 200 || !strings.Contains(string(body), `"state": "done"`) {
		t.Fatalf("install envsense: %d %s", code, body)
	}
	t.Cleanup(func() { call(t, http.DefaultClient, base+"/envsense?wait=1", operator, "DELETE", "") })
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []string{"/envsense/logs"} {
				_, body := call(t, http.DefaultClient, base+p, operator, "GET", "")
				t.Logf("%s:\n%s", p, body)
			}
		}
	})

	sensorCtx, stop := context.WithCancel(ctx)
	page := "http://" + netip.AddrPortFrom(lanAddr.Addr(), 8002).String()
	running := make(chan struct{}, len(configs))
	for i, c := range configs {
		m := modes[c.ID]
		c.Mode = func() sensor.Mode { return m.Load().(sensor.Mode) }
		c.Seed = uint64(i + 1)
		go func() {
			sensor.Run(sensorCtx, c, sensor.Poster(devices[i].HTTPClient(5*time.Second), page+"/api/report"))
			running <- struct{}{}
		}()
	}
	var once sync.Once
	stopSensors := func() {
		once.Do(func() {
			stop()
			for range configs {
				<-running
			}
		})
	}
	defer stopSensors()

	// The owner's view: the page and API at the gateway's LAN address,
	// from a LAN host.
	owner := devices[0].HTTPClient(5 * time.Second)
	get := func(path string, out any) error { return lanGet(owner, page, path, out) }
	status := func() envSenseStatus {
		t.Helper()
		var st envSenseStatus
		if err := get("/api/sensors", &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	waitFor := func(what string, ok func(envSenseStatus) bool) envSenseStatus {
		t.Helper()
		deadline := time.Now().Add(40 * time.Second)
		for {
			var st envSenseStatus
			err := get("/api/sensors", &st)
			if err == nil && ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v %v", what, st, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	counts := func(st envSenseStatus) map[string]int {
		m := map[string]int{}
		for _, s := range st.Sensors {
			m[s.ID] = s.Count
		}
		return m
	}
	st := waitFor("readings of s1, s2 and s4, and refused garbage", func(st envSenseStatus) bool {
		c := counts(st)
		return c["s1"] >= 3 && c["s2"] >= 3 && c["s4"] >= 3 && st.Rejected >= 8
	})
	if _, ok := counts(st)["s3"]; ok {
		t.Errorf("the garbage sensor has readings: %+v", st)
	}
	if st.ByReason["not JSON"] == 0 || st.ByReason["bad temp"] == 0 || st.ByReason["too large"] == 0 || st.ByReason["bad sensor id"] == 0 {
		t.Errorf("garbage not counted by reason: %v", st.ByReason)
	}
	modes["s4"].Store(sensor.Silent)
	silencedAt := time.Now()

	// The interpreter is Debian's python3 from the image.
	var health struct{ Python string }
	if err := get("/healthz", &health); err != nil {
		t.Fatal(err)
	}
	debs := readChuteFile(t, data, "envsense", examples.EnvSenseDebList)
	// sys.version begins "3.11.2 (main, ...", and python3.11-minimal's
	// file is python3.11-minimal_3.11.2-6+deb12u9_amd64.deb.
	v := regexp.MustCompile(`^((3\.[0-9]+)\.[0-9]+) `).FindStringSubmatch(health.Python)
	if v == nil || !strings.Contains(debs, "python"+v[2]+"-minimal_"+v[1]+"-") {
		t.Errorf("the chute runs python %q; its image holds:\n%s", health.Python, debs)
	}
	if err := get("/", nil); err != nil {
		t.Errorf("the page: %v", err)
	}

	// Corrected timestamps: s2's clock is 30 s ahead.
	var r struct{ Readings []envSenseReading }
	if err := get("/api/readings?sensor=s2&since=0", &r); err != nil || len(r.Readings) == 0 {
		t.Fatalf("s2's readings: %+v %v", r, err)
	}
	now := float64(time.Now().UnixNano()) / 1e9
	for _, x := range r.Readings {
		if skew := x.SensorT - x.T; math.Abs(skew-30) > 0.5 || x.T > now+0.5 || x.T < now-60 {
			t.Errorf("s2's reading %+v: corrected %.3f s before its stamp, %.3f s before now; want 30 s and a recent time", x, skew, now-x.T)
			break
		}
	}
	for _, s := range status().Sensors {
		if s.ID == "s2" && (s.Offset == nil || math.Abs(*s.Offset-30) > 0.5) {
			t.Errorf("s2's estimated offset: %v, want 30 s", s.Offset)
		}
	}
	// since filters; a bad query is a 400 with a JSON error; an unknown
	// sensor a 404.
	last := r.Readings[len(r.Readings)-1].T
	var newer struct{ Readings []envSenseReading }
	if err := get("/api/readings?sensor=s2&since="+strconv.FormatFloat(last, 'f', -1, 64), &newer); err != nil {
		t.Fatal(err)
	}
	for _, x := range newer.Readings {
		if x.T <= last {
			t.Errorf("since=%v returned %+v", last, x)
		}
	}
	for path, want := range map[string]int{"/api/readings?sensor=../x": 400, "/api/readings?sensor=s1&since=soon": 400, "/api/readings?sensor=s9": 404} {
		resp, err := owner.Get(page + path)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != want || e.Error == "" {
			t.Errorf("GET %s: %d %q, want %d with an error", path, resp.StatusCode, e.Error, want)
		}
	}

	// The WAN goes down: nothing changes on the LAN.
	if err := internet.SetUplink(false); err != nil {
		t.Fatal(err)
	}
	before := counts(status())
	st = waitFor("s4 stale, s1 and s2 live with the WAN down", func(st envSenseStatus) bool {
		c := counts(st)
		stale := map[string]bool{}
		for _, s := range st.Sensors {
			stale[s.ID] = s.Stale
		}
		return c["s1"] > before["s1"]+3 && c["s2"] > before["s2"]+3 && stale["s4"] && !stale["s1"] && !stale["s2"]
	})
	// Its last report left up to an interval before it was silenced.
	if d := time.Since(silencedAt); d < 9*time.Second {
		t.Errorf("s4 stale %v after it went silent, before the chute's 10 s", d)
	}

	// The owner's page in Chromium, through a relay on the test's
	// loopback to the LAN: a card per reporting sensor, the silent one
	// marked, none for the garbage sender.
	ui := browser(t)
	relay := relayTo(t, devices[0], netip.AddrPortFrom(lanAddr.Addr(), 8002).String())
	if err := chromedp.Do(ui, chromedp.Navigate("http://"+relay+"/")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ui, "#sensor-s4", regexp.MustCompile(`silent`), 10*time.Second)
	for _, id := range []string{"s1", "s2"} {
		text := waitText(t, ui, "#sensor-"+id, regexp.MustCompile(`°C, .* %, clock offset .* s, last \d+ s ago, \d+ stored`), 10*time.Second)
		if strings.Contains(text, "silent") {
			t.Errorf("live sensor %s shown silent: %s", id, text)
		}
	}
	if text := waitText(t, ui, "#sensor-s2", regexp.MustCompile(`clock offset`), time.Second); !strings.Contains(text, "clock offset 30.0") {
		t.Errorf("s2's card: %s, want its 30 s offset", text)
	}
	if n := evaluate[int](t, ui, `document.querySelectorAll("#sensor-s3").length`); n != 0 {
		t.Errorf("the garbage sender has a card")
	}
	waitText(t, ui, "#totals", regexp.MustCompile(`[1-9]\d* rejected`), 5*time.Second)

	// Readings are in /data and survive a restart.
	if fi, err := os.Stat(filepath.Join(data, "chutes", "envsense", "data", "readings.db")); err != nil || fi.Size() == 0 {
		t.Errorf("no readings in the chute's /data: %v", err)
	}
	var first struct{ Readings []envSenseReading }
	if err := get("/api/readings?sensor=s1&since=0&limit=5", &first); err != nil || len(first.Readings) == 0 {
		t.Fatalf("s1's first readings: %v", err)
	}
	// What its limits are sized on (see its chute.yaml).
	var usage struct {
		Samples []struct{ Mem, MemLimit, Pids int64 }
	}
	if code, body := call(t, http.DefaultClient, base+"/envsense/usage", operator, "GET", ""); code == 200 && json.Unmarshal(body, &usage) == nil {
		var mem, pids int64
		for _, s := range usage.Samples {
			mem, pids = max(mem, s.Mem), max(pids, s.Pids)
		}
		t.Logf("envsense: peak memory %.1f MiB, %d pids, over %d s", float64(mem)/(1<<20), pids, len(usage.Samples))
	}
	stopSensors()
	if code, body := call(t, http.DefaultClient, base+"/envsense/restart?wait=1", operator, "POST", ""); code != 200 {
		t.Fatalf("restart: %d %s", code, body)
	}
	var again struct{ Readings []envSenseReading }
	deadline := time.Now().Add(30 * time.Second)
	for get("/api/readings?sensor=s1&since=0&limit=5", &again) != nil && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
	}
	if fmt.Sprint(again.Readings) != fmt.Sprint(first.Readings) {
		t.Errorf("s1's first readings after a restart:\n%+v\nbefore:\n%+v", again.Readings, first.Readings)
	}
	if c := counts(status()); c["s1"] < st.Sensors[0].Count {
		t.Errorf("after a restart s1 has %d readings, before %d", c["s1"], st.Sensors[0].Count)
	}
	// And an update to a new version keeps them too.
	if code, body := call(t, http.DefaultClient, base+"/envsense?wait=1", operator, "PUT", string(withVersion(t, pkg, "1.0.1"))); code != 200 || !strings.Contains(string(body), `"state": "done"`) {
		t.Fatalf("update: %d %s", code, body)
	}
	if code, body := call(t, http.DefaultClient, base+"/envsense", operator, "GET", ""); code != 200 || !strings.Contains(string(body), `"version": "1.0.1"`) {
		t.Errorf("after the update: %d %s", code, body)
	}
	again.Readings = nil
	if err := get("/api/readings?sensor=s1&since=0&limit=5", &again); err != nil || fmt.Sprint(again.Readings) != fmt.Sprint(first.Readings) {
		t.Errorf("s1's first readings after an update: %v\n%+v\nbefore:\n%+v", err, again.Readings, first.Readings)
	}
}

// withVersion returns pkg with its chute.yaml at version v.
func withVersion(t *testing.T, pkg []byte, v string) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(pkg))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "chute.yaml" {
			body = regexp.MustCompile(`(?m)^version: .*$`).ReplaceAll(body, []byte("version: "+v))
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// relayTo relays connections to the test's loopback to addr, dialled from
// d, so that a browser in the test's namespace sees the LAN's view.
func relayTo(t *testing.T, d *lan.Device, addr string) string {
	t.Helper()
	return acceptLoopback(t, func(c net.Conn) {
		up, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			return
		}
		defer up.Close()
		go io.Copy(up, c)
		io.Copy(c, up)
	})
}

// readChuteFile reads path in the chute's current rootfs.
func readChuteFile(t *testing.T, data, chute, path string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(data, "chutes", chute, "versions", "*", "rootfs", path))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no %s in chute %s's rootfs: %v", path, chute, err)
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
