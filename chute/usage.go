package chute

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// Metrics returns a Prometheus collector of the latest usage sample and
// of the manager's own series (metrics.go).
func (m *Manager) Metrics() prometheus.Collector {
	return collectors{m.usage.Collector(), managerCollector{m}}
}
