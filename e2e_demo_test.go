package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"paradrop/api"
	"paradrop/examples"
	"paradrop/netconf"
	"paradrop/netconf/nettest"
	"paradrop/sdn"
)

// TestDemo runs what `make demo` runs, with the gateway in a namespace of
// the test's: the demo makes its LAN of sensors, installs hello and
// EnvSense and says where they are; the sensors' readings reach EnvSense,
// one switched silent by its mode file turns stale; stopping the demo
// removes the LAN.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nettest.Require(t, "busybox")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := examples.EnvSense(ctx, examples.CacheDir()); errors.Is(err, examples.ErrNoPackages) {
		t.Skipf("apt cannot give Debian's python3: %v", err)
	}
	gw := nettest.NewHost(t)
	data := t.TempDir()
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
	defer stopDemo()
	done := make(chan error, 1)
	go func() { done <- runDemo(demoCtx, &cliEnv{stdout: out, stderr: out}, opts, 3) }()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String() + "/api/v1/chutes/"
	case err := <-done:
		t.Fatalf("demo: %v", err)
	}
	tok, err := os.ReadFile(filepath.Join(data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	operator := strings.TrimSpace(string(tok))
	// Nothing of the test's left, even when it fails: the chutes removed,
	// then the demo stopped, which removes its LAN.
	var once sync.Once
	var demoErr error
	stop := func() {
		once.Do(func() {
			for _, name := range []string{"envsense", "hello"} {
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
	for _, want := range []string{"hello (busybox httpd), its page: http://10.131.0.", "EnvSense:       http://10.131.0.", "http://198.51.100.1:8002/ (from the LAN)",
		"s1 198.51.100.11, s2 198.51.100.12, s3 198.51.100.13, on the LAN", "echo silent > " + filepath.Join(data, "lan", "s1.mode")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's words lack %q:\n%s", want, out)
		}
	}

	// The owner at a sensor's place on the LAN.
	s1 := &nettest.Host{Name: "sensor-s1", NetNS: filepath.Join(data, "lan", "sensor-s1")}
	owner := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return nettest.Dial(t, s1, addr, 3*time.Second)
		},
	}}
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
	waitFor := func(what string, ok func(map[string]bool, map[string]int) bool) {
		t.Helper()
		for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			stale, counts := sensors()
			if ok(stale, counts) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: stale %v, counts %v", what, stale, counts)
			}
		}
	}
	waitFor("every sensor reports", func(_ map[string]bool, c map[string]int) bool {
		return len(c) == 3 && c["s1"] >= 2 && c["s2"] >= 2 && c["s3"] >= 2
	})
	if err := os.WriteFile(filepath.Join(data, "lan", "s3.mode"), []byte("silent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("s3 silenced by its mode file", func(stale map[string]bool, _ map[string]int) bool {
		return stale["s3"] && !stale["s1"] && !stale["s2"]
	})

	stop()
	if demoErr != nil {
		t.Errorf("demo: %v", demoErr)
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		if _, err := os.Stat(filepath.Join(data, "lan", "sensor-"+s)); !os.IsNotExist(err) {
			t.Errorf("sensor %s's namespace is left: %v", s, err)
		}
	}
	netconf.InNetNS(gw.NetNS, func() error {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, "pdlan-") {
				t.Errorf("the demo left its LAN link %s", l.Attrs().Name)
			}
		}
		return nil
	})
}
