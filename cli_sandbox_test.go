package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"paradrop/chute/sandbox"
)

// The chutes' monitor (and a shim, where a chute runs under one of its
// own) runs for the chutes' whole life: it plays its role before the
// daemon's own packages (API, chute manager, switch controller, USP, HTTP,
// metrics) initialise, so what they allocate at start-up is not kept in
// it. Here this test binary, which links all of them, plays each role: a
// monitor that starts and is let go, a shim given a state directory
// without a spec.
func TestRolesRunBeforeDaemonPackages(t *testing.T) {
	for _, role := range []string{sandbox.MonitorCommand, sandbox.ShimCommand} {
		t.Run(role, func(t *testing.T) {
			dir := t.TempDir()
			reportR, reportW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer reportR.Close()
			var trace strings.Builder
			cmd := exec.Command(os.Args[0], role, dir)
			cmd.Env = []string{"GODEBUG=inittrace=1"}
			cmd.Stderr = &trace
			cmd.ExtraFiles = []*os.File{reportW} // fd 3, the report channel
			err = cmd.Start()
			reportW.Close()
			if err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(reportR).ReadString('\n')
			if role == sandbox.MonitorCommand {
				var hello struct{ Socket string }
				if err := json.Unmarshal([]byte(line), &hello); err != nil || filepath.Dir(hello.Socket) != dir {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("monitor's hello %q (%v)\n%s", line, err, trace.String())
				}
				// A launcher's hold, let go: the monitor, serving nothing, exits.
				conn, err := net.Dial("unix", hello.Socket)
				if err != nil {
					t.Fatal(err)
				}
				conn.Write([]byte("{}\n"))
				bufio.NewReader(conn).ReadString('\n')
				conn.Close()
			} else if err != nil || !strings.Contains(line, "spec.json") {
				t.Errorf("shim's report %q (%v), want its failure to read spec.json", line, err)
			}
			cmd.Wait()
			if !strings.Contains(trace.String(), "init os @") {
				t.Fatalf("no init trace:\n%s", trace.String())
			}
			for _, pkg := range []string{"paradrop/api", "paradrop/chute", "paradrop/sdn", "paradrop/usp", "net/http", "github.com/VictoriaMetrics/metrics", "main"} {
				if strings.Contains(trace.String(), "init "+pkg+" @") {
					t.Errorf("%s was initialised in the %s role:\n%s", pkg, role, trace.String())
				}
			}
		})
	}
}
