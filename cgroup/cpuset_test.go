package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseCPUs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr string
	}{
		{"0", []int{0}, ""},
		{"0-1", []int{0, 1}, ""},
		{"0,2-3\n", []int{0, 2, 3}, ""},
		{"3,1,1-2", []int{1, 2, 3}, ""},
		{"", nil, "empty"},
		{" ", nil, "empty"},
		{"a", nil, "not a CPU number"},
		{"-1", nil, "not a CPU number"},
		{"1-", nil, "not a CPU number"},
		{"0,,1", nil, "not a CPU number"},
		{"+1", nil, "not a CPU number"},
		{"01", nil, "not a CPU number"},
		{"2-1", nil, "runs backwards"},
		{"0-4000000000", nil, "beyond any machine"},
	} {
		got, err := ParseCPUs(tc.in)
		switch {
		case tc.wantErr == "" && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("ParseCPUs(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseCPUs(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
		}
	}
}

func FuzzParseCPUs(f *testing.F) {
	for _, s := range []string{"0", "0-3", "0,2-3", "", "1-0", "7,3-5\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUs(s)
		if err != nil {
			return
		}
		if len(cpus) == 0 || !slices.IsSorted(cpus) || cpus[0] < 0 || cpus[len(cpus)-1] > maxCPU {
			t.Fatalf("ParseCPUs(%q) = %v", s, cpus)
		}
		// What formatCPUs writes parses back to the same CPUs.
		again, err := ParseCPUs(formatCPUs(cpus))
		if err != nil || !slices.Equal(again, cpus) {
			t.Fatalf("ParseCPUs(formatCPUs(%v)) = %v, %v", cpus, again, err)
		}
	})
}

func TestValidateCPUs(t *testing.T) {
	online, err := OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	last := online[len(online)-1]
	if err := (Resources{CPUs: strconv.Itoa(last)}).Validate(); err != nil {
		t.Errorf("CPU %d (online): %v", last, err)
	}
	for in, want := range map[string]string{
		strconv.Itoa(last + 1): "not online here",
		"0-x":                  "not a CPU number",
	} {
		if err := (Resources{CPUs: in}).Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(CPUs %q) = %v, want error containing %q", in, err, want)
		}
	}
}

// allowedCPUs is the CPU list the kernel lets pid run on.
func allowedCPUs(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list for pid %d", pid)
	return ""
}

// A group's CPU list holds its processes to those CPUs, live: set, lifted
// and set again while the process runs; a process cannot widen it.
func TestCPUsConfineProcesses(t *testing.T) {
	online, err := OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	all := formatCPUs(online)
	if len(online) < 2 {
		t.Fatalf("this test needs two CPUs, the machine has %s", all)
	}
	parent := testParent(t)
	g := open(t, filepath.Join(parent, "pinned"), Resources{CPUs: "0"})
	p := startIn(t, g, sh("exec sleep 30"))
	pid := p.cmd.Process.Pid
	cpusFile := "cpuset.cpus"
	if Detect() == V2 {
		cpusFile = "cpuset.cpus.effective"
	}
	check := func(want string) {
		t.Helper()
		if got := readCtl(t, g, cpusFile); got != want {
			t.Errorf("%s = %q, want %q", cpusFile, got, want)
		}
		if got := allowedCPUs(t, pid); got != want {
			t.Errorf("pid %d may run on %q, want %q", pid, got, want)
		}
	}
	check("0")
	// The process asks for every CPU: the cpuset holds it to its own.
	var every unix.CPUSet
	for _, c := range online {
		every.Set(c)
	}
	if err := unix.SchedSetaffinity(pid, &every); err == nil && allowedCPUs(t, pid) != "0" {
		t.Errorf("sched_setaffinity(%s) widened the pinned process to %s", all, allowedCPUs(t, pid))
	}
	if err := g.Set(Resources{}); err != nil {
		t.Fatal(err)
	}
	check(all)
	if err := g.Set(Resources{CPUs: strconv.Itoa(online[1])}); err != nil {
		t.Fatal(err)
	}
	check(strconv.Itoa(online[1]))
	if err := g.Set(Resources{CPUs: "8191"}); err == nil {
		t.Error("Set to an offline CPU succeeded")
	}
	check(strconv.Itoa(online[1]))
}

// Both translations carry the CPU list; v1 gives a group without one its
// parent's (cgroup1 writes no empty list), v2 writes none and lifts a
// list by writing "" itself (see v2Group.update).
func TestCPUsTranslation(t *testing.T) {
	if got := v2Resources(Resources{CPUs: "0-1"}).CPU.Cpus; got != "0-1" {
		t.Errorf("v2 cpus %q", got)
	}
	if got := v2Resources(Resources{}).CPU.Cpus; got != "" {
		t.Errorf("v2 cpus %q without a list", got)
	}
	if got := v1Resources(Resources{CPUs: "1"}, -1, "0-1").CPU.Cpus; got != "1" {
		t.Errorf("v1 cpus %q", got)
	}
	if got := v1Resources(Resources{}, -1, "0-3").CPU.Cpus; got != "0-3" {
		t.Errorf("v1 cpus %q without a list, want the parent's", got)
	}
}
