package sandbox

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/cgroup"
)

// logCPUShare is the part of its chute's CPU limit that a shim may spend
// copying the chute's output into its log. The shim runs in the daemon's
// cgroup (in the chute's, the chute's OOM could kill it), so that work is
// outside the chute's limit: once the share is spent, the shim stops
// reading the output pipes until it has earned more, and a chute writing
// faster blocks in write. Nothing is dropped: a chute that logs too much
// is slowed, as a full disk or a slow terminal would slow it.
const logCPUShare = 0.04

const (
	// logBudgetBurst is how long a quiet chute saves up its share, so
	// that a burst of lines goes out at once.
	logBudgetBurst = time.Second
	// logLimitRefresh is how often the chute's CPU limit is read again:
	// a policy change applies to its logging too.
	logLimitRefresh = time.Second
)

// logBudget is a token bucket of CPU time, shared by a chute's output
// copiers, refilled at logCPUShare of the chute's CPU limit, or of one
// core for a chute without one.
type logBudget struct {
	limit func() (float64, error) // the chute's limit in cores, 0 for none

	mu      sync.Mutex
	rate    float64       // CPU time per wall time
	tokens  time.Duration // CPU time that may be spent now; negative when owed
	last    time.Time     // of the last refill
	checked time.Time     // when the limit was last read

	lifted   chan struct{} // closed by lift
	liftOnce sync.Once
}

func newLogBudget(limit func() (float64, error)) *logBudget {
	return &logBudget{limit: limit, rate: logCPUShare, lifted: make(chan struct{})}
}

// cgroupCPULimit reads the CPU limit of the group at path, once it exists;
// nil for no group.
func cgroupCPULimit(path string) func() (float64, error) {
	if path == "" {
		return nil
	}
	var g *cgroup.Group
	return func() (float64, error) {
		if g == nil {
			var err error
			if g, err = cgroup.Load(path); err != nil {
				return 0, err
			}
		}
		return g.CPUMax()
	}
}

// wait returns once there is CPU time to spend; nil has no limit.
func (b *logBudget) wait() {
	if b == nil {
		return
	}
	select {
	case <-b.lifted:
		return
	default:
	}
	b.mu.Lock()
	now := time.Now()
	if b.limit != nil && now.Sub(b.checked) >= logLimitRefresh {
		b.checked = now
		// A limit that cannot be read (the group is not there yet, or
		// gone) leaves the last one.
		if cores, err := b.limit(); err == nil {
			if cores == 0 {
				cores = 1
			}
			b.rate = logCPUShare * cores
		}
	}
	if !b.last.IsZero() {
		b.tokens += time.Duration(float64(now.Sub(b.last)) * b.rate)
	}
	b.tokens = min(b.tokens, time.Duration(float64(logBudgetBurst)*b.rate))
	b.last = now
	owed, rate := -b.tokens, b.rate
	b.mu.Unlock()
	if owed > 0 {
		t := time.NewTimer(time.Duration(float64(owed) / rate))
		defer t.Stop()
		select {
		case <-t.C:
		case <-b.lifted:
		}
	}
}

// lift ends the limit, once the chute is gone and only its last output,
// bounded by the pipes' size, is left to copy.
func (b *logBudget) lift() {
	b.liftOnce.Do(func() { close(b.lifted) })
}

// startCharge starts measuring the CPU time of the calling thread, which
// must be locked to its goroutine; the function it returns charges what
// was spent since.
func (b *logBudget) startCharge() func() {
	if b == nil {
		return func() {}
	}
	start := threadCPUTime()
	return func() {
		spent := threadCPUTime() - start
		b.mu.Lock()
		b.tokens -= spent
		b.mu.Unlock()
	}
}

func threadCPUTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
