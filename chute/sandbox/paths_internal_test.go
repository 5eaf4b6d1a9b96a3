package sandbox

import (
	"testing"
	"time"
)

// The launcher's choice follows its own starts: the faster path lately,
// the other one tried every probeEvery-th start, and a path that became
// slower loses its place.
func TestPathChooser(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	type step struct {
		spare bool          // the path the chooser must pick
		took  time.Duration // what that start then took
	}
	// The spare is slow (21 ms), cold fast (9 ms), as measured on a VM.
	var steps []step
	for i := range 7 { // spare, unknown cold: spare
		steps = append(steps, step{true, ms(21 + i%2)})
	}
	steps = append(steps, step{false, ms(9)}) // 8th start: probe cold
	for range 7 {
		steps = append(steps, step{true, ms(21)})
	}
	steps = append(steps, step{false, ms(9)}) // 16th: probe again
	for range 7 {
		steps = append(steps, step{true, ms(21)})
	}
	steps = append(steps, step{false, ms(10)}) // 24th: the third cold sample
	for range 7 {                              // cold is known faster now
		steps = append(steps, step{false, ms(9)})
	}
	steps = append(steps, step{true, ms(5)}) // 32nd: probe the spare, now fast
	for range 7 {
		steps = append(steps, step{false, ms(9)})
	}
	steps = append(steps, step{true, ms(5)}) // 40th: probe
	for range 7 {
		steps = append(steps, step{false, ms(9)})
	}
	steps = append(steps, step{true, ms(5)}) // 48th
	// The spare's latest eight: 5, 5, 5 and five of 21: median 21, still slower.
	for range 7 {
		steps = append(steps, step{false, ms(9)})
	}
	steps = append(steps, step{true, ms(5)}) // 56th
	for range 7 {
		steps = append(steps, step{false, ms(9)})
	}
	steps = append(steps, step{true, ms(5)}) // 64th: five of 5 among eight: median 5
	steps = append(steps, step{true, ms(5)}) // the spare is the faster again
	var p pathChooser
	for i, st := range steps {
		if got := p.spareNext(); got != st.spare {
			t.Fatalf("start %d: spare %v, want %v (spare %v, cold %v)", i+1, got, st.spare, p.spare, p.cold)
		}
		p.took(st.spare, st.took)
	}
}

// Starts that went cold for want of a spare (a burst) teach the chooser
// about the cold path without making it give up the spare before the
// spare has been measured.
func TestPathChooserSpareUnknown(t *testing.T) {
	var p pathChooser
	for range 9 {
		p.took(false, time.Millisecond)
	}
	if !p.spareNext() {
		t.Fatal("chose cold before the spare had been timed")
	}
}
