package sandbox

import "time"

// A burst of starts (a daemon's boot, a fleet's rollout) used to find one
// spare: the first start took it and every other exec'ed a shim of its
// own, on the same CPUs as the chutes' inits (10 starts at once: median
// 117 ms against 15 ms for one). A Launcher therefore keeps as many
// spares as starts were under way at once lately, up to maxSpares, and
// goes back to one spare once no such burst has come for spareHold: an
// idle spare costs about 2.3 MiB of private memory.
const (
	maxSpares = 10
	spareHold = time.Minute
)

// spareDemand sizes a Launcher's pool of spares from its starts.
type spareDemand struct {
	inFlight int           // starts under way
	peak     int           // the most under way at once since peakAt's window began
	peakAt   time.Time     // when peak was last reached
	hold     time.Duration // how long a peak counts (spareHold)
}

// begin counts a start that begins at now.
func (d *spareDemand) begin(now time.Time) {
	d.inFlight++
	if d.expired(now) || d.inFlight >= d.peak {
		d.peak, d.peakAt = d.inFlight, now
	}
}

// end counts a start that is over.
func (d *spareDemand) end() { d.inFlight-- }

func (d *spareDemand) expired(now time.Time) bool { return now.Sub(d.peakAt) > d.hold }

// want is how many spares to keep at now: at least one, at most maxSpares.
func (d *spareDemand) want(now time.Time) int {
	n := d.inFlight
	if !d.expired(now) {
		n = max(n, d.peak)
	}
	return min(max(n, 1), maxSpares)
}

// until is how long the pool is to stay larger than one spare from now;
// 0 if it need not.
func (d *spareDemand) until(now time.Time) time.Duration {
	if d.want(now) <= 1 || d.expired(now) {
		return 0
	}
	return d.peakAt.Add(d.hold).Sub(now)
}
