package chute

import (
	"github.com/VictoriaMetrics/metrics"

	"paradrop/usage"
)

// states are all the states a chute can be in, each exported as a series
// even when no chute is in it, so that a dashboard sees 0 rather than
// nothing.
var states = []State{Installing, Stopped, Starting, Running, Stopping, Updating, Failed}

// writeMetrics adds paradrop_chutes, the chutes installed by state, and
// paradrop_chute_restarts_total, the chutes restarted by their restart
// policy since the daemon started.
func (m *Manager) writeMetrics(set *metrics.Set) {
	count := map[State]int{}
	for _, info := range m.List() {
		count[info.State]++
	}
	for _, st := range states {
		set.NewGauge(usage.MetricName("paradrop_chutes", "state", string(st)), nil).Set(float64(count[st]))
	}
	set.NewCounter("paradrop_chute_restarts_total").Set(uint64(m.restarts.Load()))
}
