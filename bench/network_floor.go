package main

// The goals against the minimal conntrack pipeline (the floor) are 2%
// wide, and single rounds on this shared VM swing by ±30%: a handful of
// rounds cannot tell 1.00× from 1.02×. So ours and the floor are
// compared in many short paired rounds, ours and the floor back to back
// (each going first in turn, so that drift and the order hit both
// alike), and the goal is judged on the median of the pairs' ratios with
// a distribution-free confidence interval for it: "met" only when the
// whole interval is on the goal's side, "not met" when it is wholly on the
// other, "cannot tell" when it spans the goal.

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

const (
	floorRTTPairs = 40 // paired ping rounds (pingCount pings each) per address family
	floorTCPPairs = 24 // paired TCP transfers per address family
	floorTransfer = 1250 * time.Millisecond
	floorWarm     = 250 * time.Millisecond // not counted: 1 s of each transfer is
	floorConf     = 0.95
)

// floorCmp is ours against the floor, one ratio (ours / floor) per pair.
type floorCmp struct {
	rtt4, rtt6, tcp4, tcp6 []float64
	took                   time.Duration
}

// floorCompare runs the paired rounds. The IPv6 pings and transfers are
// also kept in ours' and the floor's rtt6, pings6 and tcp6 (the suite's
// IPv6 table); the IPv4 ones are not, the IPv4 table's rounds being
// paired with NORMAL's.
func (b *netbed) floorCompare(ctx context.Context, ours, floor *netPath) (*floorCmp, error) {
	fc := &floorCmp{}
	started := time.Now()
	pair := func(i int) [2]*netPath {
		if i%2 == 0 {
			return [2]*netPath{ours, floor}
		}
		return [2]*netPath{floor, ours}
	}
	fmt.Printf("ours against the conntrack floor: RTT, %d paired rounds per family...\n", floorRTTPairs)
	for i := range floorRTTPairs {
		// IPv4 and IPv6 in turn too, each family's pair back to back.
		for f, six := range []bool{i%2 == 0, i%2 != 0} {
			var rtt [2]time.Duration // ours, floor
			for _, p := range pair(i + f) {
				med, run, err := p.pingRound(ctx, six)
				if err != nil {
					return nil, err
				}
				if six {
					p.rtt6 = append(p.rtt6, med)
					p.pings6 = append(p.pings6, run...)
				}
				rtt[boolIndex(p == floor)] = med
			}
			r := float64(rtt[0]) / float64(rtt[1])
			if six {
				fc.rtt6 = append(fc.rtt6, r)
			} else {
				fc.rtt4 = append(fc.rtt4, r)
			}
		}
	}
	fmt.Printf("ours against the conntrack floor: TCP, %d paired transfers of %s per family...\n", floorTCPPairs, floorTransfer)
	for i := range floorTCPPairs {
		for f, six := range []bool{i%2 == 0, i%2 != 0} {
			dst := netLANHost.Addr()
			if six {
				dst = netLANHost6.Addr()
			}
			var rate [2]float64
			for _, p := range pair(i + f) {
				rates, err := tcpTransferFor(p.chutes[:1], p.lan, dst, floorTransfer, floorWarm)
				if err != nil {
					return nil, fmt.Errorf("%s: TCP to %s: %w", p.name, dst, err)
				}
				if six {
					p.tcp6 = append(p.tcp6, rates[0])
				}
				rate[boolIndex(p == floor)] = rates[0]
			}
			r := rate[0] / rate[1]
			if six {
				fc.tcp6 = append(fc.tcp6, r)
			} else {
				fc.tcp4 = append(fc.tcp4, r)
			}
		}
	}
	fc.took = time.Since(started)
	return fc, nil
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// medianCI is the median of v and a distribution-free confidence
// interval for the median of the distribution v is drawn from: the order
// statistics v(k) and v(n+1-k), k the largest with P(Bin(n, ½) < k) ≤
// (1-want)/2, and the interval's exact coverage 1 - 2·P(Bin(n, ½) < k).
// With too few values for want, it is min–max and its (lower) coverage.
func medianCI(v []float64, want float64) (med, lo, hi, coverage float64) {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n == 0 {
		return math.NaN(), math.NaN(), math.NaN(), 0
	}
	// cdf[j] = P(Bin(n, ½) ≤ j)
	cdf := make([]float64, n+1)
	p, sum := math.Pow(0.5, float64(n)), 0.0
	for j := 0; j <= n; j++ {
		sum += p
		cdf[j] = sum
		p = p * float64(n-j) / float64(j+1)
	}
	k := 1 // P(X < 1) = P(X ≤ 0)
	for k+1 <= n/2 && cdf[k] <= (1-want)/2 {
		k++
	}
	return medianFloat(v), s[k-1], s[n-k], 1 - 2*cdf[k-1]
}

// floorVerdict judges a goal on the interval: ratio ≤ goal if atMost,
// else ratio ≥ goal.
func floorVerdict(lo, hi, goal float64, atMost bool) string {
	switch {
	case atMost && hi <= goal, !atMost && lo >= goal:
		return "met"
	case atMost && lo > goal, !atMost && hi < goal:
		return "not met"
	}
	return "cannot tell: the interval spans the goal"
}

// report is the goal lines, and a table of the pairs' ratios with how they
// are measured.
func (fc *floorCmp) report() (goals, details string) {
	var s, d strings.Builder
	t := newTable("ours / conntrack floor, paired rounds", "pairs", "median", fmt.Sprintf("%.0f%% CI of the median", floorConf*100), "coverage", "range", "goal", "verdict")
	line := func(what string, v []float64, goal float64, atMost bool) {
		med, lo, hi, cov := medianCI(v, floorConf)
		rel := "≥"
		if atMost {
			rel = "≤"
		}
		verdict := floorVerdict(lo, hi, goal, atMost)
		t.add(what, fmt.Sprint(len(v)), fmt.Sprintf("%.3f×", med), fmt.Sprintf("%.3f–%.3f×", lo, hi), fmt.Sprintf("%.1f%%", cov*100),
			fmt.Sprintf("%.2f–%.2f", slices.Min(v), slices.Max(v)), fmt.Sprintf("%s %.2f×", rel, goal), verdict)
		fmt.Fprintf(&s, "- %s through our flows %s %.2f× the minimal conntrack pipeline's: **%s** (median of %d paired rounds %.3f×, %.1f%% interval %.3f–%.3f×).\n",
			what, rel, goal, verdict, len(v), med, cov*100, lo, hi)
	}
	line("RTT IPv4", fc.rtt4, 1.02, true)
	line("RTT IPv6", fc.rtt6, 1.02, true)
	line("TCP IPv4", fc.tcp4, 0.98, false)
	line("TCP IPv6", fc.tcp6, 0.98, false)
	t.print(os.Stdout)
	fmt.Fprintf(&d, "%s\n", t.markdown())
	fmt.Fprintf(&d, `Against the floor, ours and it are measured in pairs, back to back, each
going first in turn, IPv4 and IPv6 alternating (%s in all): %d pairs of
ping rounds (`+"`busybox ping -c %d -i 0.01`"+`, a round's median) and %d pairs
of TCP transfers (the same Go sender and receiver, %s each, counted after
the first %s) per family. A pair's ratio is ours / floor; the interval is
the order-statistic (binomial, distribution-free) confidence interval of
the median of those ratios, assuming the pairs independent. A goal is met
when the whole interval is on its side, not met when wholly on the other.
`, fc.took.Round(time.Second), floorRTTPairs, pingCount, floorTCPPairs, floorTransfer, floorWarm)
	return s.String(), d.String()
}
