package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"paradrop/chute/sandbox"
)

// A shim, or the monitor, lives as long as its chutes and answers the
// daemon's every request (state, signal, health check): what each one
// leaves behind must be collected, not pile up to the runtime's first
// heap goal.
func TestShimMemoryBoundedUnderRequests(t *testing.T) {
	for _, how := range starters(t) {
		t.Run(how.name, func(t *testing.T) { testShimMemory(t, how) })
	}
}

func testShimMemory(t *testing.T, how starter) {
	s := newSpec(t, "asked", "sleep 1000")
	startHow(t, how, s)
	pid := shimPID(t, s)
	before := rssAnon(t, pid)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const requests = 2000
	for range requests {
		if _, err := sandbox.Attach(ctx, s.StateDir); err != nil {
			t.Fatal(err)
		}
	}
	after := rssAnon(t, pid)
	t.Logf("shim private memory: %d KiB at start, %d KiB after %d requests", before>>10, after>>10, requests)
	// Without a collection the shim grew by 4.5 to 5 MiB; collecting
	// costs 0.5 MiB of the collector's own, plus a heap near the live one.
	if grown := after - before; grown > 3<<20 {
		t.Errorf("the shim grew by %d KiB over %d requests", grown>>10, requests)
	}
}

// The health door lives in the chute, on the chute's memory limit, and
// runs a command for every check: its garbage must be collected before
// it takes megabytes of the chute's budget.
func TestDoorMemoryBoundedUnderChecks(t *testing.T) {
	s := healthSpec(t, "checked")
	setCheck(t, s, "true")
	c := start(t, s)
	door := 0
	for pid, cmd := range chuteProcs(t, c.Pid()) {
		if strings.HasPrefix(cmd, "paradrop-door ") {
			door = pid
		}
	}
	if door == 0 {
		t.Fatalf("no door among the chute's processes %v", chuteProcs(t, c.Pid()))
	}
	before := rssAnon(t, door)
	const checks = 1000
	for range checks {
		if res, err := check(t, c); err != nil || res.Err() != nil {
			t.Fatalf("check: %v, %v", err, res.Err())
		}
	}
	after := rssAnon(t, door)
	t.Logf("door private memory: %d KiB at start, %d KiB after %d checks", before>>10, after>>10, checks)
	// It grew by 5 MiB with the runtime's first heap goal of 4 MiB.
	if grown := after - before; grown > 3<<20 {
		t.Errorf("the door grew by %d KiB over %d checks", grown>>10, checks)
	}
}

// rssAnon returns the private (anonymous) memory of process pid.
func rssAnon(t *testing.T, pid int) int64 {
	t.Helper()
	kb, err := strconv.ParseInt(strings.TrimSuffix(procStatus(t, pid)["RssAnon"], " kB"), 10, 64)
	if err != nil {
		t.Fatal(fmt.Errorf("RssAnon of %d: %w", pid, err))
	}
	return kb << 10
}

// A monitor outlives its chutes: what their starts and ends leave behind
// must be handed back, not kept until a heap goal its small live heap
// seldom reaches.
func TestMonitorMemoryAfterChurn(t *testing.T) {
	l := newLauncher(t, "")
	mon := monitorPid(t, l)
	killAtEnd(t, mon)
	warm := newSpec(t, "warm", "true")
	wait(t, startWith(t, l, warm))
	time.Sleep(2 * time.Second)
	before := rssAnon(t, mon)
	// Two bursts of ten: the threads they needed at once must not stay
	// either.
	const chutes = 20
	for b := range 2 {
		cs := make([]*sandbox.Chute, chutes/2)
		errs := make([]error, chutes/2)
		var wg sync.WaitGroup
		for i := range cs {
			s := newSpec(t, fmt.Sprintf("churn%d-%d", b, i), "sleep 0.5")
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				cs[i], errs[i] = l.Start(ctx, s)
			})
		}
		wg.Wait()
		for i, c := range cs {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			wait(t, c)
		}
	}
	time.Sleep(2 * time.Second)
	after := rssAnon(t, mon)
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", mon))
	t.Logf("monitor private memory: %d KiB after one chute, %d KiB after %d more started and ended (%d threads)", before>>10, after>>10, chutes, len(tasks))
	// 0.9-1.0 MiB before warm inits, 1.1-1.45 MiB with them (the clone of
	// the next one and its thread); 1.8-2.2 MiB without the trim, 1.2 MiB
	// with the copiers' threads kept (22 of them).
	if grown := after - before; grown > 1700<<10 {
		t.Errorf("the monitor grew by %d KiB over %d chutes that ended", grown>>10, chutes)
	}
	if len(tasks) > 12 {
		t.Errorf("the monitor kept %d threads after its chutes ended", len(tasks))
	}
}
