package cgroup

// These cover the Resources translation for both versions. The v2 half is
// only checked here: this machine is a hybrid host whose controllers are all
// bound to v1 hierarchies, so its cgroup2 mount has no controllers and v2
// limits cannot be exercised against the kernel (see cgroup_test.go for what
// of v2 can).

import (
	"math"
	"strings"
	"testing"
)

func TestModeString(t *testing.T) {
	for _, tc := range []struct {
		m    Mode
		want string
	}{{V1, "v1"}, {V2, "v2"}, {Mode(0), "Mode(0)"}} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(tc.m), got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       Resources
		wantErr string // empty: valid
	}{
		{"zero", Resources{}, ""},
		{"typical", Resources{CPUWeight: 100, CPUMax: 0.5, Memory: 64 << 20, Pids: 64}, ""},
		{"weight min", Resources{CPUWeight: 1}, ""},
		{"weight max", Resources{CPUWeight: 10000}, ""},
		{"weight too big", Resources{CPUWeight: 10001}, "cpu weight 10001 out of range"},
		{"cpu negative", Resources{CPUMax: -1}, "cpu max -1"},
		{"cpu NaN", Resources{CPUMax: math.NaN()}, "cpu max NaN"},
		{"cpu Inf", Resources{CPUMax: math.Inf(1)}, "cpu max +Inf"},
		{"cpu below kernel minimum", Resources{CPUMax: 0.005}, "below the kernel minimum"},
		{"cpu at kernel minimum", Resources{CPUMax: 0.01}, ""},
		{"cpu absurd", Resources{CPUMax: 1e12}, "above the kernel maximum"},
		{"memory negative", Resources{Memory: -1}, "memory -1 is negative"},
		{"pids negative", Resources{Pids: -5}, "pids -5 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("validate(%+v) = %v, want nil", tc.r, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("validate(%+v) = %v, want error containing %q", tc.r, err, tc.wantErr)
			}
		})
	}
}

func TestV1Translation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		r         Resources
		shares    uint64
		quota     int64
		memory    int64
		pidsLimit int64 // 0: no pids entry (lifted separately to "max")
	}{
		{"defaults", Resources{}, 1024, -1, -1, 0},
		{"weight 1 keeps kernel minimum", Resources{CPUWeight: 1}, 10, -1, -1, 0},
		{"weight 50", Resources{CPUWeight: 50}, 512, -1, -1, 0},
		{"weight max", Resources{CPUWeight: 10000}, 102400, -1, -1, 0},
		{"half core", Resources{CPUMax: 0.5}, 1024, 50000, -1, 0},
		{"two cores", Resources{CPUMax: 2}, 1024, 200000, -1, 0},
		{"rounding", Resources{CPUMax: 0.333333}, 1024, 33333, -1, 0},
		{"memory and pids", Resources{Memory: 32 << 20, Pids: 10}, 1024, -1, 32 << 20, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := v1Resources(tc.r, -1, "")
			if got := *res.CPU.Shares; got != tc.shares {
				t.Errorf("shares = %d, want %d", got, tc.shares)
			}
			if got := *res.CPU.Quota; got != tc.quota {
				t.Errorf("quota = %d, want %d", got, tc.quota)
			}
			if got := *res.CPU.Period; got != 100000 {
				t.Errorf("period = %d, want 100000", got)
			}
			if got := *res.Memory.Limit; got != tc.memory {
				t.Errorf("memory limit = %d, want %d", got, tc.memory)
			}
			if res.Memory.Swap != nil {
				t.Errorf("memsw limit set to %d, want swap left alone", *res.Memory.Swap)
			}
			switch {
			case tc.pidsLimit == 0 && res.Pids != nil:
				t.Errorf("pids = %d, want none", *res.Pids.Limit)
			case tc.pidsLimit != 0 && (res.Pids == nil || *res.Pids.Limit != tc.pidsLimit):
				t.Errorf("pids = %v, want %d", res.Pids, tc.pidsLimit)
			}
		})
	}
}

func TestV1SharesFloor(t *testing.T) {
	// Weights that would round below the kernel's minimum of 2 shares.
	for _, w := range []uint64{0, 1} {
		if got := v1Shares(w); got < 2 {
			t.Errorf("v1Shares(%d) = %d, want >= 2", w, got)
		}
	}
}

func TestV2Translation(t *testing.T) {
	const max = math.MaxInt64
	for _, tc := range []struct {
		name   string
		r      Resources
		weight uint64
		cpuMax string
		memory int64
		swap   int64
		pids   int64
	}{
		{"defaults are unlimited", Resources{}, 100, "max 100000", max, max, -1},
		{"weight", Resources{CPUWeight: 250}, 250, "max 100000", max, max, -1},
		{"half core", Resources{CPUMax: 0.5}, 100, "50000 100000", max, max, -1},
		{"memory forbids swap", Resources{Memory: 64 << 20}, 100, "max 100000", 64 << 20, 0, -1},
		{"pids", Resources{Pids: 32}, 100, "max 100000", max, max, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := v2Resources(tc.r)
			if got := *res.CPU.Weight; got != tc.weight {
				t.Errorf("weight = %d, want %d", got, tc.weight)
			}
			if got := string(res.CPU.Max); got != tc.cpuMax {
				t.Errorf("cpu.max = %q, want %q", got, tc.cpuMax)
			}
			if got := *res.Memory.Max; got != tc.memory {
				t.Errorf("memory.max = %d, want %d", got, tc.memory)
			}
			if got := *res.Memory.Swap; got != tc.swap {
				t.Errorf("memory.swap.max = %d, want %d", got, tc.swap)
			}
			if got := res.Pids.Max; got != tc.pids {
				t.Errorf("pids.max = %d, want %d", got, tc.pids)
			}
			// Every controller must be named so NewManager enables it.
			if got := strings.Join(res.EnabledControllers(), " "); got != "cpu memory pids" {
				t.Errorf("enabled controllers = %q, want cpu memory pids", got)
			}
		})
	}
}

func TestUnlimitedAsZero(t *testing.T) {
	for _, tc := range []struct{ in, want uint64 }{
		{0, 0},
		{32 << 20, 32 << 20},
		{9223372036854771712, 0}, // v1 memory.limit_in_bytes when unlimited
		{math.MaxUint64, 0},      // cgroup2's reading of "max"
	} {
		if got := unlimitedAsZero(tc.in); got != tc.want {
			t.Errorf("unlimitedAsZero(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"/paradrop/web", true},
		{"/paradrop", true},
		{"/", false},
		{"", false},
		{"paradrop/web", false},
		{"/paradrop/../etc", false},
		{"/paradrop/web/", false},
	} {
		if err := checkPath(tc.p); (err == nil) != tc.ok {
			t.Errorf("checkPath(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}
