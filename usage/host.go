package usage

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// readProcStat returns the busy and total jiffies of all CPUs together and
// the number of CPUs, from /proc/stat.
func readProcStat() (busy, total uint64, ncpu int, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("gateway cpu: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "cpu") {
			if found {
				// The cpu lines come first: the rest (intr and softirq,
				// hundreds of numbers) is not split every second.
				break
			}
			continue
		}
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "cpu":
			// user nice system idle iowait irq softirq steal (guest time
			// is already counted in user and nice).
			var v [8]uint64
			for i := 1; i < len(f) && i <= len(v); i++ {
				if v[i-1], err = strconv.ParseUint(f[i], 10, 64); err != nil {
					return 0, 0, 0, fmt.Errorf("gateway cpu: parse /proc/stat: %w", err)
				}
			}
			for _, x := range v {
				total += x
			}
			busy = total - v[3] - v[4]
			found = true
		case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
			ncpu++
		}
	}
	if !found || ncpu == 0 {
		return 0, 0, 0, fmt.Errorf("gateway cpu: no cpu lines in /proc/stat")
	}
	return busy, total, ncpu, nil
}

// readMeminfo returns the memory in use (total less what is available
// without swapping) and the total, in bytes.
func readMeminfo() (used, total uint64, err error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0, fmt.Errorf("gateway memory: %w", err)
	}
	var avail uint64
	var haveTotal, haveAvail bool
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total, haveTotal = kb*1024, true
		case "MemAvailable:":
			avail, haveAvail = kb*1024, true
		}
		if haveTotal && haveAvail {
			break // the first lines: the other fifty are not split every second
		}
	}
	if !haveTotal || !haveAvail {
		return 0, 0, fmt.Errorf("gateway memory: MemTotal or MemAvailable missing from /proc/meminfo")
	}
	return total - min(avail, total), total, nil
}

// diskUsage returns the bytes used and the size of the filesystem holding
// dir.
func diskUsage(dir string) (used, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("gateway disk: statfs %s: %w", dir, err)
	}
	bs := uint64(st.Bsize)
	return (uint64(st.Blocks) - uint64(st.Bfree)) * bs, uint64(st.Blocks) * bs, nil
}

// readNetDev returns every interface's cumulative received and sent bytes
// in the daemon's network namespace (the host's), from /proc/net/dev.
func readNetDev() (map[string]byteCount, error) {
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return nil, fmt.Errorf("gateway interfaces: %w", err)
	}
	return parseNetDev(b)
}

// parseNetDev parses /proc/net/dev's content. Each name is copied: a
// substring would keep the whole file (130 bytes an interface, two
// interfaces a chute) alive for as long as the sampler and the ring keep
// the name.
func parseNetDev(b []byte) (map[string]byteCount, error) {
	out := map[string]byteCount{}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue // the two header lines
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		rx, err1 := strconv.ParseUint(f[0], 10, 64)
		tx, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("gateway interfaces: parse /proc/net/dev line %q", line)
		}
		out[strings.Clone(strings.TrimSpace(name))] = byteCount{rx, tx}
	}
	return out, nil
}
