package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
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

// TestRouterBuildInitHeap holds what the gateway's binary allocates in its
// packages' initialisation (GODEBUG=inittrace=1), before any command runs:
// what is still referenced then (compiled regexps, tables) stays on the
// daemon's heap for its life and is scanned by every collection. Ours
// compile their regexps on first use; the generated USP codec registers
// its protobuf descriptors (protobuf's way); a dependency whose init
// allocated a quarter of the total (Masterminds' semver: 200 KB of
// regexps for constraints we never parse) was replaced.
func TestRouterBuildInitHeap(t *testing.T) {
	bin := buildBinary(t, "-trimpath", "-tags", "nethttpomithttp2,router")
	var stderr bytes.Buffer
	cmd := exec.Command(bin) // usage, exit 2: after every package's init
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	cmd.Stderr = &stderr
	_ = cmd.Run()
	perPkg := map[string]int{}
	total, n := 0, 0
	for line := range strings.Lines(stderr.String()) {
		// init PKG @T ms, C ms clock, B bytes, A allocs
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		b, err := strconv.Atoi(f[7])
		if err != nil {
			t.Fatalf("inittrace line %q: %v", line, err)
		}
		perPkg[f[1]] += b
		total += b
		n++
	}
	if n < 100 {
		t.Fatalf("only %d inittrace lines:\n%s", n, stderr.String())
	}
	// Before: 840 KB in all, Masterminds' semver 200 KB, tenant 26 KB.
	const maxTotal, maxOurs = 680 << 10, 8 << 10
	if total > maxTotal {
		t.Errorf("package initialisation allocated %d bytes, want <= %d", total, maxTotal)
	}
	for pkg, b := range perPkg {
		ours := pkg == "main" || strings.HasPrefix(pkg, "paradrop/")
		if ours && pkg != "paradrop/usp/codec" && b > maxOurs {
			t.Errorf("%s's initialisation allocated %d bytes, want <= %d (make it lazy)", pkg, b, maxOurs)
		}
	}
}
