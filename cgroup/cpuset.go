package cgroup

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// maxCPU bounds the CPU numbers a list may name (the kernel's NR_CPUS is at
// most 8192), so that "0-4000000000" costs nothing to refuse.
const maxCPU = 8191

// ParseCPUs parses a CPU list in the kernel's syntax ("0", "0-3", "0,2-3"),
// as cpuset.cpus and /sys/devices/system/cpu/online write it, into its
// sorted CPU numbers. The empty list is an error: a group with no CPU
// cannot run.
func ParseCPUs(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("cpu list %q: empty", s)
	}
	seen := map[int]bool{}
	for part := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = parseCPU(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
			if b < a {
				return nil, fmt.Errorf("cpu list %q: range %s runs backwards", s, part)
			}
		}
		for c := a; c <= b; c++ {
			seen[c] = true
		}
	}
	cpus := make([]int, 0, len(seen))
	for c := range seen {
		cpus = append(cpus, c)
	}
	slices.Sort(cpus)
	return cpus, nil
}

func parseCPU(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || s != strconv.Itoa(n) {
		return 0, fmt.Errorf("%q is not a CPU number", s)
	}
	if n > maxCPU {
		return 0, fmt.Errorf("CPU %d is beyond any machine's (at most %d)", n, maxCPU)
	}
	return n, nil
}

// onlineCPUsFile lists the CPUs the kernel runs on now.
const onlineCPUsFile = "/sys/devices/system/cpu/online"

// OnlineCPUs returns the CPUs of this machine that are online.
func OnlineCPUs() ([]int, error) {
	b, err := os.ReadFile(onlineCPUsFile)
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	return ParseCPUs(string(b))
}

// checkCPUs refuses a CPU list that does not parse or names a CPU this
// machine does not have online: the kernel would refuse it (EINVAL) when
// the group is made.
func checkCPUs(s string) error {
	cpus, err := ParseCPUs(s)
	if err != nil {
		return err
	}
	online, err := OnlineCPUs()
	if err != nil {
		return err
	}
	for _, c := range cpus {
		if !slices.Contains(online, c) {
			return fmt.Errorf("cpu list %q: CPU %d is not online here (online: %s)", s, c, formatCPUs(online))
		}
	}
	return nil
}

// formatCPUs writes cpus in the kernel's list syntax.
func formatCPUs(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(cpus[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
