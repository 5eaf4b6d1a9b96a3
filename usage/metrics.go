package usage

import (
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// The series of WriteMetrics, in the Prometheus text format. The help of
// each is its comment: VictoriaMetrics/metrics writes HELP lines with the
// name alone.
const (
	gwCPU       = "paradrop_gateway_cpu_percent"                 // CPU use of the gateway, % of all its CPUs.
	gwMemUsed   = "paradrop_gateway_memory_used_bytes"           // Memory in use on the gateway (total less available).
	gwMemTotal  = "paradrop_gateway_memory_total_bytes"          // Memory of the gateway.
	gwDiskUsed  = "paradrop_gateway_disk_used_bytes"             // Bytes used on the filesystem of the data directory.
	gwDiskTotal = "paradrop_gateway_disk_total_bytes"            // Size of the filesystem of the data directory.
	ifRx        = "paradrop_interface_receive_bytes_per_second"  // Bytes per second received on a host interface, labeled iface.
	ifTx        = "paradrop_interface_transmit_bytes_per_second" // Bytes per second sent on a host interface, labeled iface.
	chCPU       = "paradrop_chute_cpu_percent"                   // CPU use of a chute, % of one core; the chute series are labeled chute.
	chMem       = "paradrop_chute_memory_bytes"                  // Memory charged to a chute's cgroup.
	chMemLimit  = "paradrop_chute_memory_limit_bytes"            // Memory limit of a chute (0: unlimited).
	chPids      = "paradrop_chute_pids"                          // Processes and threads of a chute.
	chDisk      = "paradrop_chute_disk_used_bytes"               // Bytes used on a chute's /data.
	chRx        = "paradrop_chute_receive_bytes_per_second"      // Bytes per second received by a chute.
	chTx        = "paradrop_chute_transmit_bytes_per_second"     // Bytes per second sent by a chute.
	chOOM       = "paradrop_chute_oom_kills_total"               // Processes the kernel killed for memory in a chute's cgroup since it was made.
	gwCPUSecs   = "paradrop_gateway_cpu_busy_seconds_total"      // CPU time the gateway's CPUs spent busy since boot, all CPUs together.
	gwCPUs      = "paradrop_gateway_cpus"                        // CPUs of the gateway.
	oomKills    = "paradrop_oom_kills_total"                     // Processes the kernel killed for memory in all chutes since the daemon started.
)

// userHZ is the unit of /proc/stat: Linux reports clock ticks of 1/100 s
// to userspace on every architecture.
const userHZ = 100

// labelEscaper escapes a label value as the Prometheus text format wants
// it, which VictoriaMetrics/metrics leaves to its caller: an interface
// name may hold any byte but '/' and NUL.
var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

// MetricName names a series of the Prometheus text format: name, then
// labels as pairs of a name and a value, the values escaped, and made
// UTF-8 (Prometheus refuses a whole scrape with one label that is not).
func MetricName(name string, labels ...string) string {
	if len(labels) < 2 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	sep := byte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		b.WriteByte(sep)
		sep = ','
		b.WriteString(labels[i])
		b.WriteString(`="`)
		labelEscaper.WriteString(&b, strings.ToValidUTF8(labels[i+1], "\uFFFD"))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// WriteMetrics adds the latest sample to set: the gateway's series,
// per-interface series labeled iface and per-chute series labeled chute.
// It reads nothing itself, so that a scrape costs no more than a copy,
// but for the gateway's own series, which are there from the first
// scrape: before the first sample (a CPU percentage needs two readings)
// memory and disk are read on the spot, and the CPU counters always are,
// so that a scrape is never empty.
func (s *Sampler) WriteMetrics(set *metrics.Set) {
	g := func(name string, v float64, labels ...string) {
		set.NewGauge(MetricName(name, labels...), nil).Set(v)
	}
	counter := func(name string, v float64, labels ...string) {
		set.NewFloatCounter(MetricName(name, labels...)).Set(v)
	}
	if busy, _, ncpu, err := readProcStat(); err == nil {
		counter(gwCPUSecs, float64(busy)/userHZ)
		g(gwCPUs, float64(ncpu))
	}
	counter(oomKills, float64(s.OOMKills()))
	smp, ok := s.Latest()
	if !ok {
		var err error
		if smp.MemUsed, smp.MemTotal, err = readMeminfo(); err == nil {
			g(gwMemUsed, float64(smp.MemUsed))
			g(gwMemTotal, float64(smp.MemTotal))
		}
		if smp.DiskUsed, smp.DiskTotal, err = diskUsage(s.cfg.DataDir); err == nil {
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
		g(ifRx, r.RxBps, "iface", name)
		g(ifTx, r.TxBps, "iface", name)
	}
	for name, cs := range smp.Chutes {
		g(chCPU, cs.CPU, "chute", name)
		g(chMem, float64(cs.Mem), "chute", name)
		g(chMemLimit, float64(cs.MemLimit), "chute", name)
		g(chPids, float64(cs.Pids), "chute", name)
		g(chDisk, float64(cs.Disk), "chute", name)
		g(chRx, cs.RxBps, "chute", name)
		g(chTx, cs.TxBps, "chute", name)
		counter(chOOM, float64(cs.OOMKills), "chute", name)
	}
}
