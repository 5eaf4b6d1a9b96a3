package api

import (
	"math"
	"net/http"
	"runtime"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"paradrop/chute"
	"paradrop/usage"
)

// Usage windows, in seconds.
const (
	defaultWindow = 300
	maxWindow     = 86400
)

const metricsPattern = "GET /metrics"

// usageSeries is the JSON of a usage answer: samples interval seconds
// apart, oldest first.
type usageSeries[T any] struct {
	Interval int `json:"interval"`
	Samples  []T `json:"samples"`
}

type gatewaySample struct {
	T         int64                 `json:"t"`
	CPU       float64               `json:"cpu"`
	MemUsed   uint64                `json:"mem_used"`
	MemTotal  uint64                `json:"mem_total"`
	DiskUsed  uint64                `json:"disk_used"`
	DiskTotal uint64                `json:"disk_total"`
	Ifaces    map[string]usage.Rate `json:"ifaces"`
	Chutes    map[string]chuteShare `json:"chutes"`
}

// chuteShare is a chute's part of the gateway.
type chuteShare struct {
	CPU float64 `json:"cpu"` // % of the gateway
	Mem uint64  `json:"mem"`
}

type chuteSample struct {
	T int64 `json:"t"`
	usage.ChuteSample
}

// round2 keeps two decimals: more is noise to a reader of the JSON.
func round2(x float64) float64 { return math.Round(x*100) / 100 }

// window reads ?window=SECONDS; on error it has answered 400.
func window(w http.ResponseWriter, q query) (time.Duration, bool) {
	n, err := q.intIn("window", defaultWindow, 1, maxWindow)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

func (s *server) gatewayUsage(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.RawQuery, "window")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	win, ok := window(w, q)
	if !ok {
		return
	}
	series, err := s.cfg.Chutes.Usage(win)
	if err != nil {
		fail(w, err)
		return
	}
	out := usageSeries[gatewaySample]{Interval: int(series.Interval / time.Second), Samples: []gatewaySample{}}
	for _, smp := range series.Samples {
		g := gatewaySample{
			T: smp.T, CPU: round2(smp.CPU), MemUsed: smp.MemUsed, MemTotal: smp.MemTotal,
			DiskUsed: smp.DiskUsed, DiskTotal: smp.DiskTotal,
			Ifaces: map[string]usage.Rate{}, Chutes: map[string]chuteShare{},
		}
		for name, rt := range smp.Ifaces {
			g.Ifaces[name] = usage.Rate{RxBps: round2(rt.RxBps), TxBps: round2(rt.TxBps)}
		}
		for name, c := range smp.Chutes {
			g.Chutes[name] = chuteShare{CPU: round2(c.CPUGateway), Mem: c.Mem}
		}
		out.Samples = append(out.Samples, g)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) chuteUsage(w http.ResponseWriter, r *http.Request) {
	name, q, ok := nameAndQuery(w, r, "window")
	if !ok {
		return
	}
	win, ok := window(w, q)
	if !ok {
		return
	}
	info, err := s.cfg.Chutes.Get(name)
	if err != nil {
		fail(w, err)
		return
	}
	series, err := s.cfg.Chutes.Usage(win)
	if err != nil {
		fail(w, err)
		return
	}
	if !s.stillOwn(w, r, name) {
		return
	}
	out := usageSeries[chuteSample]{Interval: int(series.Interval / time.Second), Samples: []chuteSample{}}
	for _, smp := range series.Samples {
		c, ok := smp.Chutes[name]
		if !ok {
			continue // not running then
		}
		if info.Installed != nil && smp.T-series.Interval.Milliseconds() < info.Installed.UnixMilli() {
			continue // a former chute of the name's, perhaps another's
		}
		c.CPU, c.CPUGateway = round2(c.CPU), round2(c.CPUGateway)
		c.RxBps, c.TxBps = round2(c.RxBps), round2(c.TxBps)
		out.Samples = append(out.Samples, chuteSample{T: smp.T, ChuteSample: c})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getResources(w http.ResponseWriter, r *http.Request) {
	name, _, ok := nameAndQuery(w, r)
	if !ok {
		return
	}
	res, err := s.cfg.Chutes.Resources(name)
	if err != nil {
		fail(w, err)
		return
	}
	if !s.stillOwn(w, r, name) {
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) setResources(w http.ResponseWriter, r *http.Request) {
	name, q, ok := nameAndQuery(w, r, "wait")
	if !ok {
		return
	}
	wait, err := q.flag("wait")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A policy is a few lines: do not let a body of --max-upload be held
	// in memory to decode it.
	var req chute.ResourceRequest
	if err := decodeObject(r.Body, maxPolicyBody, "resources", &req); err != nil {
		badBody(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		fail(w, err)
		return
	}
	c, err := s.cfg.Chutes.SetResources(name, req, identityOf(r).actor())
	s.answerChange(w, r, wait, c, err)
}

// maxPolicyBody is the largest resource policy body accepted.
const maxPolicyBody = 64 << 10

// metricsHandler serves the series write adds, in the Prometheus text
// format (HELP lines name the series only: their help is in the comments
// of usage/metrics.go), from a set of their own made at each scrape so
// that nothing but paradrop's series shows and a chute removed leaves
// none behind; with the daemon's build and start time.
func metricsHandler(write func(*metrics.Set), version string, started time.Time) http.Handler {
	metrics.ExposeMetadata(true) // HELP and TYPE lines
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set := metrics.NewSet()
		write(set)
		// The daemon's build: always 1, labeled with its version and Go's.
		set.NewGauge(usage.MetricName("paradrop_build_info", "version", version, "go_version", runtime.Version()), nil).Set(1)
		// When the daemon started, in seconds since the Unix epoch.
		set.NewGauge("paradrop_start_time_seconds", nil).Set(float64(started.UnixNano()) / 1e9)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		set.WritePrometheus(w)
	})
}
