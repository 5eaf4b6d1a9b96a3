package chute

import "github.com/prometheus/client_golang/prometheus"

// states are all the states a chute can be in, each exported as a series
// even when no chute is in it, so that a dashboard sees 0 rather than
// nothing.
var states = []State{Installing, Stopped, Starting, Running, Stopping, Updating, Failed}

var (
	chutesDesc   = prometheus.NewDesc("paradrop_chutes", "Chutes installed, by state.", []string{"state"}, nil)
	restartsDesc = prometheus.NewDesc("paradrop_chute_restarts_total",
		"Chutes restarted by their restart policy since the daemon started.", nil, nil)
)

// managerCollector exports the chutes by state and the restarts.
type managerCollector struct{ m *Manager }

func (c managerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- chutesDesc
	ch <- restartsDesc
}

func (c managerCollector) Collect(ch chan<- prometheus.Metric) {
	count := map[State]int{}
	for _, info := range c.m.List() {
		count[info.State]++
	}
	for _, st := range states {
		ch <- prometheus.MustNewConstMetric(chutesDesc, prometheus.GaugeValue, float64(count[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(c.m.restarts.Load()))
}

// collectors is several collectors served as one.
type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
