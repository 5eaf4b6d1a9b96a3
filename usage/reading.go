package usage

// reading is one interval as the sampler counted it: the gateway's
// figures, and for each interface and chute the integers their rates are
// computed from. The ring keeps readings, which pack into a few bytes a
// chute, and makes Samples of them when asked.
type reading struct {
	gw     Sample  // the gateway's figures; Ifaces and Chutes nil
	secs   float64 // the interval's length
	ncpu   int
	ifaces map[string]byteCount  // bytes over the interval; 0 if the counters went back
	chutes map[string]chuteCount // the chutes sampled
}

// chuteCount is a chute's reading: what it used over the interval (0 if
// the chute was not sampled at its start, or its counters went back) and
// its levels at its end.
type chuteCount struct {
	cpuNs, rx, tx                       uint64
	mem, memLimit, pids, disk, oomKills uint64
}

// fields lists c's fields, for the ring's encoding: counts, and sizes in
// bytes (most of them whole pages).
func (c *chuteCount) fields() (counts [5]*uint64, sizes [3]*uint64) {
	return [5]*uint64{&c.cpuNs, &c.rx, &c.tx, &c.pids, &c.oomKills}, [3]*uint64{&c.mem, &c.memLimit, &c.disk}
}

// since is what a cumulative byte count grew by from prev to cur; 0 if
// the counters went back (a recreated interface).
func since(prev, cur byteCount) byteCount {
	if cur.rx < prev.rx || cur.tx < prev.tx {
		return byteCount{}
	}
	return byteCount{cur.rx - prev.rx, cur.tx - prev.tx}
}

// sample is the reading as rates and levels.
func (rd *reading) sample() Sample {
	smp := rd.gw
	smp.Ifaces = make(map[string]Rate, len(rd.ifaces))
	smp.Chutes = make(map[string]ChuteSample, len(rd.chutes))
	for name, c := range rd.ifaces {
		smp.Ifaces[name] = Rate{RxBps: float64(c.rx) / rd.secs, TxBps: float64(c.tx) / rd.secs}
	}
	for name, c := range rd.chutes {
		cs := ChuteSample{Mem: c.mem, MemLimit: c.memLimit, Pids: c.pids, Disk: c.disk, OOMKills: c.oomKills,
			RxBps: float64(c.rx) / rd.secs, TxBps: float64(c.tx) / rd.secs}
		if c.cpuNs > 0 {
			cores := float64(c.cpuNs) / 1e9 / rd.secs
			cs.CPU = 100 * cores
			cs.CPUGateway = 100 * cores / float64(rd.ncpu)
		}
		smp.Chutes[name] = cs
	}
	return smp
}
