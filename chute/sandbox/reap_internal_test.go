package sandbox

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads in /proc/self/status")
	return 0
}

// Waiting for many children at once holds no thread each: the daemon
// waits for every running shim.
func TestReapHoldsNoThread(t *testing.T) {
	const n = 24
	before := threads(t)
	cmds := make([]*exec.Cmd, n)
	for i := range cmds {
		cmds[i] = exec.Command("sleep", "2")
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, c := range cmds {
		wg.Go(func() { errs[i] = reap(c) })
	}
	time.Sleep(500 * time.Millisecond) // the waiters are all waiting
	during := threads(t)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("child %d: %v", i, err)
		}
	}
	if grew := during - before; grew > n/4 {
		t.Errorf("%d waiting children took %d threads (%d before, %d during)", n, grew, before, during)
	}
}

// reap returns what Wait does: the exit status, a kill.
func TestReapStatus(t *testing.T) {
	c := exec.Command("sh", "-c", "exit 3")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := reap(c); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("reap = %v, want exit status 3", err)
	}
	c = exec.Command("sleep", "60")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- reap(c) }()
	c.Process.Kill()
	select {
	case err := <-done:
		if !errors.As(err, &ee) || ee.String() != "signal: killed" {
			t.Fatalf("reap of a killed child = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reap did not return after the child was killed")
	}
}
