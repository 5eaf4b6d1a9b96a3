package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"paradrop/api/apitest"
	"paradrop/chute"
	"paradrop/store"
	"paradrop/usage"
)

func TestSetResources(t *testing.T) {
	f := newFixture(t)
	bad := map[string]string{
		`{"cpu_max": 0.5, "bogus": 1}`:            "unknown field",
		`{"cpu_max": -1}`:                         "negative cpu_max",
		`{"pids": -3}`:                            "negative pids",
		`{"memory": "-5Mi"}`:                      "not a quantity",
		`{"memory": "lots"}`:                      "not a quantity",
		`{"bandwidth": {"egress": "fast"}}`:       "not a rate",
		`{"bandwidth": {"sideways": "1Mbit"}}`:    "unknown field",
		`{"grace": 3}`:                            "not a duration",
		`{}`:                                      "nothing to change",
		``:                                        "empty body",
		`{"pids": 5} {"pids": 6}`:                 "more than one",
		`{"cpu_max": 0.5}?`:                       "more than one",
		`{"cpu_weight": 10, "grace": "-1s"}`:      "negative grace",
		`{"cpu_max": 0.5, "force": "yes please"}`: "cannot unmarshal",
	}
	for body, want := range bad {
		code, resp := f.do(t, "PUT", "/api/v1/chutes/web/resources", body)
		if code != http.StatusBadRequest || !strings.Contains(errorOf(t, resp), want) {
			t.Errorf("PUT resources %s: %d %s, want 400 mentioning %q", body, code, resp, want)
		}
	}
	if _, ok := f.fake.LastResources("web"); ok {
		t.Errorf("a bad request reached the manager")
	}

	code, resp := f.do(t, "PUT", "/api/v1/chutes/web/resources",
		`{"cpu_max": 0.25, "memory": "32Mi", "bandwidth": {"egress": "5Mbit"}, "grace": "2s", "force": true}`)
	var q changeQueued
	if code != http.StatusAccepted || json.Unmarshal(resp, &q) != nil || q.ChangeID == 0 || q.Chute != "web" {
		t.Fatalf("PUT resources: %d %s", code, resp)
	}
	req, _ := f.fake.LastResources("web")
	if *req.CPUMax != 0.25 || *req.Memory != 32<<20 || *req.Bandwidth.Egress != 5e6 || req.Bandwidth.Ingress != nil ||
		time.Duration(*req.Grace) != 2*time.Second || !req.Force || req.Pids != nil {
		t.Errorf("manager got %+v", req)
	}
	if c, _ := f.fake.Change(q.ChangeID); c.Action != "resources" {
		t.Errorf("change %+v, want action resources", c)
	}

	code, resp = f.do(t, "PUT", "/api/v1/chutes/web/resources?wait=1", `{"pids": 10}`)
	var c chute.Change
	if code != http.StatusOK || json.Unmarshal(resp, &c) != nil || c.State != chute.ChangeDone {
		t.Errorf("PUT resources?wait=1: %d %s", code, resp)
	}
	if code, _ := f.do(t, "PUT", "/api/v1/chutes/nope/resources", `{"pids": 10}`); code != http.StatusNotFound {
		t.Errorf("unknown chute: %d", code)
	}
	if code, resp := f.do(t, "GET", "/api/v1/chutes/web/resources", ""); code != http.StatusOK || !strings.Contains(string(resp), `"cpu_max": 1`) {
		t.Errorf("GET resources: %d %s", code, resp)
	}
}

func TestUsageEndpoints(t *testing.T) {
	f := newFixture(t)
	f.fake.SetUsage(usage.Series{Interval: time.Second, Samples: []usage.Sample{
		{T: 1000, CPU: 12.3456, MemUsed: 1, MemTotal: 2, DiskUsed: 3, DiskTotal: 4,
			Ifaces: map[string]usage.Rate{"eth0": {RxBps: 10, TxBps: 20}},
			Chutes: map[string]usage.ChuteSample{"web": {CPU: 50, CPUGateway: 25, Mem: 7, MemLimit: 8, Pids: 2, Disk: 9, RxBps: 1, TxBps: 2}}},
		{T: 2000, Ifaces: map[string]usage.Rate{}, Chutes: map[string]usage.ChuteSample{}},
	}})

	code, resp := f.do(t, "GET", "/api/v1/gateway/usage?window=60", "")
	if code != http.StatusOK {
		t.Fatalf("gateway usage: %d %s", code, resp)
	}
	var gw map[string]any
	json.Unmarshal(resp, &gw)
	want := `{"interval":1,"samples":[` +
		`{"chutes":{"web":{"cpu":25,"mem":7}},"cpu":12.35,"disk_total":4,"disk_used":3,"ifaces":{"eth0":{"rx_bps":10,"tx_bps":20}},"mem_total":2,"mem_used":1,"t":1000},` +
		`{"chutes":{},"cpu":0,"disk_total":0,"disk_used":0,"ifaces":{},"mem_total":0,"mem_used":0,"t":2000}]}`
	if got, _ := json.Marshal(gw); string(got) != want {
		t.Errorf("gateway usage\n got %s\nwant %s", got, want)
	}

	code, resp = f.do(t, "GET", "/api/v1/chutes/web/usage", "")
	var ch map[string]any
	json.Unmarshal(resp, &ch)
	want = `{"interval":1,"samples":[{"cpu":50,"cpu_gateway":25,"disk":9,"mem":7,"mem_limit":8,"oom_kills":0,"pids":2,"rx_bps":1,"t":1000,"tx_bps":2}]}`
	if got, _ := json.Marshal(ch); code != http.StatusOK || string(got) != want {
		t.Errorf("chute usage: %d\n got %s\nwant %s", code, got, want)
	}

	for _, path := range []string{
		"/api/v1/gateway/usage?window=0", "/api/v1/gateway/usage?window=86401", "/api/v1/gateway/usage?window=x",
		"/api/v1/gateway/usage?since=5", "/api/v1/chutes/web/usage?window=-1", "/api/v1/chutes/web/usage?window=1&window=2",
	} {
		if code, resp := f.do(t, "GET", path, ""); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 400", path, code, resp)
		}
	}
	for _, path := range []string{"/api/v1/gateway/usage?window=1", "/api/v1/gateway/usage?window=86400"} {
		if code, _ := f.do(t, "GET", path, ""); code != http.StatusOK {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	if code, _ := f.do(t, "GET", "/api/v1/chutes/nope/usage", ""); code != http.StatusNotFound {
		t.Errorf("usage of an unknown chute: %d", code)
	}
	if code, _ := f.doToken(t, "", "GET", "/api/v1/gateway/usage", ""); code != http.StatusUnauthorized {
		t.Errorf("usage without a token: %d", code)
	}
}

// TestMetrics: /metrics is the operator's unless opened, and what it
// serves Prometheus's own parser reads: the collector's labeled series,
// the build's and the start time, each family typed.
func TestMetrics(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, err := EnsureOperatorToken(db, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	write := func(set *metrics.Set) { set.NewGauge(`paradrop_chute_test{chute="web"}`, nil).Set(42) }
	started := time.Unix(1700000000, 500e6)
	for _, open := range []bool{false, true} {
		srv := httptest.NewServer(New(Config{Chutes: apitest.New(), DB: db, Metrics: write, MetricsOpen: open,
			Version: `v1 "quoted"`, Started: started}))
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		srv.Close()
		if !open {
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("/metrics without a token and not open: %d", resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics open: %d %s", resp.StatusCode, body)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("Prometheus cannot parse /metrics: %v\n%s", err, body)
		}
		want := map[string]float64{"paradrop_chute_test": 42, "paradrop_build_info": 1, "paradrop_start_time_seconds": 1700000000.5}
		for name, v := range want {
			f, ok := fams[name]
			if !ok || len(f.GetMetric()) != 1 || f.GetType() != dto.MetricType_GAUGE || f.GetMetric()[0].GetGauge().GetValue() != v {
				t.Errorf("%s: %v, want one gauge of %v", name, f, v)
			}
		}
		if len(fams) != len(want) {
			t.Errorf("%d families, want %d:\n%s", len(fams), len(want), body)
		}
		l := map[string]string{}
		for _, lp := range fams["paradrop_build_info"].GetMetric()[0].GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["version"] != `v1 "quoted"` || l["go_version"] != runtime.Version() {
			t.Errorf("build info labels %v", l)
		}
		if l := fams["paradrop_chute_test"].GetMetric()[0].GetLabel(); len(l) != 1 || l[0].GetValue() != "web" {
			t.Errorf("chute label %v", l)
		}
	}
}
