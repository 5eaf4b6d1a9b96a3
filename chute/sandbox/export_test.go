package sandbox

import (
	"context"
	"time"
)

// SparePid waits until l has a ready spare and returns its pid, for tests
// that check which process serves a start.
func (l *Launcher) SparePid(ctx context.Context) (int, error) {
	if err := l.Warm(ctx); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.spares) == 0 {
		return 0, errClosed
	}
	return l.spares[0].cmd.Process.Pid, nil
}

// SetSpareHold sets how long a burst keeps l's pool of spares large.
func (l *Launcher) SetSpareHold(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.demand.hold = d
}

// PreferCold fills l's record of recent starts with cold starts faster
// than starts from a spare.
func (l *Launcher) PreferCold() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range pathSamples {
		l.paths.took(true, time.Second)
		l.paths.took(false, time.Millisecond)
	}
}
