package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"paradrop/chute"
)

// writePkg writes a fake package (see apitest) with some padding.
func writePkg(t *testing.T, name, version string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".tar")
	body := name + " " + version + "\n" + strings.Repeat("x", 3000)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCLIList(t *testing.T) {
	f := newCLIFixture(t)
	started := time.Now().Add(-90 * time.Second)
	f.fake.Add(chute.Info{Name: "web", Version: "1.2", State: chute.Running, Pid: 4242, StartedAt: &started, Restarts: 2})
	f.fake.Add(chute.Info{Name: "db", Version: "0.9", State: chute.Stopped, Owner: "acme"})
	if rc := f.run(chuteMain, "list"); rc != 0 {
		t.Fatalf("rc %d: %s", rc, f.stderr)
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(f.stdout.String()), "\n") {
		rows = append(rows, strings.Fields(l))
	}
	want := [][]string{
		{"NAME", "VERSION", "STATE", "PID", "RESTARTS", "UPTIME", "OWNER"},
		{"db", "0.9", "stopped", "-", "0", "-", "developer:acme"},
		{"web", "1.2", "running", "4242", "2", "1m30s", "operator"},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("table:\n%s\nwant rows %q", f.stdout, want)
	}
	// Columns line up: every row has its VERSION at the same offset.
	lines := strings.Split(f.stdout.String(), "\n")
	if strings.Index(lines[0], "VERSION") != strings.Index(lines[2], "1.2") {
		t.Errorf("columns not aligned:\n%s", f.stdout)
	}

	if rc := f.run(chuteMain, "list", "--json"); rc != 0 {
		t.Fatalf("--json: rc %d", rc)
	}
	var got struct{ Chutes []chute.Info }
	if err := json.Unmarshal([]byte(f.stdout.String()), &got); err != nil || len(got.Chutes) != 2 {
		t.Errorf("--json: %v %s", err, f.stdout)
	}
}

func TestCLIInfo(t *testing.T) {
	f := newCLIFixture(t)
	f.fake.Add(chute.Info{Name: "web", Version: "1.2", State: chute.Running})
	if rc := f.run(chuteMain, "info", "web"); rc != 0 {
		t.Fatalf("rc %d: %s", rc, f.stderr)
	}
	var got chute.Info
	if err := json.Unmarshal([]byte(f.stdout.String()), &got); err != nil || got.Version != "1.2" {
		t.Errorf("%v %s", err, f.stdout)
	}
	if !strings.Contains(f.stdout.String(), "\n  \"name\": \"web\"") {
		t.Errorf("not indented: %s", f.stdout)
	}
	if rc := f.run(chuteMain, "info", "nope"); rc != 1 {
		t.Errorf("missing chute: rc %d", rc)
	}
	f.oneLine(t, "paradrop: info: nope: no such chute")
}

func TestCLIInstallShowsSteps(t *testing.T) {
	f := newCLIFixture(t)
	f.fake.Hold = true
	go func() {
		for f.fake.Changes() == nil {
			time.Sleep(time.Millisecond)
		}
		for _, s := range []string{"unpacking", "creating /data", "starting"} {
			f.fake.Step(1, s)
			time.Sleep(15 * time.Millisecond)
		}
		f.fake.Finish(1, "")
	}()
	if rc := f.run(chuteMain, "install", writePkg(t, "cam", "1.0")); rc != 0 {
		t.Fatalf("rc %d: %s", rc, f.stderr)
	}
	want := "  unpacking\n  creating /data\n  starting\ncam installed (change 1)\n"
	if f.stdout.String() != want {
		t.Errorf("stdout %q, want %q", f.stdout, want)
	}
	// Not a terminal: one final progress line, no redraws.
	if got := f.stderr.String(); got != "uploaded 2.9 KiB\n" {
		t.Errorf("stderr %q", got)
	}
	if info, err := f.fake.Get("cam"); err != nil || info.State != chute.Running {
		t.Errorf("cam: %+v %v", info, err)
	}
}

func TestCLIInstallFails(t *testing.T) {
	f := newCLIFixture(t)
	f.fake.Hold = true
	go func() {
		for f.fake.Changes() == nil {
			time.Sleep(time.Millisecond)
		}
		f.fake.Step(1, "starting")
		f.fake.Finish(1, "health check: GET /health: 500 Internal Server Error")
	}()
	if rc := f.run(chuteMain, "install", writePkg(t, "cam", "1.0")); rc != 1 {
		t.Fatalf("rc %d", rc)
	}
	if got := f.stderr.String(); got != "uploaded 2.9 KiB\nparadrop: install: health check: GET /health: 500 Internal Server Error\n" {
		t.Errorf("stderr %q", got)
	}
}

func TestCLIServerErrors(t *testing.T) {
	tests := []struct {
		err  error
		args []string
		want string
	}{
		{fmt.Errorf("manifest: resources.memory: %q is not a quantity: %w", "64Mx", chute.ErrInvalid),
			[]string{"install", "PKG"}, `paradrop: install: manifest: resources.memory: "64Mx" is not a quantity: invalid request`},
		{fmt.Errorf("web: %w", chute.ErrExists), []string{"install", "PKG"}, "paradrop: install: web: chute already exists"},
		{fmt.Errorf("web: change 3 in progress: %w", chute.ErrConflict), []string{"stop", "web"}, "paradrop: stop: web: change 3 in progress: conflict"},
		{fmt.Errorf("web: %w", chute.ErrNotFound), []string{"update", "web", "PKG"}, "paradrop: update: web: no such chute"},
		{fmt.Errorf("web: %w", chute.ErrNotFound), []string{"remove", "web", "--yes"}, "paradrop: remove: web: no such chute"},
	}
	for _, tt := range tests {
		f := newCLIFixture(t)
		f.fake.Err = tt.err
		args := append([]string(nil), tt.args...)
		for i, a := range args {
			if a == "PKG" {
				args[i] = writePkg(t, "web", "1")
			}
		}
		if rc := f.run(chuteMain, args...); rc != 1 {
			t.Errorf("%q: rc %d", tt.args, rc)
		}
		if got := f.stderr.String(); got != tt.want+"\n" {
			t.Errorf("%q: stderr %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestCLIUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"install"}, "paradrop: install: usage: paradrop chute install PKG"},
		{[]string{"update", "web"}, "paradrop: update: usage: paradrop chute update NAME PKG"},
		{[]string{"info", "a", "b"}, "paradrop: info: usage:"},
		{[]string{"list", "--bogus"}, "paradrop: list: flag provided but not defined: -bogus (usage: paradrop chute list"},
		{[]string{"logs", "web", "-n", "-1"}, "paradrop: logs: -n -1"},
		{[]string{"logs", "web", "-n", "x"}, "paradrop: logs: invalid value \"x\" for flag -n"},
		{[]string{"remove", "web"}, "paradrop: remove: not a terminal, so cannot ask: pass --yes"},
	}
	f := newCLIFixture(t)
	f.fake.Add(chute.Info{Name: "web"})
	for _, tt := range tests {
		if rc := f.run(chuteMain, tt.args...); rc != 2 {
			t.Errorf("%q: rc %d", tt.args, rc)
		}
		f.oneLine(t, tt.want)
	}
	if rc := f.run(changesMain, "abc"); rc != 2 {
		t.Errorf("changes abc: rc %d", rc)
	}
	f.oneLine(t, `paradrop: changes: change id "abc"`)
	if rc := f.run(chuteMain, "frobnicate"); rc != 2 || !strings.HasPrefix(f.stderr.String(), "paradrop: chute: unknown subcommand \"frobnicate\"\nusage:") {
		t.Errorf("unknown subcommand: rc %d, %s", rc, f.stderr)
	}
	if _, err := f.fake.Get("web"); err != nil {
		t.Error("a usage error removed the chute")
	}
}

func TestCLIActions(t *testing.T) {
	f := newCLIFixture(t)
	f.fake.Add(chute.Info{Name: "web", Version: "1", State: chute.Running})
	for _, tt := range []struct {
		args  []string
		out   string
		state chute.State
	}{
		{[]string{"stop", "web"}, "  stop web\nweb stopped (change 1)\n", chute.Stopped},
		{[]string{"start", "web"}, "  start web\nweb started (change 2)\n", chute.Running},
		{[]string{"restart", "--no-wait", "web"}, "change 3 queued for web\n", chute.Running},
		{[]string{"update", "web", writePkg(t, "web", "1"), "--force"}, "  update web\nweb updated (change 4)\n", chute.Running},
	} {
		if rc := f.run(chuteMain, tt.args...); rc != 0 {
			t.Fatalf("%q: rc %d: %s", tt.args, rc, f.stderr)
		}
		if f.stdout.String() != tt.out {
			t.Errorf("%q: stdout %q, want %q", tt.args, f.stdout, tt.out)
		}
		if info, _ := f.fake.Get("web"); info.State != tt.state {
			t.Errorf("%q: state %s, want %s", tt.args, info.State, tt.state)
		}
	}
	if rc := f.run(chuteMain, "update", "web", writePkg(t, "web", "1")); rc != 1 {
		t.Errorf("same version without --force: rc %d", rc)
	}
}

func TestCLIRemove(t *testing.T) {
	f := newCLIFixture(t)
	f.env.stdinTTY = true
	for _, tt := range []struct {
		answer string
		args   []string
		rc     int
		gone   bool
	}{
		{"n\n", []string{"remove", "web"}, 1, false},
		{"", []string{"remove", "web"}, 1, false},
		{"yes\n", []string{"remove", "web", "--keep-data"}, 0, true},
		{"", []string{"remove", "web", "--yes"}, 0, true},
	} {
		f.fake.Add(chute.Info{Name: "web"})
		f.env.stdin = strings.NewReader(tt.answer)
		if rc := f.run(chuteMain, tt.args...); rc != tt.rc {
			t.Errorf("%q answering %q: rc %d, want %d (%s)", tt.args, tt.answer, rc, tt.rc, f.stderr)
		}
		if _, err := f.fake.Get("web"); (err != nil) != tt.gone {
			t.Errorf("%q answering %q: gone=%v", tt.args, tt.answer, err != nil)
		}
	}
}

func TestCLILogs(t *testing.T) {
	f := newCLIFixture(t)
	f.fake.Add(chute.Info{Name: "web"})
	for i := range 5 {
		f.fake.AppendLog("web", fmt.Sprint("line ", i))
	}
	if rc := f.run(chuteMain, "logs", "web", "-n", "2"); rc != 0 || f.stdout.String() != "line 3\nline 4\n" {
		t.Errorf("-n 2: rc %d %q %s", rc, f.stdout, f.stderr)
	}

	f.stdout.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- cmdLogs(ctx, f.env, "logs", []string{"-f", "-n", "1", "web"}) }()
	waitFor(t, f.stdout, "line 4\n")
	f.fake.AppendLog("web", "line 5")
	waitFor(t, f.stdout, "line 4\nline 5\n")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("^C on a follower: %v", err)
	}
}

// A follow the daemon ends (here: the developer's token is revoked) is
// not a success: the CLI says why, on one line, and exits 1.
func TestCLILogsFollowCut(t *testing.T) {
	f := newCLIFixture(t)
	if rc := f.run(developerMain, "add", "acme"); rc != 0 {
		t.Fatalf("developer add: %s", f.stderr)
	}
	token := regexp.MustCompile(`pdd_[0-9a-f]+`).FindString(f.stdout.String())
	operator := f.vars["PARADROP_DATA"]
	f.fake.Add(chute.Info{Name: "web", Owner: "acme"})
	f.fake.AppendLog("web", "line 1")
	f.vars["PARADROP_TOKEN"] = token
	f.stdout.Reset()
	f.stderr.Reset()
	done := make(chan int)
	go func() { done <- chuteMain(f.env, []string{"logs", "-f", "web"}) }()
	waitFor(t, f.stdout, "line 1\n")

	// The operator revokes it.
	out, _ := os.ReadFile(filepath.Join(operator, "operator.token"))
	req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/developers/acme", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(out)))
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var dev struct{ Tokens []struct{ ID string } }
	json.NewDecoder(resp.Body).Decode(&dev)
	resp.Body.Close()
	req, _ = http.NewRequest("DELETE", f.srv.URL+"/api/v1/developers/acme/tokens/"+dev.Tokens[0].ID, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(out)))
	if resp, err := f.srv.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	select {
	case rc := <-done:
		if rc != 1 || f.stderr.String() != "paradrop: logs: the log ended: invalid token\n" {
			t.Errorf("rc %d, stderr %q", rc, f.stderr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the follow goes on after its token was revoked")
	}
}

func waitFor(t *testing.T, b *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("output %q, want %q", b, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCLIChanges(t *testing.T) {
	f := newCLIFixture(t)
	f.fake.Add(chute.Info{Name: "web"})
	f.fake.Hold = true
	f.fake.Stop("web", "operator")
	f.fake.Step(1, "stopping")
	f.fake.Finish(1, "did not stop")
	if rc := f.run(changesMain); rc != 0 {
		t.Fatalf("rc %d: %s", rc, f.stderr)
	}
	lines := strings.Split(strings.TrimSpace(f.stdout.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.HasPrefix(lines[1], "1 ") ||
		!strings.Contains(lines[1], "stop") || !strings.Contains(lines[1], " operator ") || !strings.HasSuffix(lines[1], "did not stop") {
		t.Errorf("table:\n%s", f.stdout)
	}
	if rc := f.run(changesMain, "1"); rc != 0 {
		t.Fatalf("rc %d: %s", rc, f.stderr)
	}
	if out := f.stdout.String(); !strings.HasPrefix(out, "change 1: stop web: failed\nby operator\n") ||
		!strings.Contains(out, "  stopping\n") || !strings.HasSuffix(out, "error: did not stop\n") {
		t.Errorf("one change:\n%s", out)
	}
	if rc := f.run(changesMain, "7"); rc != 1 {
		t.Errorf("missing change: rc %d", rc)
	}
	f.oneLine(t, "paradrop: changes: change 7: no such change")
}

func TestCLIFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 45 * time.Second: "45s", 12*time.Minute + 3*time.Second: "12m3s",
		3*time.Hour + 4*time.Minute: "3h4m", 53 * time.Hour: "2d5h",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestCLIProgressTerminal(t *testing.T) {
	var out syncBuffer
	p := &progress{r: strings.NewReader(strings.Repeat("x", 2048)), w: &out, tty: true, total: 2048}
	buf := make([]byte, 1024)
	p.Read(buf)
	p.Read(buf)
	p.done(true)
	got := out.String()
	if !strings.HasPrefix(got, "\r") || !strings.Contains(got, "2.0 KiB / 2.0 KiB (100%)") || !strings.HasSuffix(got, "\n") {
		t.Errorf("terminal progress %q", got)
	}
}

// chute resources --cpus sends the CPU list, "" to lift it.
func TestCLIResourcesCPUs(t *testing.T) {
	f := newCLIFixture(t)
	f.fake.Add(chute.Info{Name: "web", Version: "1", State: chute.Running})
	for _, cpus := range []string{"0", ""} {
		if rc := f.run(chuteMain, "resources", "web", "--cpus", cpus); rc != 0 {
			t.Fatalf("--cpus %q: rc %d: %s", cpus, rc, f.stderr)
		}
		req, ok := f.fake.LastResources("web")
		if !ok || req.CPUs == nil || *req.CPUs != cpus || req.CPUMax != nil {
			t.Errorf("--cpus %q: request %+v", cpus, req)
		}
	}
}
