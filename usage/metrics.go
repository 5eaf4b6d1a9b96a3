package usage

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the sampler's latest sample; it reads nothing itself,
// so a scrape costs no more than a copy.
type collector struct{ s *Sampler }

// Collector returns a Prometheus collector of the latest sample: the
// gateway's series, per-interface series labeled iface and per-chute series
// labeled chute.
func (s *Sampler) Collector() prometheus.Collector { return collector{s} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("paradrop_"+name, help, labels, nil)
}

var (
	gwCPU       = desc("gateway_cpu_percent", "CPU use of the gateway, % of all its CPUs.")
	gwMemUsed   = desc("gateway_memory_used_bytes", "Memory in use on the gateway (total less available).")
	gwMemTotal  = desc("gateway_memory_total_bytes", "Memory of the gateway.")
	gwDiskUsed  = desc("gateway_disk_used_bytes", "Bytes used on the filesystem of the data directory.")
	gwDiskTotal = desc("gateway_disk_total_bytes", "Size of the filesystem of the data directory.")
	ifRx        = desc("interface_receive_bytes_per_second", "Bytes per second received on a host interface.", "iface")
	ifTx        = desc("interface_transmit_bytes_per_second", "Bytes per second sent on a host interface.", "iface")
	chCPU       = desc("chute_cpu_percent", "CPU use of a chute, % of one core.", "chute")
	chMem       = desc("chute_memory_bytes", "Memory charged to a chute's cgroup.", "chute")
	chMemLimit  = desc("chute_memory_limit_bytes", "Memory limit of a chute (0: unlimited).", "chute")
	chPids      = desc("chute_pids", "Processes and threads of a chute.", "chute")
	chDisk      = desc("chute_disk_used_bytes", "Bytes used on a chute's /data.", "chute")
	chRx        = desc("chute_receive_bytes_per_second", "Bytes per second received by a chute.", "chute")
	chTx        = desc("chute_transmit_bytes_per_second", "Bytes per second sent by a chute.", "chute")
	chOOM       = desc("chute_oom_kills_total", "Processes the kernel killed for memory in a chute's cgroup since it was made.", "chute")
	gwCPUSecs   = desc("gateway_cpu_busy_seconds_total", "CPU time the gateway's CPUs spent busy since boot, all CPUs together.")
	gwCPUs      = desc("gateway_cpus", "CPUs of the gateway.")
	oomKills    = desc("oom_kills_total", "Processes the kernel killed for memory in all chutes since the daemon started.")
	all         = []*prometheus.Desc{gwCPU, gwMemUsed, gwMemTotal, gwDiskUsed, gwDiskTotal, ifRx, ifTx,
		chCPU, chMem, chMemLimit, chPids, chDisk, chRx, chTx, chOOM, gwCPUSecs, gwCPUs, oomKills}
)

// userHZ is the unit of /proc/stat: Linux reports clock ticks of 1/100 s
// to userspace on every architecture.
const userHZ = 100

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d
	}
}

// Collect exports the latest sample. The gateway's own series are there
// from the first scrape: before the first sample (a CPU percentage needs
// two readings) memory and disk are read on the spot, and the CPU counters
// always are, so that a scrape is never empty.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if busy, _, ncpu, err := readProcStat(); err == nil {
		counter(gwCPUSecs, float64(busy)/userHZ)
		g(gwCPUs, float64(ncpu))
	}
	counter(oomKills, float64(c.s.OOMKills()))
	smp, ok := c.s.Latest()
	if !ok {
		var err error
		if smp.MemUsed, smp.MemTotal, err = readMeminfo(); err == nil {
			g(gwMemUsed, float64(smp.MemUsed))
			g(gwMemTotal, float64(smp.MemTotal))
		}
		if smp.DiskUsed, smp.DiskTotal, err = diskUsage(c.s.cfg.DataDir); err == nil {
			g(gwDiskUsed, float64(smp.DiskUsed))
			g(gwDiskTotal, float64(smp.DiskTotal))
		}
		return
	}
	g(gwCPU, smp.CPU)
	g(gwMemUsed, float64(smp.MemUsed))
	g(gwMemTotal, float64(smp.MemTotal))
	g(gwDiskUsed, float64(smp.DiskUsed))
	g(gwDiskTotal, float64(smp.DiskTotal))
	for name, r := range smp.Ifaces {
		g(ifRx, r.RxBps, name)
		g(ifTx, r.TxBps, name)
	}
	for name, cs := range smp.Chutes {
		g(chCPU, cs.CPU, name)
		g(chMem, float64(cs.Mem), name)
		g(chMemLimit, float64(cs.MemLimit), name)
		g(chPids, float64(cs.Pids), name)
		g(chDisk, float64(cs.Disk), name)
		g(chRx, cs.RxBps, name)
		g(chTx, cs.TxBps, name)
		counter(chOOM, float64(cs.OOMKills), name)
	}
}
