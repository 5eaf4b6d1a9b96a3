package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestRouterBuild builds as make cross does (-tags router): the fleet
// controller's and the demo's code is not in the binary, nor any of the
// packages only they import (fleet, the sample chutes', image/jpeg), their commands
// answer in one line where to find them, and the gateway's own commands,
// the USP agent and /metrics among them, are all there.
func TestRouterBuild(t *testing.T) {
	bin := buildBinary(t, "-trimpath", "-tags", "nethttpomithttp2,router")
	nm, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	syms := string(nm)
	for _, gone := range []string{" main.fleetMain", " main.cmdDemo", " main.cmdRolloutStart",
		" paradrop/fleet.(*Controller)", " paradrop/examples/cloud.", " paradrop/examples/sensor.",
		" paradrop/fleet.(*Retained)", " net/http.(*http2Framer)",
		" paradrop/fleet.", " paradrop/examples.", " paradrop/examples/camera.", " image/jpeg.",
		" github.com/prometheus/"} {
		if strings.Contains(syms, gone) {
			t.Errorf("router build has%s", gone)
		}
	}
	for _, kept := range []string{" main.cmdServe", " paradrop/usp.(*Agent)", " paradrop/chutedns.", " github.com/VictoriaMetrics/metrics.(*Set).WritePrometheus"} {
		if !strings.Contains(syms, kept) {
			t.Errorf("router build lacks%s", kept)
		}
	}

	for _, name := range []string{"demo", "fleet"} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, name, "--help")
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("%s: %v, want exit 2", name, err)
		}
		want := "paradrop: " + name + " is not in this router build (make build has it)\n"
		if stderr.String() != want {
			t.Errorf("%s said %q, want %q", name, stderr.String(), want)
		}
	}
	var usage bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Stderr = &usage
	_ = cmd.Run()
	if strings.Contains(usage.String(), "  demo ") || strings.Contains(usage.String(), "  fleet ") {
		t.Errorf("router build's usage lists what it lacks:\n%s", usage.String())
	}
	if !strings.Contains(usage.String(), "  serve ") {
		t.Errorf("router build's usage lacks serve:\n%s", usage.String())
	}
}
