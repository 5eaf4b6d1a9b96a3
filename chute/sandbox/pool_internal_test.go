package sandbox

import (
	"testing"
	"time"
)

// The pool follows the starts: as many spares as were under way at once,
// within [1, maxSpares], for spareHold after the peak, then one again.
func TestSpareDemand(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at         time.Duration
		begin, end int // starts that begin, then end, at this moment
		want       int
		until      time.Duration
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"idle: one spare", []step{{at: 0, want: 1}}},
		{"one start at a time: one spare", []step{
			{at: 0, begin: 1, end: 1, want: 1},
			{at: time.Second, begin: 1, end: 1, want: 1},
		}},
		{"a burst of 4 keeps 4 for the hold, then 1", []step{
			{at: 0, begin: 4, want: 4, until: spareHold},
			{at: time.Second, end: 4, want: 4, until: spareHold - time.Second},
			{at: spareHold, want: 4},
			{at: spareHold + time.Second, want: 1},
		}},
		{"a later burst starts the hold again", []step{
			{at: 0, begin: 3, end: 3, want: 3},
			{at: 30 * time.Second, begin: 2, end: 2, want: 3, until: 30 * time.Second},
			{at: 50 * time.Second, begin: 3, end: 3, want: 3, until: spareHold},
			{at: 50*time.Second + spareHold - time.Second, want: 3, until: time.Second},
			{at: 50*time.Second + spareHold + time.Second, want: 1},
		}},
		{"a burst after the hold sets a new, smaller peak", []step{
			{at: 0, begin: 6, end: 6, want: 6},
			{at: 2 * spareHold, begin: 2, end: 2, want: 2, until: spareHold},
		}},
		{"capped at maxSpares", []step{{at: 0, begin: 3 * maxSpares, want: maxSpares}}},
		{"starts still under way count after the hold", []step{
			{at: 0, begin: 5, want: 5},
			{at: 2 * spareHold, want: 5},
			{at: 2 * spareHold, end: 4, want: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := spareDemand{hold: spareHold}
			for i, st := range tc.steps {
				for range st.begin {
					d.begin(at(st.at))
				}
				for range st.end {
					d.end()
				}
				if got := d.want(at(st.at)); got != st.want {
					t.Errorf("step %d: want() = %d, want %d", i, got, st.want)
				}
				if st.until != 0 || st.want <= 1 {
					if got := d.until(at(st.at)); got != st.until {
						t.Errorf("step %d: until() = %v, want %v", i, got, st.until)
					}
				}
			}
		})
	}
}
