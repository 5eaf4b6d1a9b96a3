package cloud

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

var names = map[string]netip.Addr{
	"alerts.seccams.example": netip.MustParseAddr("203.0.113.11"),
	"cloud.seccams.example":  netip.MustParseAddr("203.0.113.10"),
}

// The receiver keeps what is POSTed, at most MaxAlerts of them, refuses a
// body over MaxAlertBody without keeping it, and lists them at /alerts.
func TestReceiver(t *testing.T) {
	c := &Cloud{cfg: Config{Logf: func(string, ...any) {}}}
	post := func(body string) int {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "http://alerts.seccams.example/v1/alert", strings.NewReader(body))
		c.ServeHTTP(w, r)
		return w.Code
	}
	if code := post(strings.Repeat("x", MaxAlertBody+1)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("an oversized alert: %d", code)
	}
	for i := range MaxAlerts + 5 {
		if code := post(`{"n":` + string(rune('0'+i%10)) + `}`); code != http.StatusAccepted {
			t.Fatalf("alert %d: %d", i, code)
		}
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("GET", "http://alerts.seccams.example/alerts", nil))
	var got struct{ Alerts []Alert }
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Alerts) != MaxAlerts || got.Alerts[0].Body != `{"n":5}` || got.Alerts[0].Host != "alerts.seccams.example" || got.Alerts[0].Path != "/v1/alert" {
		t.Errorf("kept %d alerts, the first %+v", len(got.Alerts), got.Alerts[0])
	}
}

// TestCloud: the gateway (a namespace of the test's) reaches the cloud
// over its uplink, resolves the cloud's names and no others through it,
// delivers an alert by name; with the uplink down it reaches nothing;
// Close leaves neither namespace nor uplink.
func TestCloud(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	gw := nettest.NewHost(t)
	dir := t.TempDir()
	cfg := Config{Dir: dir, NetNS: gw.NetNS, Uplink: "wan0", Gateway: netip.MustParsePrefix("203.0.113.1/24"),
		Host: netip.MustParseAddr("203.0.113.53"), Names: names, Logf: t.Logf}
	bad := cfg
	bad.Names = map[string]netip.Addr{"x.example": netip.MustParseAddr("198.51.100.9")}
	if _, err := Start(bad); err == nil {
		t.Error("a name outside the uplink's subnet was taken")
	}
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	resolve := func(name string) (*dns.Msg, error) {
		conn, err := nettest.Dial(t, gw, c.DNS().String(), 3*time.Second)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).ExchangeWithConn(m, &dns.Conn{Conn: conn})
		return r, err
	}
	r, err := resolve("Alerts.SecCams.Example")
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "203.0.113.11" {
		t.Fatalf("alerts.seccams.example: %v %v", r, err)
	}
	if r, err := resolve("example.com"); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("a name the cloud does not have: %v %v", r, err)
	}
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(_ context.Context, _, _ string) (net.Conn, error) {
			return nettest.Dial(t, gw, "203.0.113.11:80", 3*time.Second)
		}}}
	resp, err := hc.Post("http://alerts.seccams.example/alert", "application/json", strings.NewReader(`{"event":"motion"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if a := c.Alerts(); resp.StatusCode != http.StatusAccepted || len(a) != 1 || a[0].Body != `{"event":"motion"}` || !strings.HasPrefix(a[0].From, "203.0.113.1:") {
		t.Errorf("the alert: %d, kept %+v", resp.StatusCode, a)
	}

	if err := c.SetUplink(false); err != nil {
		t.Fatal(err)
	}
	if _, err := resolve("alerts.seccams.example"); err == nil {
		t.Error("the cloud answered with the uplink down")
	}
	if err := c.SetUplink(true); err != nil {
		t.Fatal(err)
	}
	if _, err := resolve("alerts.seccams.example"); err != nil {
		t.Errorf("with the uplink back: %v", err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cloud")); !os.IsNotExist(err) {
		t.Errorf("the cloud's namespace is left: %v", err)
	}
	netconf.InNetNS(gw.NetNS, func() error {
		if _, err := netlink.LinkByName("wan0"); err == nil {
			t.Error("the uplink is left at the gateway")
		}
		return nil
	})
}
