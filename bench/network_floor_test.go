package main

import (
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
)

// The interval is the order statistics a binomial table gives: with 40
// values, the 14th and the 27th (coverage 96.2%); with 24, the 7th and
// the 18th (97.7%); with 5, too few for 95%, min and max (93.75%).
func TestMedianCI(t *testing.T) {
	for _, c := range []struct {
		n, lo, hi int
		cov       float64
	}{{40, 14, 27, 0.9615}, {24, 7, 18, 0.9773}, {5, 1, 5, 0.9375}} {
		v := make([]float64, c.n)
		for i := range v {
			v[c.n-1-i] = float64(i + 1) // reversed: medianCI sorts
		}
		med, lo, hi, cov := medianCI(v, 0.95)
		if lo != float64(c.lo) || hi != float64(c.hi) || math.Abs(cov-c.cov) > 0.0005 || med != float64(c.n+1)/2 {
			t.Errorf("n=%d: median %v, interval %v–%v, coverage %.4f; want %v, %d–%d, %.4f", c.n, med, lo, hi, cov, float64(c.n+1)/2, c.lo, c.hi, c.cov)
		}
	}
}

func TestFloorVerdict(t *testing.T) {
	for _, c := range []struct {
		lo, hi, goal float64
		atMost       bool
		want         string
	}{
		{0.99, 1.01, 1.02, true, "met"},
		{1.03, 1.10, 1.02, true, "not met"},
		{1.00, 1.04, 1.02, true, "cannot tell: the interval spans the goal"},
		{0.98, 1.05, 0.98, false, "met"},
		{0.90, 0.97, 0.98, false, "not met"},
		{0.95, 1.01, 0.98, false, "cannot tell: the interval spans the goal"},
	} {
		if got := floorVerdict(c.lo, c.hi, c.goal, c.atMost); got != c.want {
			t.Errorf("%v–%v against %v (at most %v): %q, want %q", c.lo, c.hi, c.goal, c.atMost, got, c.want)
		}
	}
}

// The floor on ours' bridge takes only the marked packets of ours' first
// chute and its LAN host (ours' own packets, unmarked, and every other
// port stay with ours' flows), and hands them to a table sdn does not use.
func TestFloorFlowsTakeOnlyMarkedPackets(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:0a")
	fs := floorFlows(7, 9, mac)
	entry := 0
	for _, f := range fs {
		if !strings.HasPrefix(f, fmt.Sprintf("cookie=%#x,", floorCookie)) {
			t.Errorf("without the floor's cookie: %s", f)
		}
		switch {
		case strings.Contains(f, "table=0,"):
			entry++
			if !strings.Contains(f, fmt.Sprintf(",ip_dscp=%d,", floorTOS>>2)) || !strings.Contains(f, fmt.Sprintf("table=%d)", floorTable)) {
				t.Errorf("an entry flow that takes unmarked packets or keeps them from the floor's table: %s", f)
			}
			if !strings.Contains(f, "in_port=7,") && !strings.Contains(f, "in_port=9,") {
				t.Errorf("an entry flow for another port: %s", f)
			}
		case !strings.Contains(f, fmt.Sprintf("table=%d,", floorTable)):
			t.Errorf("a flow in a table of sdn's: %s", f)
		}
	}
	if entry != 4 {
		t.Errorf("%d entry flows, want 4 (two ports, two families)", entry)
	}
}

// With thousands of ratios (a long -floor-transfers run) ½ⁿ underflows:
// the interval must still be the order statistics about 1.96·√n/2 either
// side of the middle, at about 95%, not the median alone at "100%".
func TestMedianCIManyValues(t *testing.T) {
	const n = 2000
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i + 1)
	}
	_, lo, hi, cov := medianCI(v, 0.95)
	if cov < 0.95 || cov > 0.96 || lo < 950 || lo > 960 || hi < 1041 || hi > 1051 {
		t.Errorf("n=%d: interval %v–%v, coverage %.4f; want about 956–1045 at 95%%", n, lo, hi, cov)
	}
}
