//go:build !router

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/vishvananda/netlink"

	"paradrop/api"
	"paradrop/examples"
	"paradrop/examples/cloud"
	"paradrop/examples/lan"
	"paradrop/netconf"
	"paradrop/netconf/nettest"
	"paradrop/sdn"
)

// TestDemo runs what `make demo` runs, with the gateway in a namespace of
// the test's: the demo makes its home (a LAN of sensors, a fake Internet
// on the uplink, a camera), installs hello, EnvSense and SecCams and says
// where they are.
// The sensors' readings reach EnvSense, whose page in Chromium shows a
// card per sensor, marks one switched silent by its mode file and leaves
// its silence blank in the chart once it reports again; EnvSense keeps
// working with the WAN cut. The operator UI links each chute's page on the
// LAN, and the links lead there. Chutes resolve names through the
// gateway: a chute with wan the cloud's names (and its alert reaches the
// cloud host), not another chute's name; a chute without wan is refused
// outside names. The owner's request to SecCams' vendor's cloud is
// answered by SecCams, and motion before the camera is an alert at the
// cloud host. Stopping the demo leaves nothing of its home.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nettest.Require(t, "busybox")
	// Cleanups, not defers: a failing step's Fatal runs defers first, and
	// the demo must be up while the chutes are removed (see stop).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	if _, err := examples.EnvSense(ctx, examples.CacheDir()); errors.Is(err, examples.ErrNoPackages) {
		t.Skipf("apt cannot give Debian's python3: %v", err)
	}
	gw := nettest.NewHost(t)
	data := t.TempDir()
	// The camera starts still: SecCams sends alerts only when the test
	// makes motion.
	if err := os.MkdirAll(filepath.Join(data, "lan"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "lan", "camera.mode"), []byte("still\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := new(syncBuffer)
	opts := defaultServeOptions()
	opts.dataDir, opts.listen = data, "127.0.0.1:0"
	opts.cgroups = fmt.Sprintf("/paradrop-demo-test-%d", os.Getpid())
	t.Cleanup(func() { dropCgroupParent(t, opts.cgroups) })
	opts.network = &sdn.Config{NetNS: gw.NetNS, Subnet: sdn.DefaultSubnet}
	opts.logf = func(format string, args ...any) { t.Logf("demo: "+format, args...) }
	addrc := make(chan net.Addr, 1)
	opts.ready = func(a net.Addr) { addrc <- a }
	demoCtx, stopDemo := context.WithCancel(ctx)
	t.Cleanup(stopDemo)
	done := make(chan error, 1)
	go func() { done <- runDemo(demoCtx, &cliEnv{stdout: out, stderr: out}, opts, 3) }()
	var ui, base string
	select {
	case a := <-addrc:
		ui = "http://" + a.String()
		base = ui + "/api/v1/chutes/"
	case err := <-done:
		t.Fatalf("demo: %v", err)
	}
	tok, err := os.ReadFile(filepath.Join(data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	operator := strings.TrimSpace(string(tok))
	// Nothing of the test's left, even when it fails: the chutes removed,
	// then the demo stopped, which removes its home.
	var once sync.Once
	var demoErr error
	stop := func() {
		once.Do(func() {
			for _, name := range []string{"envsense", "hello", "seccams", "hdstream", "probe", "quiet"} {
				if code, body := call(t, http.DefaultClient, base+name+"?wait=1", operator, "DELETE", ""); code != 200 && code != 404 {
					t.Errorf("remove %s: %d %s", name, code, body)
				}
			}
			stopDemo()
			demoErr = <-done
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(3 * time.Minute); !strings.Contains(out.String(), "ParaDrop demo gateway is up."); {
		if time.Now().After(deadline) {
			t.Fatalf("the demo never said it is up:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{"operator UI:    " + ui + "/",
		"hello (busybox httpd): http://198.51.100.1:8001/ (from the LAN), http://10.131.0.",
		"EnvSense:       http://198.51.100.1:8002/ (from the LAN), http://10.131.0.",
		"s1 198.51.100.11, s2 198.51.100.12, s3 198.51.100.13, on the LAN", "echo silent > " + filepath.Join(data, "lan", "s1.mode"),
		"SecCams:        http://198.51.100.1:8003/ (from the LAN), http://10.131.0.",
		"and at http://203.0.113.80/ (cloud.seccams.example, its vendor's cloud: the LAN's requests are answered by the chute)",
		"its camera:     198.51.100.30 (user admin, password seccams), on the LAN", "echo motion > " + filepath.Join(data, "lan", "camera.mode"),
		"fake Internet:  203.0.113.53 on the uplink pdwan0, the chutes' upstream resolver; its names: alerts.seccams.example 203.0.113.11, cloud.seccams.example 203.0.113.80",
		"alerts it got:  http://203.0.113.11/alerts (from the gateway)",
		"HD stream:      http://198.51.100.1:8004/ (from the LAN), http://10.131.0.",
		"its viewer:     tv 198.51.100.41, on the LAN", "share CPU 0 (the operator's cpus policy)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's words lack %q:\n%s", want, out)
		}
	}

	// The owner at a sensor's place on the LAN.
	s1 := &lan.Device{Name: "sensor-s1", NetNS: filepath.Join(data, "lan", "sensor-s1")}
	owner := s1.HTTPClient(5 * time.Second)
	sensors := func() (map[string]bool, map[string]int) {
		var st struct {
			Sensors []struct {
				ID    string
				Count int
				Stale bool
			}
		}
		resp, err := owner.Get("http://198.51.100.1:8002/api/sensors")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		stale, counts := map[string]bool{}, map[string]int{}
		for _, s := range st.Sensors {
			stale[s.ID], counts[s.ID] = s.Stale, s.Count
		}
		return stale, counts
	}
	waitFor := func(what string, ok func(map[string]bool, map[string]int) bool) map[string]int {
		t.Helper()
		for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			stale, counts := sensors()
			if ok(stale, counts) {
				return counts
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: stale %v, counts %v", what, stale, counts)
			}
		}
	}
	waitFor("every sensor reports", func(_ map[string]bool, c map[string]int) bool {
		return len(c) == 3 && c["s1"] >= 2 && c["s2"] >= 2 && c["s3"] >= 2
	})

	// Asked from the gateway's namespace, where the uplink is: every
	// connection dialled there.
	fromGW := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
			return nettest.Dial(t, gw, addr, 3*time.Second)
		}}}
	demoUILinks(t, ui, operator, owner)
	demoChuteNames(t, base, operator, owner, fromGW)
	demoSecCams(t, data, owner, fromGW)
	demoHDStream(t, base, operator, owner)

	// EnvSense's page in Chromium, as the owner on the LAN sees it.
	page := browser(t)
	if err := chromedp.Do(page, chromedp.Navigate("http://"+relayTo(t, s1, "198.51.100.1:8002")+"/")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s1", "s2", "s3"} {
		waitText(t, page, "#sensor-"+id, regexp.MustCompile(`°C, .* %, clock offset .* s, last \d+ s ago, [1-9]\d* stored`), 10*time.Second)
	}
	mode := filepath.Join(data, "lan", "s3.mode")
	if err := os.WriteFile(mode, []byte("silent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("s3 silenced by its mode file", func(stale map[string]bool, _ map[string]int) bool {
		return stale["s3"] && !stale["s1"] && !stale["s2"]
	})
	waitText(t, page, "#sensor-s3 h2", regexp.MustCompile(`silent`), 10*time.Second)
	if text := waitText(t, page, "#sensor-s1 h2", regexp.MustCompile(`s1`), time.Second); strings.Contains(text, "silent") {
		t.Errorf("s1 is shown silent: %s", text)
	}
	time.Sleep(4 * time.Second) // a silence clearly longer than the staleness limit
	if err := os.WriteFile(mode, []byte("normal\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The WAN cut meanwhile: EnvSense goes on, as it needs none.
	setUplink := func(up bool) {
		t.Helper()
		if err := netconf.InNetNS(gw.NetNS, func() error {
			l, err := netlink.LinkByName("pdwan0")
			if err == nil && up {
				err = netlink.LinkSetUp(l)
			} else if err == nil {
				err = netlink.LinkSetDown(l)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	setUplink(false)
	_, before := sensors()
	waitFor("s3 back and every sensor reporting with the WAN cut", func(stale map[string]bool, c map[string]int) bool {
		return !stale["s3"] && c["s1"] >= before["s1"]+3 && c["s2"] >= before["s2"]+3 && c["s3"] >= before["s3"]+3
	})
	setUplink(true)
	waitText(t, page, "#sensor-s3 h2", regexp.MustCompile(`^s3\s*$`), 10*time.Second)
	// The chart's temperature line (#c33) has a blank run of columns where
	// s3 was silent, and s1's, whose readings came every 2 s, none.
	// The chart is redrawn on its own clock, after the header: until it has
	// drawn s3's readings since the silence, the silence is at the line's
	// end and no gap. So look until it has, 10 s at most.
	gapsJS := `["s1", "s3"].map((id) => {
	  const cv = document.querySelector("#sensor-" + id + " canvas");
	  const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
	  const red = [];
	  for (let x = 1; x < cv.width - 1; x++) {
	    let r = false;
	    for (let y = 1; y < cv.height - 1 && !r; y++) {
	      const i = (y * cv.width + x) * 4;
	      r = d[i] > 150 && d[i + 1] < 120 && d[i + 2] < 120 && d[i + 3] > 100;
	    }
	    red.push(r);
	  }
	  let run = 0, most = 0;
	  for (let x = red.indexOf(true); x >= 0 && x <= red.lastIndexOf(true); x++) {
	    run = red[x] ? 0 : run + 1;
	    most = Math.max(most, run);
	  }
	  return most;
	})`
	// 14 s or more of silence in a 300 s window 360 px wide; where the
	// humidity line crosses the temperature line it hides a few columns.
	var gaps []int
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		gaps = evaluate[[]int](t, page, gapsJS)
		if ok := len(gaps) == 2 && gaps[0] <= 6 && gaps[1] >= 14; ok || time.Now().After(end) {
			break
		}
	}
	if len(gaps) != 2 || gaps[0] > 6 || gaps[1] < 14 {
		t.Errorf("blank columns in the temperature lines of s1 and s3: %v, want a few at most and a gap of 14 or more", gaps)
	}

	stop()
	if demoErr != nil {
		t.Errorf("demo: %v", demoErr)
	}
	for _, ns := range []string{"lan/sensor-s1", "lan/sensor-s2", "lan/sensor-s3", "lan/camera", "wan/cloud"} {
		if _, err := os.Stat(filepath.Join(data, ns)); !os.IsNotExist(err) {
			t.Errorf("the namespace %s is left: %v", ns, err)
		}
	}
	netconf.InNetNS(gw.NetNS, func() error {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, "pdlan-") || l.Attrs().Name == "pdwan0" {
				t.Errorf("the demo left its link %s", l.Attrs().Name)
			}
		}
		addrs, _ := netlink.AddrList(nil, netlink.FAMILY_V4)
		for _, a := range addrs {
			if strings.HasPrefix(a.IP.String(), "203.0.113.") {
				t.Errorf("the demo left the address %s", a.IPNet)
			}
		}
		return nil
	})
}

// demoUILinks: in Chromium, the operator UI's row of each chute that
// exposes a web page links it at the gateway's LAN address, and owner (on
// the LAN) gets that chute's page there; the chute's page in the UI links
// it too.
func demoUILinks(t *testing.T, ui, operator string, owner *http.Client) {
	t.Helper()
	b := browser(t)
	runUI(t, b, "log in with the operator token and see the chutes",
		chromedp.Navigate(ui+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), operator),
		chromedp.Click(chromedp.CSS("#token-login button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-chute="envsense"] a.chute-page`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-chute="hello"] a.chute-page`)),
	)
	for name, want := range map[string]string{"hello": "Hello from a chute", "envsense": "<h1>EnvSense</h1>", "seccams": "<h1>SecCams</h1>", "hdstream": "<h1>HD stream</h1>"} {
		href := evaluate[string](t, b, `document.querySelector('tr[data-chute="`+name+`"] a.chute-page')?.href || ""`)
		wantHref := map[string]string{"hello": "http://198.51.100.1:8001/", "envsense": "http://198.51.100.1:8002/", "seccams": "http://198.51.100.1:8003/", "hdstream": "http://198.51.100.1:8004/"}[name]
		if href != wantHref {
			t.Errorf("%s's row links %q, want %q", name, href, wantHref)
			continue
		}
		resp, err := owner.Get(href)
		if err != nil {
			t.Errorf("%s's link from the LAN: %v", name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s's link from the LAN: %d %.200s", name, resp.StatusCode, body)
		}
	}
	// The chute's own page in the UI links it too.
	runUI(t, b, "open EnvSense's page in the UI",
		chromedp.Click(chromedp.CSS(`tr[data-chute="envsense"] a[href="/chutes/envsense"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#view a.chute-page`)),
	)
	if href := evaluate[string](t, b, `document.querySelector('#view a.chute-page').href`); href != "http://198.51.100.1:8002/" {
		t.Errorf("EnvSense's page in the UI links %q", href)
	}
}

// probeScript asks the gateway's resolver for a cloud name, another
// chute's name and its own, then sends an alert to the cloud at the
// address it got for the name (busybox-static's wget cannot resolve: a
// static glibc's getaddrinfo crashes without its NSS modules; nor take
// -T, which crashes it too).
const probeScript = `httpd -p 80 -h /www; nslookup alerts.seccams.example 2>&1; nslookup envsense 2>&1; nslookup NAME 2>&1;
ip=$(nslookup alerts.seccams.example | awk '/^Address: [0-9.]+$/ {print $2; exit}');
wget -q -O- --header 'Host: alerts.seccams.example' --header 'Content-Type: application/json' --post-data '{"event":"probe from NAME"}' "http://$ip/alert" 2>&1;
echo; echo probe done; exec sleep 1000`

// demoChuteNames: a chute with wan resolves the cloud's name through the
// gateway (which forwards to the cloud host), not EnvSense's (not its
// peer), its own; its alert reaches the cloud host, from the gateway's
// uplink address; a chute without wan is refused the cloud's name and
// cannot send.
func demoChuteNames(t *testing.T, base, operator string, owner, fromGW *http.Client) {
	t.Helper()
	logs := map[string]string{}
	for name, net := range map[string]string{"probe": "{wan: true}", "quiet": "{}"} {
		pkg, err := examples.Package(fmt.Sprintf("name: %s\nversion: 1.0.0\ncommand: [\"/bin/sh\", \"-c\", %q]\nnet: %s\n",
			name, strings.ReplaceAll(probeScript, "NAME", name), net), map[string]string{"www/index.html": "answered by the " + name + " chute\n"})
		if err != nil {
			t.Fatal(err)
		}
		if code, body := call(t, http.DefaultClient, strings.TrimSuffix(base, "/")+"?wait=1", operator, "POST", string(pkg)); code != 200 || !strings.Contains(string(body), `"state": "done"`) {
			t.Fatalf("install %s: %d %s", name, code, body)
		}
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs[name], "probe done"); time.Sleep(300 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never finished:\n%s", name, logs[name])
			}
			_, body := call(t, http.DefaultClient, base+name+"/logs", operator, "GET", "")
			logs[name] = string(body)
		}
	}
	probe, quiet := logs["probe"], logs["quiet"]
	if !strings.Contains(probe, "Address: 203.0.113.11") || !regexp.MustCompile(`can't find envsense[.:]* NXDOMAIN`).MatchString(probe) ||
		!regexp.MustCompile(`Address: 10\.131\.0\.\d+`).MatchString(probe) || !strings.Contains(probe, `{"ok":true}`) {
		t.Errorf("the chute with wan: want the cloud's address, NXDOMAIN for envsense, its own address and the cloud's answer:\n%s", probe)
	}
	if !regexp.MustCompile(`can't find alerts.seccams.example[.:]* REFUSED`).MatchString(quiet) || strings.Contains(quiet, "203.0.113.") || strings.Contains(quiet, `"ok"`) {
		t.Errorf("the chute without wan: want REFUSED and no answer from the cloud:\n%s", quiet)
	}
	var probes []cloud.Alert
	for _, a := range cloudAlerts(t, fromGW) {
		if strings.Contains(a.Body, "probe from") {
			probes = append(probes, a)
		}
	}
	if len(probes) != 1 || probes[0].Body != `{"event":"probe from probe"}` || probes[0].Host != "alerts.seccams.example" || !strings.HasPrefix(probes[0].From, "203.0.113.1:") {
		t.Errorf("the cloud's alerts from probes: %+v, want the probe's one, from the gateway's uplink", probes)
	}
}

// cloudAlerts are the alerts the demo's cloud host got.
func cloudAlerts(t *testing.T, fromGW *http.Client) []cloud.Alert {
	t.Helper()
	var got struct{ Alerts []cloud.Alert }
	resp, err := fromGW.Get("http://203.0.113.11/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got.Alerts
}

// demoSecCams: the owner's request to SecCams' vendor's cloud address is
// answered by the SecCams chute, the gateway's own by the cloud host;
// motion before the demo's camera is an alert at the cloud host, sent by
// name from the gateway's uplink.
func demoSecCams(t *testing.T, data string, owner, fromGW *http.Client) {
	t.Helper()
	for who, c := range map[string]*http.Client{"<h1>SecCams</h1>": owner, "the demo's fake Internet": fromGW} {
		resp, err := c.Get("http://203.0.113.80/")
		if err != nil {
			t.Errorf("GET the vendor's cloud, wanting %q: %v", who, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), who) {
			t.Errorf("GET the vendor's cloud: %d %.300q, want %q", resp.StatusCode, body, who)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "lan", "camera.mode"), []byte("motion\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var seen []cloud.Alert
		for _, a := range cloudAlerts(t, fromGW) {
			if a.Path == "/api/alerts" {
				seen = append(seen, a)
			}
		}
		if len(seen) > 0 {
			if a := seen[0]; a.Host != "alerts.seccams.example" || !strings.Contains(a.Body, `"camera":"front-door"`) || !strings.HasPrefix(a.From, "203.0.113.1:") {
				t.Errorf("SecCams' alert: %+v", a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no alert from SecCams at the cloud host 30 s after the camera saw motion")
		}
	}
	os.WriteFile(filepath.Join(data, "lan", "camera.mode"), []byte("still\n"), 0o644)
}

// demoHDStream: the demo's viewer on the LAN pulls the HD stream and its
// reports show in the chute's API; the operator put the stream and SecCams
// on one CPU, as the chutes' resources say.
func demoHDStream(t *testing.T, base, operator string, owner *http.Client) {
	t.Helper()
	var st hdStreamStatus
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		err := lanGet(owner, "http://198.51.100.1:8004", "/api/status", &st)
		if err == nil && len(st.Reports) == 1 && st.Reports[0].Viewer == "tv" && st.Reports[0].Mbps > 1 && time.Since(st.Reports[0].At) < 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fresh report of the viewer tv in the HD stream's status: %+v, %v", st, err)
		}
	}
	for _, name := range []string{"seccams", "hdstream"} {
		var r struct{ CPUs string }
		code, body := call(t, http.DefaultClient, base+name+"/resources", operator, "GET", "")
		if err := json.Unmarshal(body, &r); code != 200 || err != nil || r.CPUs != demoSharedCPU {
			t.Errorf("%s's resources: %d %s, want cpus %q", name, code, body, demoSharedCPU)
		}
	}
}
