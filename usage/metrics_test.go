package usage

import (
	"bytes"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape writes set as /metrics does and parses it back with Prometheus's
// own parser, which refuses a malformed line, a family split in two, a
// second TYPE line and an unknown escape.
func scrape(t *testing.T, set *metrics.Set) map[string]*dto.MetricFamily {
	t.Helper()
	metrics.ExposeMetadata(true)
	var b bytes.Buffer
	set.WritePrometheus(&b)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("Prometheus cannot parse the scrape: %v\n%s", err, b.String())
	}
	return fams
}

// labels returns the series of a family by their label's value.
func labels(f *dto.MetricFamily, name string) map[string]*dto.Metric {
	out := map[string]*dto.Metric{}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				out[l.GetValue()] = m
			}
		}
	}
	return out
}

// Interface names are the kernel's, which may hold quotes, backslashes
// and newlines: each comes back from Prometheus's parser as it was, in
// families of their type, every family once.
func TestWriteMetricsHostileNames(t *testing.T) {
	hostile := []string{"lo", `we"ird`, `back\slash`, `trail\`, "new\nline", `\"`, `}{x="y"`, "ünï", ""}
	// Not UTF-8, which Prometheus refuses in a label: it reads as U+FFFD.
	const notUTF8, asRead = "bad\xff", "bad\uFFFD"
	s := New(Config{DataDir: t.TempDir()})
	// Over 2 s: the interfaces' rates are half their byte counts.
	rd := reading{gw: Sample{MemUsed: 1, MemTotal: 2, DiskUsed: 3, DiskTotal: 4, CPU: 12.5}, secs: 2, ncpu: 2,
		ifaces: map[string]byteCount{}, chutes: map[string]chuteCount{"web": {cpuNs: 30_000_000, mem: 7 << 20, oomKills: 2}}}
	for i, n := range hostile {
		rd.ifaces[n] = byteCount{rx: 2 * uint64(i), tx: 1}
	}
	rd.ifaces[notUTF8] = byteCount{rx: 198}
	s.ring.add(rd)
	set := metrics.NewSet()
	s.WriteMetrics(set)
	fams := scrape(t, set)

	rx := labels(fams[ifRx], "iface")
	for i, n := range hostile {
		m, ok := rx[n]
		if !ok || m.GetGauge().GetValue() != float64(i) {
			t.Errorf("iface %q: %v", n, m)
		}
	}
	if m, ok := rx[asRead]; !ok || m.GetGauge().GetValue() != 99 {
		t.Errorf("iface %q: %v", notUTF8, m)
	}
	if len(rx) != len(hostile)+1 {
		t.Errorf("%d interfaces parsed, want %d", len(rx), len(hostile)+1)
	}
	for name, want := range map[string]dto.MetricType{gwCPU: dto.MetricType_GAUGE, chMem: dto.MetricType_GAUGE,
		chOOM: dto.MetricType_COUNTER, oomKills: dto.MetricType_COUNTER, gwCPUSecs: dto.MetricType_COUNTER} {
		if f, ok := fams[name]; !ok || f.GetType() != want {
			t.Errorf("%s: %v, want type %v", name, f, want)
		}
	}
	if v := labels(fams[chMem], "chute")["web"].GetGauge().GetValue(); v != 7<<20 {
		t.Errorf("chute memory %v", v)
	}
	if v := labels(fams[chOOM], "chute")["web"].GetCounter().GetValue(); v != 2 {
		t.Errorf("chute OOM kills %v", v)
	}
}

func TestMetricName(t *testing.T) {
	for _, c := range []struct {
		labels []string
		want   string
	}{
		{nil, "m"},
		{[]string{"a", "x"}, `m{a="x"}`},
		{[]string{"a", `q"b\n` + "\n"}, `m{a="q\"b\\n\n"}`},
		{[]string{"a", "1", "b", "2"}, `m{a="1",b="2"}`},
	} {
		if got := MetricName("m", c.labels...); got != c.want {
			t.Errorf("MetricName(m, %q) = %s, want %s", c.labels, got, c.want)
		}
	}
}
