package sandbox

import (
	"slices"
	"time"
)

// Which way of starting a chute is faster depends on the machine: a spare
// saves a start-up of the binary, but where page faults are cheap and the
// spare's memory has gone cold (or the scheduler is slow to wake an idle
// process), an exec'ed shim was measured ahead of it (21 ms from a spare,
// 9 ms cold, on a loaded 2-CPU VM). A Launcher therefore times its own
// starts and takes the path that has been faster lately, trying the
// other one every probeEvery starts so that a change shows.
const (
	// pathSamples is how many of its latest starts judge a path.
	pathSamples = 8
	// minPathSamples: a path is not chosen on fewer starts.
	minPathSamples = 3
	probeEvery     = 8
)

// pathChooser keeps the latest start times of each path, from the call to
// the chute's command exec'ed. Starts that went cold for want of a spare
// count for the cold path.
type pathChooser struct {
	spare, cold []time.Duration
	starts      int
}

func (p *pathChooser) took(spare bool, d time.Duration) {
	s := &p.cold
	if spare {
		s = &p.spare
	}
	*s = append(*s, d)
	if len(*s) > pathSamples {
		*s = (*s)[1:]
	}
	p.starts++
}

// spareNext reports whether the next start is to be from a spare: while
// either path is not known well enough, or if the spare's median is not
// slower; the other path every probeEvery-th start.
func (p *pathChooser) spareNext() bool {
	preferSpare := len(p.cold) < minPathSamples || len(p.spare) < minPathSamples || median(p.spare) <= median(p.cold)
	if p.starts%probeEvery == probeEvery-1 {
		return !preferSpare
	}
	return preferSpare
}

func median(s []time.Duration) time.Duration {
	s = slices.Clone(s)
	slices.Sort(s)
	return s[len(s)/2]
}
