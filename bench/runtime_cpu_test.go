package main

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// A start's CPU figure is the start's: the bench's wait for cold shims
// reads processes' command lines, at a cost that grows with the processes
// (it scanned all of /proc, and made the figure climb by 7.5 ms a start
// with 400 idle processes more on the host), and must not be counted.
func TestStartCPULeavesOutTheWait(t *testing.T) {
	for range 300 {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	const scans = 5
	t0 := treeCPU()
	for range scans {
		roleChildren("no-such-role")
	}
	scan := (treeCPU() - t0) / scans
	if scan < 200*time.Microsecond {
		t.Fatalf("a scan of /proc with 300 processes more cost only %v; the test cannot tell", scan)
	}

	m, err := markCPU("", "")
	if err != nil {
		t.Fatal(err)
	}
	used, err := m.since(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if used > scan/2 {
		t.Errorf("nothing started, yet %v of CPU counted (a scan of /proc costs %v)", used, scan)
	}
}
