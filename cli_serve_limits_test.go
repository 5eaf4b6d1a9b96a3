package main

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"paradrop/api"
	"paradrop/api/apitest"
)

// limitedDaemon is serve in-process on a loopback port, with its own data
// directory and cgroup parent.
type limitedDaemon struct {
	addr, data, token string
}

func startLimitedDaemon(t *testing.T, opts serveOptions) *limitedDaemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the chute manager needs root")
	}
	d := &limitedDaemon{data: t.TempDir()}
	opts.dataDir = d.data
	opts.cgroups = fmt.Sprintf("/paradrop-limits-%d-%s", os.Getpid(), t.Name())
	d.addr = startServe(t, opts)
	tok, err := os.ReadFile(filepath.Join(d.data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	d.token = strings.TrimSpace(string(tok))
	return d
}

// startServe runs serve in-process on a loopback port until the test ends
// and returns its address. opts needs a data directory and a cgroup parent
// of the test's own: the daemon removes groups under its parent that are
// not its chutes, such as other tests'.
func startServe(t *testing.T, opts serveOptions) string {
	t.Helper()
	if opts.listen == "" {
		opts.listen = "127.0.0.1:0"
	}
	opts.logf = func(format string, args ...any) { t.Logf("daemon: "+format, args...) }
	addr := make(chan net.Addr, 1)
	opts.ready = func(a net.Addr) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if opts.cgroups != "" {
			dropCgroupParent(t, opts.cgroups)
		}
	})
	select {
	case a := <-addr:
		return a.String()
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	return ""
}

func (d *limitedDaemon) dialFrom(t *testing.T, ip string) net.Conn {
	return apitest.DialFrom(t, ip, d.addr)
}

func (d *limitedDaemon) health(t *testing.T) {
	t.Helper()
	apitest.Health(t, d.addr)
}

func (d *limitedDaemon) stagingDirs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(d.data, "staging"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(ents)
}

// Uploads that stall after their first bytes, from several clients, are
// dropped after the stall timeout with their staging directories; the
// daemon's descriptors come back and a fresh client is answered throughout.
func TestServeStalledUploads(t *testing.T) {
	lim := api.Limits{StallTimeout: 2 * time.Second, MinRate: 1000,
		MaxUploads: 6, MaxUploadsPerClient: 3, MaxConns: 64, MaxConnsPerClient: 8}
	d := startLimitedDaemon(t, serveOptions{maxUpload: 1 << 20, limits: lim})
	d.health(t)
	base := apitest.OpenFDs(t)

	// A tar header's worth of a package, then nothing.
	var conns []net.Conn
	for i := range 5 {
		for range 5 {
			c := d.dialFrom(t, fmt.Sprintf("127.0.0.%d", i+2))
			fmt.Fprintf(c, "POST /api/v1/chutes HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: 500000\r\n\r\n", d.token)
			c.Write(make([]byte, 700))
			conns = append(conns, c)
		}
	}
	peak := 0
	for deadline := time.Now().Add(lim.StallTimeout / 2); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		peak = max(peak, d.stagingDirs(t))
	}
	if peak == 0 || peak > lim.MaxUploads {
		t.Errorf("%d staging directories at once, want 1..%d (the upload cap)", peak, lim.MaxUploads)
	}
	d.health(t)

	for deadline := time.Now().Add(lim.StallTimeout + 5*time.Second); d.stagingDirs(t) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if n := d.stagingDirs(t); n != 0 {
		t.Fatalf("%d staging directories left 5s after the stall timeout (%v)", n, lim.StallTimeout)
	}
	// Every stalled upload got an answer or was hung up on.
	var codes []int
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			codes = append(codes, resp.StatusCode)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a stalled upload still open after 3s")
		}
	}
	for _, code := range codes {
		if code != http.StatusRequestTimeout && code != http.StatusTooManyRequests && code != http.StatusServiceUnavailable {
			t.Errorf("answers to the stalled uploads: %v, want 408 (stalled), 429 or 503 (over the caps)", codes)
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	if held := apitest.OpenFDs(t) - base - len(conns); held > 4 {
		t.Errorf("the daemon holds %d more descriptors after the stalled uploads ended", held)
	}
	d.health(t)
}

// An upload over --max-upload without a Content-Length is refused with
// 413 as one with it is, not as a corrupt package.
func TestServeChunkedUploadTooLarge(t *testing.T) {
	const limit = 1 << 20
	d := startLimitedDaemon(t, serveOptions{maxUpload: limit})
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		tw.WriteHeader(&tar.Header{Name: "chute.yaml", Mode: 0o644, Size: 0, Typeflag: tar.TypeReg})
		tw.WriteHeader(&tar.Header{Name: "rootfs/big", Mode: 0o644, Size: 2 * limit, Typeflag: tar.TypeReg})
		_, err := tw.Write(make([]byte, 2*limit))
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", "http://"+d.addr+"/api/v1/chutes", pr)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if req.ContentLength != -1 && req.ContentLength != 0 {
		t.Fatalf("request sent with a Content-Length (%d); the test wants chunked", req.ContentLength)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "too large") {
		t.Errorf("chunked upload of %d bytes over a %d limit: %d %s, want 413 too large", 2*limit, limit, resp.StatusCode, body)
	}
	if n := d.stagingDirs(t); n != 0 {
		t.Errorf("%d staging directories left after the refused upload", n)
	}
}

// A scrape of a daemon with no chute, before its first usage sample, has
// the gateway's series, with sane values.
func TestServeMetricsWithoutChutes(t *testing.T) {
	d := startLimitedDaemon(t, serveOptions{})
	req, _ := http.NewRequest("GET", "http://"+d.addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels ...string) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
	metrics:
		for _, m := range f.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.Label {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			}
		}
		return 0, false
	}
	for _, c := range []struct {
		name   string
		labels []string
		ok     func(float64) bool
		want   string
	}{
		{"paradrop_gateway_memory_total_bytes", nil, func(v float64) bool { return v > 16<<20 }, "> 16 MiB"},
		{"paradrop_gateway_memory_used_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"paradrop_gateway_disk_total_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"paradrop_gateway_disk_used_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"paradrop_gateway_cpu_busy_seconds_total", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"paradrop_gateway_cpus", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"paradrop_chutes", []string{"state", "running"}, func(v float64) bool { return v == 0 }, "0"},
		{"paradrop_chutes", []string{"state", "failed"}, func(v float64) bool { return v == 0 }, "0"},
		{"paradrop_chute_restarts_total", nil, func(v float64) bool { return v == 0 }, "0"},
		{"paradrop_oom_kills_total", nil, func(v float64) bool { return v == 0 }, "0"},
		{"paradrop_build_info", []string{"version", buildVersion()}, func(v float64) bool { return v == 1 }, "1"},
		{"paradrop_start_time_seconds", nil, func(v float64) bool {
			return v > float64(time.Now().Add(-time.Minute).Unix()) && v <= float64(time.Now().Unix()+1)
		}, "within the last minute"},
	} {
		v, ok := value(c.name, c.labels...)
		if !ok || !c.ok(v) {
			t.Errorf("%s%v: %v (present %v), want %s", c.name, c.labels, v, ok, c.want)
		}
	}
	used, _ := value("paradrop_gateway_memory_used_bytes")
	total, _ := value("paradrop_gateway_memory_total_bytes")
	if used > total {
		t.Errorf("memory used %v > total %v", used, total)
	}
}
