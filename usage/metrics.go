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
	all         = []*prometheus.Desc{gwCPU, gwMemUsed, gwMemTotal, gwDiskUsed, gwDiskTotal, ifRx, ifTx,
		chCPU, chMem, chMemLimit, chPids, chDisk, chRx, chTx}
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	smp, ok := c.s.Latest()
	if !ok {
		return
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
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
	}
}
