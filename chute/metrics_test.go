package chute

import (
	"bytes"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape returns the families of the manager's series as /metrics writes
// them, parsed by Prometheus's own parser.
func scrape(t *testing.T, m *Manager) map[string]*dto.MetricFamily {
	t.Helper()
	metrics.ExposeMetadata(true)
	set := metrics.NewSet()
	m.Metrics()(set)
	var b bytes.Buffer
	set.WritePrometheus(&b)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// gather returns the value of each series of the manager, by name and
// labels.
func gather(t *testing.T, m *Manager) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, f := range scrape(t, m) {
		for _, s := range f.Metric {
			name := f.GetName()
			for _, l := range s.Label {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case s.Gauge != nil:
				out[name] = s.Gauge.GetValue()
			case s.Counter != nil:
				out[name] = s.Counter.GetValue()
			}
		}
	}
	return out
}

// A chute killed for memory again and again shows in the gateway's
// counters of restarts and OOM kills, and in the chutes by state.
func TestMetricsCountRestartsAndOOMKills(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	before := gather(t, g.m)
	if before["paradrop_chute_restarts_total"] != 0 || before["paradrop_oom_kills_total"] != 0 || before["paradrop_chutes{state=running}"] != 0 {
		t.Fatalf("fresh manager: %v", before)
	}
	g.install(pkg(t, `
name: hog
version: 1.0.0
command: ["/bin/sh", "-c", "sleep 1.5; x=$(head -c 200000000 /dev/zero | tr '\\0' a); exit 1"]
resources: {memory: 16Mi}
restart: {policy: always}
`, nil))
	var got map[string]float64
	eventually(t, 40*time.Second, "restarts and OOM kills counted", func() bool {
		got = gather(t, g.m)
		return got["paradrop_chute_restarts_total"] >= 1 && got["paradrop_oom_kills_total"] >= 1
	})
	if got["paradrop_chute_oom_kills_total{chute=hog}"] < 1 {
		t.Errorf("per-chute OOM kills: %v", got)
	}
	var chutes float64
	for _, st := range states {
		chutes += got["paradrop_chutes{state="+string(st)+"}"]
	}
	if chutes != 1 {
		t.Errorf("chutes by state add up to %v, want 1: %v", chutes, got)
	}
}
