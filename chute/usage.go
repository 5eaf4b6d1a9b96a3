package chute

import (
	"time"

	"github.com/VictoriaMetrics/metrics"

	"paradrop/usage"
)

// newSampler returns the usage sampler of the manager's running chutes.
func (m *Manager) newSampler() *usage.Sampler {
	return usage.New(usage.Config{
		DB: m.db, DataDir: m.cfg.DataDir, Targets: m.usageTargets, Counters: m, Logf: m.logf,
	})
}

// usageTargets lists the chutes that have processes to account for.
func (m *Manager) usageTargets() []usage.Target {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]usage.Target, 0, len(m.chutes))
	for name, e := range m.chutes {
		if e.sb != nil {
			out = append(out, usage.Target{Name: name, Cgroup: m.paths.cgroup(name), Data: m.paths.data(name)})
		}
	}
	return out
}

// startSampler samples usage until the manager stops.
func (m *Manager) startSampler() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.usage.Run(m.ctx)
	}()
}

// Usage returns the gateway's and the chutes' usage over the last window:
// one sample a second up to usage.Recent, per-minute averages beyond.
func (m *Manager) Usage(window time.Duration) (usage.Series, error) {
	return m.usage.Series(window)
}

// Metrics returns what adds the latest usage sample's series and the
// manager's own (metrics.go) to a scrape's set.
func (m *Manager) Metrics() func(*metrics.Set) {
	return func(set *metrics.Set) {
		m.usage.WriteMetrics(set)
		m.writeMetrics(set)
	}
}
