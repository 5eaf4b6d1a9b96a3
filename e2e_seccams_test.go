//go:build !router

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/sys/unix"

	"paradrop/examples"
	"paradrop/examples/camera"
	"paradrop/examples/cloud"
	"paradrop/netconf/nettest"
)

// The addresses SecCams' chute.yaml names: its camera on the LAN (its
// cloud's alert host, by name, is one of demoCloudNames).
const (
	secCamsCamera   = "198.51.100.30"
	secCamsPort     = 8003
	secCamsCloudWeb = "203.0.113.80:80" // the vendor's address for owners, redirected to the chute
)

type secCamsEvent struct {
	ID     string
	Start  time.Time
	Frames int
	Alert  string
	Thumb  string
	Images []string
}

type secCamsStatus struct {
	FPS         float64
	CameraOK    bool   `json:"camera_ok"`
	CameraError string `json:"camera_error"`
	Store       struct {
		Events, Evicted int
		Bytes, Quota    int64
		Free            int64
	}
	Alerts struct {
		Pending, Sent int
		LastError     string `json:"last_error"`
	}
}

// chuteCPU is the chute's mean CPU, in % of a core, over the gateway's
// last 5 samples of its usage.
func chuteCPU(t *testing.T, base, operator string) float64 {
	t.Helper()
	var usage struct{ Samples []struct{ CPU float64 } }
	code, body := call(t, http.DefaultClient, base+"/seccams/usage", operator, "GET", "")
	if err := json.Unmarshal(body, &usage); code != 200 || err != nil || len(usage.Samples) == 0 {
		t.Fatalf("usage: %d %s", code, body)
	}
	last := usage.Samples[max(0, len(usage.Samples)-5):]
	var sum float64
	for _, s := range last {
		sum += s.CPU
	}
	return sum / float64(len(last))
}

// secCamsAlerts are the alerts the chute POSTed to the cloud's
// /api/alerts (where its chute.yaml sends them), decoded.
func secCamsAlerts(t *testing.T, c *cloud.Cloud) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, a := range c.Alerts() {
		if a.Method != http.MethodPost || a.Path != "/api/alerts" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(a.Body), &m); err != nil {
			t.Errorf("alert %s: %v", a.Body, err)
			continue
		}
		out = append(out, m)
	}
	return out
}

// TestSecCams runs the real daemon with a simulated DCS-931L on its LAN and
// the vendor's cloud on a fake WAN, and the SecCams chute: 30 s of a still,
// noisy scene record nothing; motion is an event within 5 s, whose alert
// reaches the cloud host by name through the gateway's DNS; with the WAN
// cut it keeps recording and serving its page (also at the vendor's
// address, redirected), and delivers the alert once the WAN is back; an
// unplugged camera is reported; the operator's cpu_max changes its
// frames/s; Chromium shows its page; a restart and an update keep its
// events; its volume filled by other files, a new event drops the oldest
// to keep its reserve free.
func TestSecCams(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nettest.Require(t, "busybox")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	pkg, err := examples.SecCams(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The gateway in a namespace of its own, a WAN uplink to the cloud
	// host, and the camera and the owner's laptop on its LAN.
	lanAddr := netip.MustParsePrefix("198.51.100.1/24")
	gw, internet, l := startTestHome(t, lanAddr)
	var mode atomic.Value
	mode.Store(camera.Still)
	startCamera(t, l, "lan0", &mode)
	laptop, err := l.Add("laptop", "lan1", netip.MustParseAddr("198.51.100.40"))
	if err != nil {
		t.Fatal(err)
	}

	data := t.TempDir()
	base, operator := startHomeDaemon(t, gw, internet, l, lanAddr, data, fmt.Sprintf("/paradrop-seccams-%d", os.Getpid()))
	if code, body := call(t, http.DefaultClient, base+"?wait=1", operator, "POST", string(pkg)); code != 200 || !strings.Contains(string(body), `"state": "done"`) {
		t.Fatalf("install seccams: %d %s", code, body)
	}
	t.Cleanup(func() { call(t, http.DefaultClient, base+"/seccams?wait=1", operator, "DELETE", "") })
	t.Cleanup(func() {
		if t.Failed() {
			_, body := call(t, http.DefaultClient, base+"/seccams/logs", operator, "GET", "")
			t.Logf("seccams logs:\n%s", body)
		}
	})

	// The owner's view: the page and API at the gateway's LAN address.
	page := "http://" + netip.AddrPortFrom(lanAddr.Addr(), secCamsPort).String()
	owner := laptop.HTTPClient(5 * time.Second)
	get := func(path string, out any) error { return lanGet(owner, page, path, out) }
	status := func() secCamsStatus {
		t.Helper()
		var st secCamsStatus
		if err := get("/api/status", &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	events := func() []secCamsEvent {
		t.Helper()
		var list struct{ Events []secCamsEvent }
		if err := get("/api/events", &list); err != nil {
			t.Fatal(err)
		}
		return list.Events
	}
	waitFor := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; status %+v", what, within, status())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("the chute polling the camera", 30*time.Second, func() bool {
		var st secCamsStatus
		return get("/api/status", &st) == nil && st.CameraOK && st.FPS > 0
	})

	// 30 s of the still room, with its sensor noise: no event. Its frames/s
	// at its manifest's cpu_max is measured meanwhile: the best 5 s, as the
	// machine's other work may take some of the CPU it is allowed.
	var fpsHalf float64
	var st secCamsStatus
	for range 6 {
		time.Sleep(5 * time.Second)
		st = status()
		if n := len(events()); n != 0 || st.Store.Events != 0 {
			t.Fatalf("%d events in a still scene", n)
		}
		fpsHalf = max(fpsHalf, st.FPS)
	}
	cpuHalf := chuteCPU(t, base, operator)
	if fpsHalf < 5 {
		t.Errorf("%.1f frames/s at its manifest's cpu_max", fpsHalf)
	}
	// Its room is its /data volume's: statfs in the chute sees the 32Mi
	// filesystem its disk quota is, not the host's.
	if st.Store.Free <= 0 || st.Store.Free > 32<<20 || st.Store.Quota != 20<<20 {
		t.Errorf("store: %+v, want the free room of a 32Mi volume and a 20Mi quota", st.Store)
	}
	if fpsHalf < 5 {
		t.Errorf("%.1f frames/s at its manifest's cpu_max", fpsHalf)
	}

	// Motion: an event within 5 s, and its alert at the cloud host.
	mode.Store(camera.Motion)
	moved := time.Now()
	var ev secCamsEvent
	waitFor("an event after motion", 5*time.Second, func() bool {
		if evs := events(); len(evs) > 0 {
			ev = evs[0]
			return true
		}
		return false
	})
	t.Logf("event %s %v after the motion began", ev.ID, time.Since(moved).Round(time.Millisecond))
	waitFor("the alert at the cloud host", 20*time.Second, func() bool {
		for _, a := range secCamsAlerts(t, internet) {
			if a["event"] == ev.ID && a["camera"] == "front-door" {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Until(moved.Add(2 * time.Second))) // a few frames
	mode.Store(camera.Still)
	waitFor("the event stored with its frames and thumbnail", 10*time.Second, func() bool {
		evs := events()
		return len(evs) == 1 && evs[0].Frames >= 2 && evs[0].Alert == "sent"
	})
	ev = events()[0]
	for _, u := range append([]string{ev.Thumb}, ev.Images...) {
		resp, err := owner.Get(page + u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || len(b) < 1000 {
			t.Errorf("GET %s: %d %s, %d bytes", u, resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
		}
	}
	if fi, err := os.Stat(filepath.Join(data, "chutes", "seccams", "data", "events", ev.ID, "0.jpg")); err != nil || fi.Size() == 0 {
		t.Errorf("the event's frame is not in the chute's /data: %v", err)
	}

	// The WAN is cut: the next event is recorded and the page served; its
	// alert waits, and goes once the WAN is back.
	wan := func(up bool) {
		t.Helper()
		if err := internet.SetUplink(up); err != nil {
			t.Fatal(err)
		}
	}
	wan(false)
	time.Sleep(3 * time.Second) // the first event closes
	mode.Store(camera.Motion)
	var offline secCamsEvent
	waitFor("an event with the WAN cut", 5*time.Second, func() bool {
		if evs := events(); len(evs) == 2 {
			offline = evs[0]
			return true
		}
		return false
	})
	mode.Store(camera.Still)
	waitFor("the alert failing with the WAN cut", 20*time.Second, func() bool {
		st := status()
		return st.Alerts.Pending == 1 && st.Alerts.LastError != ""
	})
	if err := get("/", nil); err != nil {
		t.Errorf("the page with the WAN cut: %v", err)
	}
	// The owner asking the vendor's cloud address is answered by the
	// chute, WAN or not: nothing the owner looks at leaves the home.
	if resp, err := owner.Get("http://" + secCamsCloudWeb + "/api/events"); err != nil {
		t.Errorf("the vendor's address from the LAN: %v", err)
	} else {
		var list struct{ Events []secCamsEvent }
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(list.Events) != 2 || list.Events[0].ID != offline.ID {
			t.Errorf("the vendor's address from the LAN: %d %+v", resp.StatusCode, list.Events)
		}
	}
	wan(true)
	waitFor("the delayed alert at the cloud host", 45*time.Second, func() bool {
		for _, a := range secCamsAlerts(t, internet) {
			if a["event"] == offline.ID {
				return true
			}
		}
		return false
	})

	// The camera unplugged: the chute says so and keeps serving its page.
	mode.Store(camera.Off)
	waitFor("the camera seen down", 15*time.Second, func() bool {
		st := status()
		return !st.CameraOK && st.CameraError != ""
	})
	if err := get("/", nil); err != nil {
		t.Errorf("the page with the camera down: %v", err)
	}
	mode.Store(camera.Still)
	waitFor("the camera back", 15*time.Second, func() bool { return status().CameraOK })
	time.Sleep(6 * time.Second) // a full frames/s window

	// The operator lowers its CPU: its frames/s follow (the paper's
	// Figure 3).
	if code, body := call(t, http.DefaultClient, base+"/seccams/resources", operator, "PUT", `{"cpu_max":0.1}`); code/100 != 2 {
		t.Fatalf("cpu_max 0.1: %d %s", code, body)
	}
	time.Sleep(12 * time.Second) // the policy's grace and the chute's 5 s average
	fpsTenth, cpuTenth := status().FPS, chuteCPU(t, base, operator)
	t.Logf("seccams processes %.1f frames/s (%.0f%% of a core) at its manifest's cpu_max (1), %.1f (%.0f%%) at cpu_max 0.1", fpsHalf, cpuHalf, fpsTenth, cpuTenth)
	if fpsTenth > 0.75*fpsHalf || cpuTenth > 13 {
		t.Errorf("cpu_max 1 -> 0.1 took frames/s from %.1f to %.1f, its CPU from %.0f%% to %.0f%%", fpsHalf, fpsTenth, cpuHalf, cpuTenth)
	}

	// The owner's page in Chromium: the live view and a card per event.
	ui := browser(t)
	relay := relayTo(t, laptop, netip.AddrPortFrom(lanAddr.Addr(), secCamsPort).String())
	if err := chromedp.Do(ui, chromedp.Navigate("http://"+relay+"/")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ui, "#status", regexp.MustCompile(`camera up, [0-9.]+ frames/s processed — 2 events`), 10*time.Second)
	waitText(t, ui, "#event-"+regexp.QuoteMeta(offline.ID), regexp.MustCompile(`frames, alert sent`), 10*time.Second)
	thumbs := `[...document.querySelectorAll(".event img")].filter(i => i.complete && i.naturalWidth === 160).length`
	for deadline := time.Now().Add(5 * time.Second); evaluate[int](t, ui, thumbs) != 2; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d event thumbnails shown, want 2", evaluate[int](t, ui, thumbs))
			break
		}
	}
	if w := evaluate[int](t, ui, `document.getElementById("live").naturalWidth`); w != camera.Width {
		t.Errorf("live view %d pixels wide", w)
	}

	// What its limits are sized on (see its chute.yaml).
	var usage struct {
		Samples []struct{ Mem, Pids int64 }
	}
	if code, body := call(t, http.DefaultClient, base+"/seccams/usage", operator, "GET", ""); code == 200 && json.Unmarshal(body, &usage) == nil {
		var mem, pids int64
		for _, s := range usage.Samples {
			mem, pids = max(mem, s.Mem), max(pids, s.Pids)
		}
		t.Logf("seccams: peak memory %.1f MiB, %d pids, over %d s", float64(mem)/(1<<20), pids, len(usage.Samples))
	}

	// A restart and an update keep the events.
	before := events()
	if code, body := call(t, http.DefaultClient, base+"/seccams/restart?wait=1", operator, "POST", ""); code != 200 {
		t.Fatalf("restart: %d %s", code, body)
	}
	same := func(what string) {
		t.Helper()
		var after []secCamsEvent
		waitFor("the page after "+what, 30*time.Second, func() bool {
			var list struct{ Events []secCamsEvent }
			if get("/api/events", &list) != nil {
				return false
			}
			after = list.Events
			return true
		})
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("events after %s:\n%+v\nbefore:\n%+v", what, after, before)
		}
	}
	same("a restart")
	if code, body := call(t, http.DefaultClient, base+"/seccams?wait=1", operator, "PUT", string(withVersion(t, pkg, "1.0.1"))); code != 200 || !strings.Contains(string(body), `"state": "done"`) {
		t.Fatalf("update: %d %s", code, body)
	}
	same("an update")

	// Its volume filled by other files until less than its reserve is
	// left: the next event drops the oldest to keep the reserve free.
	vol := filepath.Join(data, "chutes", "seccams", "data")
	var fs unix.Statfs_t
	if err := unix.Statfs(vol, &fs); err != nil {
		t.Fatal(err)
	}
	const reserve = 1 << 20 // its manifest's SECCAMS_RESERVE
	filler, err := os.Create(filepath.Join(vol, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Fallocate(int(filler.Fd()), 0, 0, int64(fs.Bavail)*int64(fs.Bsize)-reserve-(100<<10))
	filler.Close()
	if err != nil {
		t.Fatal(err)
	}
	mode.Store(camera.Motion)
	waitFor("an event dropping the oldest for room", 20*time.Second, func() bool {
		st := status()
		return st.Store.Events >= 1 && st.Store.Evicted >= 1
	})
	time.Sleep(2 * time.Second) // more of its frames
	mode.Store(camera.Still)
	after := events()
	if after[0].ID == before[0].ID || after[len(after)-1].ID == before[len(before)-1].ID {
		t.Errorf("events with the volume full: %+v; before: %+v; want the new one kept and the oldest dropped", after, before)
	}
	if err := unix.Statfs(vol, &fs); err != nil || int64(fs.Bavail)*int64(fs.Bsize) < reserve-(64<<10) {
		t.Errorf("%d bytes free on its volume, reserve %d: %v", int64(fs.Bavail)*int64(fs.Bsize), reserve, err)
	}
	t.Logf("with the volume full: %d events (%d dropped for room), %d bytes free", status().Store.Events, status().Store.Evicted, int64(fs.Bavail)*int64(fs.Bsize))
}
