// Package usage accounts for what the gateway and its chutes use: it
// samples CPU, memory, processes, disk and network once a second, keeps the
// last 15 minutes of samples in memory and per-minute averages of the last
// 24 hours in the store, and exports the latest sample to Prometheus.
//
// It knows chutes only as the Targets its caller lists (the chute manager),
// so that it sits below the manager rather than beside it.
package usage

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/volume"
	"paradrop/store"
)

// The sampling period and what is kept of it.
const (
	Interval = time.Second
	Recent   = 15 * time.Minute // kept at Interval, in memory
	Kept     = 24 * time.Hour   // kept as per-minute averages, in the store
)

// Target is a chute to sample.
type Target struct {
	Name   string
	Cgroup string // path of its cgroup, such as /paradrop/NAME
	Data   string // mountpoint of its /data volume
}

// Counters reports the chutes' network traffic; the chute network
// satisfies it through a small adapter.
type Counters interface {
	// Bytes returns the cumulative bytes each chute has received and
	// sent, by name, from one reading of the switch for all of them.
	Bytes(ctx context.Context) (map[string]Traffic, error)
}

// Traffic is a chute's cumulative bytes received and sent.
type Traffic struct{ Rx, Tx uint64 }

// Config is what the sampler needs from the daemon.
type Config struct {
	DB       *store.DB
	DataDir  string          // the filesystem reported as the gateway's disk
	Targets  func() []Target // the chutes to sample, asked every Interval
	Counters Counters        // nil: the chutes' network rates stay 0
	Logf     func(format string, args ...any)
}

// Sample is the gateway's usage over one interval (or, in per-minute
// aggregates, averaged over one minute).
type Sample struct {
	T         int64                  `json:"t"`   // end of the interval, unix ms
	CPU       float64                `json:"cpu"` // % of the whole gateway
	MemUsed   uint64                 `json:"mem_used"`
	MemTotal  uint64                 `json:"mem_total"`
	DiskUsed  uint64                 `json:"disk_used"` // of the data directory's filesystem
	DiskTotal uint64                 `json:"disk_total"`
	Ifaces    map[string]Rate        `json:"ifaces"`
	Chutes    map[string]ChuteSample `json:"chutes"`
}

// Rate is an interface's throughput in bytes per second.
type Rate struct {
	RxBps float64 `json:"rx_bps"`
	TxBps float64 `json:"tx_bps"`
}

// ChuteSample is one chute's usage over the interval.
type ChuteSample struct {
	CPU        float64 `json:"cpu"`         // % of one core
	CPUGateway float64 `json:"cpu_gateway"` // % of the whole gateway
	Mem        uint64  `json:"mem"`
	MemLimit   uint64  `json:"mem_limit"` // 0: unlimited
	Pids       uint64  `json:"pids"`
	Disk       uint64  `json:"disk"`      // bytes used on /data
	RxBps      float64 `json:"rx_bps"`    // bytes per second received by the chute
	TxBps      float64 `json:"tx_bps"`    // bytes per second sent by the chute
	OOMKills   uint64  `json:"oom_kills"` // by the kernel in the chute's cgroup, since it was made
}

// Series is a run of samples Interval (or one minute) apart, oldest first.
type Series struct {
	Interval time.Duration
	Samples  []Sample
}

// totals are the cumulative counters a rate is computed from.
type totals struct {
	t          time.Time
	cpuBusy    uint64 // /proc/stat jiffies, all CPUs
	cpuAll     uint64
	ifaces     map[string]byteCount
	chuteCPU   map[string]uint64
	chuteBytes map[string]byteCount
}

// byteCount is cumulative traffic: bytes received and sent.
type byteCount struct{ rx, tx uint64 }

// Sampler samples usage every Interval. Its methods are safe for
// concurrent use.
type Sampler struct {
	cfg Config

	mu   sync.Mutex
	ring ring // the last Recent of samples
	prev *totals
	// inMinute is how many of the ring's newest readings are of the
	// current minute, for its aggregate.
	inMinute int

	// OOM kills seen in all chutes since the daemon started, and each
	// chute's last reading, to count what grew.
	oomKills uint64
	oomSeen  map[string]uint64

	// readers read the chutes' cgroups sampled last time, by path, from
	// files they keep open; only sample, which Run calls from one
	// goroutine, uses them.
	readers map[string]*cgroup.StatsReader
}

// New returns a sampler; Run makes it sample.
func New(cfg Config) *Sampler {
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	return &Sampler{cfg: cfg, ring: newRing(int(Recent / Interval)), oomSeen: map[string]uint64{}}
}

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(Interval)
	defer t.Stop()
	defer func() {
		for _, r := range s.readers {
			r.Close()
		}
		s.readers = nil
	}()
	for {
		if err := s.sample(ctx, time.Now()); err != nil {
			s.cfg.Logf("usage: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample takes the counters at now and records the rates since the
// previous call. A gateway-wide reading that fails fails the sample; a
// chute that cannot be read (stopping, not yet started) is left out.
func (s *Sampler) sample(ctx context.Context, now time.Time) error {
	cur := &totals{t: now, chuteCPU: map[string]uint64{}, chuteBytes: map[string]byteCount{}}
	var ncpu int
	var err error
	if cur.cpuBusy, cur.cpuAll, ncpu, err = readProcStat(); err != nil {
		return err
	}
	if cur.ifaces, err = readNetDev(); err != nil {
		return err
	}
	var targets []Target
	if s.cfg.Targets != nil {
		targets = s.cfg.Targets()
	}
	rd := reading{gw: Sample{T: now.UnixMilli()}, ncpu: ncpu, chutes: make(map[string]chuteCount, len(targets))}
	if rd.gw.MemUsed, rd.gw.MemTotal, err = readMeminfo(); err != nil {
		return err
	}
	if rd.gw.DiskUsed, rd.gw.DiskTotal, err = diskUsage(s.cfg.DataDir); err != nil {
		return err
	}
	var traffic map[string]Traffic
	if s.cfg.Counters != nil && len(targets) > 0 {
		// Without them the rates stay 0 this once.
		traffic, _ = s.cfg.Counters.Bytes(ctx)
	}
	readers := make(map[string]*cgroup.StatsReader, len(targets))
	for _, t := range targets {
		// Loading a group checks every hierarchy, and opening its files
		// walks their paths: do it once a chute, not once a second. A
		// reader follows its path, so it stays good when the chute's group
		// is made again; one that fails is dropped, the group loaded again
		// next time.
		r := s.readers[t.Cgroup]
		if r == nil {
			g, err := cgroup.Load(t.Cgroup)
			if err != nil {
				continue
			}
			r = g.StatsReader()
		}
		delete(s.readers, t.Cgroup)
		st, err := r.Stats()
		if err != nil {
			r.Close()
			continue
		}
		readers[t.Cgroup] = r
		cc := chuteCount{mem: st.MemoryUsage, memLimit: st.MemoryLimit, pids: st.Pids, oomKills: st.OOMKills}
		cur.chuteCPU[t.Name] = st.CPUUsageNs
		if used, _, err := volume.Usage(t.Data); err == nil {
			cc.disk = uint64(used)
		}
		if c, ok := traffic[t.Name]; ok {
			cur.chuteBytes[t.Name] = byteCount{c.Rx, c.Tx}
		}
		rd.chutes[t.Name] = cc
	}

	for _, r := range s.readers { // chutes gone
		r.Close()
	}
	s.readers = readers
	s.mu.Lock()
	prev := s.prev
	s.prev = cur
	s.countOOMKills(rd.chutes)
	s.mu.Unlock()
	if prev == nil {
		return nil // rates need two readings
	}
	if rd.secs = now.Sub(prev.t).Seconds(); rd.secs <= 0 {
		return nil
	}
	if d := cur.cpuAll - prev.cpuAll; cur.cpuAll > prev.cpuAll {
		rd.gw.CPU = 100 * float64(cur.cpuBusy-min(prev.cpuBusy, cur.cpuBusy)) / float64(d)
	}
	rd.ifaces = make(map[string]byteCount, len(cur.ifaces))
	for name, c := range cur.ifaces {
		if p, ok := prev.ifaces[name]; ok {
			rd.ifaces[name] = since(p, c)
		}
	}
	for name, cc := range rd.chutes {
		// A counter that went back is a restarted chute's new cgroup.
		if p, ok := prev.chuteCPU[name]; ok && cur.chuteCPU[name] >= p {
			cc.cpuNs = cur.chuteCPU[name] - p
		}
		if p, ok := prev.chuteBytes[name]; ok {
			d := since(p, cur.chuteBytes[name])
			cc.rx, cc.tx = d.rx, d.tx
		}
		rd.chutes[name] = cc
	}
	return s.record(rd)
}

// countOOMKills adds what each chute's OOM-kill count grew by since the
// last reading; a count that went back is a new cgroup, counted from 0. A
// chute keeps its reading while it is not sampled (stopped, restarting), so
// that kills in its last second before a restart are still counted. Callers
// hold s.mu.
func (s *Sampler) countOOMKills(chutes map[string]chuteCount) {
	for name, c := range chutes {
		seen := s.oomSeen[name]
		if c.oomKills < seen {
			seen = 0
		}
		s.oomKills += c.oomKills - seen
		s.oomSeen[name] = c.oomKills
	}
}

// OOMKills returns the OOM kills seen in all chutes since the daemon
// started.
func (s *Sampler) OOMKills() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.oomKills
}

// record keeps rd in the ring and, when a minute is complete, stores its
// aggregate and prunes what is older than Kept.
func (s *Sampler) record(rd reading) error {
	s.mu.Lock()
	var done []Sample
	if n := s.ring.len(); s.inMinute > 0 && minuteOf(s.ring.at(n-1).gw.T) != minuteOf(rd.gw.T) {
		if s.cfg.DB != nil {
			for i := n - s.inMinute; i < n; i++ {
				done = append(done, s.ring.at(i).sample())
			}
		}
		s.inMinute = 0
	}
	s.ring.add(rd)
	s.inMinute = min(s.inMinute+1, s.ring.len())
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	agg := average(done)
	agg.T = minuteOf(done[0].T)
	return s.store(agg, time.UnixMilli(rd.gw.T))
}

func minuteOf(ms int64) int64 { return ms - ms%60_000 }

// store writes a minute's aggregate, keyed by its time so that keys sort
// by age, and prunes the minutes older than Kept.
func (s *Sampler) store(agg Sample, now time.Time) error {
	oldest := store.IDKey(uint64(now.Add(-Kept).UnixMilli()))
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		if err := tx.Put(store.Usage, store.IDKey(uint64(agg.T)), agg); err != nil {
			return err
		}
		_, err := tx.Prune(store.Usage, func(k string) bool { return k >= oldest })
		return err
	})
	if err != nil {
		return fmt.Errorf("store minute aggregate: %w", err)
	}
	return nil
}

// average is the mean of samples; a chute or interface is averaged over
// the samples it appears in.
func average(samples []Sample) Sample {
	var out Sample
	out.Ifaces, out.Chutes = map[string]Rate{}, map[string]ChuteSample{}
	nIf, nCh := map[string]float64{}, map[string]uint64{}
	n := float64(len(samples))
	for _, s := range samples {
		out.CPU += s.CPU / n
		out.MemUsed += s.MemUsed / uint64(len(samples))
		out.MemTotal = s.MemTotal
		out.DiskUsed = s.DiskUsed
		out.DiskTotal = s.DiskTotal
		for k, r := range s.Ifaces {
			a := out.Ifaces[k]
			a.RxBps += r.RxBps
			a.TxBps += r.TxBps
			out.Ifaces[k] = a
			nIf[k]++
		}
		for k, c := range s.Chutes {
			a := out.Chutes[k]
			a.CPU += c.CPU
			a.CPUGateway += c.CPUGateway
			a.Mem += c.Mem
			a.MemLimit = c.MemLimit
			a.Pids += c.Pids
			a.Disk = c.Disk
			a.RxBps += c.RxBps
			a.TxBps += c.TxBps
			out.Chutes[k] = a
			nCh[k]++
		}
	}
	for k, a := range out.Ifaces {
		out.Ifaces[k] = Rate{RxBps: a.RxBps / nIf[k], TxBps: a.TxBps / nIf[k]}
	}
	for k, a := range out.Chutes {
		c := nCh[k]
		a.CPU /= float64(c)
		a.CPUGateway /= float64(c)
		a.Mem /= c
		a.Pids /= c
		a.RxBps /= float64(c)
		a.TxBps /= float64(c)
		out.Chutes[k] = a
	}
	return out
}

// Series returns the samples of the last window: at Interval if window is
// at most Recent, else per-minute aggregates from the store.
func (s *Sampler) Series(window time.Duration) (Series, error) {
	from := time.Now().Add(-window).UnixMilli()
	if window <= Recent {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := Series{Interval: Interval, Samples: []Sample{}}
		for i := range s.ring.len() {
			if sl := s.ring.at(i); sl.gw.T > from {
				out.Samples = append(out.Samples, sl.sample())
			}
		}
		return out, nil
	}
	out := Series{Interval: time.Minute, Samples: []Sample{}}
	if s.cfg.DB == nil {
		return out, nil
	}
	first := store.IDKey(uint64(max(from, 0)))
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Usage, func(k string, _ []byte) error {
			if k < first {
				return nil
			}
			var smp Sample
			if err := tx.Get(store.Usage, k, &smp); err != nil {
				return err
			}
			out.Samples = append(out.Samples, smp)
			return nil
		})
	})
	if err != nil {
		return Series{}, fmt.Errorf("usage history: %w", err)
	}
	return out, nil
}

// Latest returns the newest sample, if there is one yet.
func (s *Sampler) Latest() (Sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.ring.len()
	if n == 0 {
		return Sample{}, false
	}
	return s.ring.at(n - 1).sample(), true
}
