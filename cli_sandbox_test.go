package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"paradrop/chute/sandbox"
)

// A chute's shim runs for the chute's whole life, one per chute: it plays
// its role before the daemon's own packages (API, chute manager, switch
// controller, USP, HTTP, Prometheus) initialise, so what they allocate at
// start-up is not kept in every shim. Here a spare shim of this test
// binary, which links all of them, boots and is let go.
func TestShimRunsBeforeDaemonPackages(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "launcher"), os.NewFile(uintptr(fds[1]), "spare")
	defer ours.Close()
	var trace strings.Builder
	cmd := exec.Command(os.Args[0], sandbox.ShimCommand, "--spare")
	cmd.Env = []string{"GODEBUG=inittrace=1"}
	cmd.Stderr = &trace
	cmd.ExtraFiles = []*os.File{theirs} // fd 3, the launcher's channel
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	hello, err := bufio.NewReader(ours).ReadString('\n')
	ours.Close() // no assignment: the spare exits
	if werr := cmd.Wait(); err != nil || werr != nil || !strings.Contains(hello, `"ready":true`) {
		t.Fatalf("spare shim: hello %q (%v), exit %v\n%s", hello, err, werr, trace.String())
	}
	if !strings.Contains(trace.String(), "init os @") {
		t.Fatalf("no init trace:\n%s", trace.String())
	}
	for _, pkg := range []string{"paradrop/api", "paradrop/chute", "paradrop/sdn", "paradrop/usp", "net/http", "github.com/VictoriaMetrics/metrics", "main"} {
		if strings.Contains(trace.String(), "init "+pkg+" @") {
			t.Errorf("%s was initialised in the shim:\n%s", pkg, trace.String())
		}
	}
}
