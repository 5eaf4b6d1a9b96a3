package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"paradrop/api"
	"paradrop/cgroup"
)

// testCgroupParent is this package's cgroup parent: serve removes the
// groups under its parent that are not its chutes, and the default one
// (/paradrop) is a real gateway's on the same machine.
var testCgroupParent = fmt.Sprintf("/paradrop-cli-test-%d", os.Getpid())

func TestServe(t *testing.T) {
	dir := t.TempDir()
	// A group left under the parent by someone else: serve's start-up
	// removes it, as the manager does at every start, which shows that the
	// parent it cleans is the one it was given.
	stray, err := cgroup.Open(testCgroupParent+"/stray", cgroup.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stray.Delete()
		if g, err := cgroup.Load(testCgroupParent); err == nil {
			g.Delete()
		}
	})
	var mu sync.Mutex
	var logged []string
	start := func() (string, context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		addr := make(chan net.Addr, 1)
		done := make(chan error, 1)
		go func() {
			done <- serve(ctx, serveOptions{
				dataDir: dir, listen: "127.0.0.1:0", maxUpload: 1 << 20, cgroups: testCgroupParent, gcPercent: 70,
				logf: func(format string, args ...any) {
					mu.Lock()
					defer mu.Unlock()
					logged = append(logged, fmt.Sprintf(format, args...))
				},
				ready: func(a net.Addr) { addr <- a },
			})
		}()
		select {
		case a := <-addr:
			return "http://" + a.String(), cancel, done
		case err := <-done:
			t.Fatalf("serve: %v", err)
		}
		return "", nil, nil
	}

	defer debug.SetGCPercent(debug.SetGCPercent(100))
	base, stop, done := start()
	if gc := debug.SetGCPercent(100); gc != 70 {
		t.Errorf("serve left GOGC at %d, want its option's 70", gc)
	}
	resp, err := http.Get(base + "/api/v1/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	tok, err := os.ReadFile(filepath.Join(dir, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/info", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("info with the token: %v %v", resp, err)
	}
	resp.Body.Close()
	// The manager cleans up as it starts running, beside the API.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := cgroup.Load(testCgroupParent + "/stray"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve kept the stray group under its parent %s", testCgroupParent)
		}
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after cancel")
	}

	// A restart keeps the token.
	_, stop, done = start()
	stop()
	<-done
	if again, _ := os.ReadFile(filepath.Join(dir, api.TokenFile)); string(again) != string(tok) {
		t.Error("token changed across restarts")
	}
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(logged, "\n")
	for _, want := range []string{"created operator token in " + dir, "operator token in " + dir, "API listening on 127.0.0.1:"} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}
}

func TestServeBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = serve(context.Background(), serveOptions{dataDir: t.TempDir(), listen: ln.Addr().String(), cgroups: testCgroupParent, logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("busy port: %v", err)
	}
}

func TestServeFlags(t *testing.T) {
	f := newCLIFixture(t)
	for _, args := range [][]string{{"--max-upload", "12x"}, {"--max-upload", "0"}, {"extra"}, {"--max-unpacked", "0"},
		{"--listen", "bogus"}, {"--max-conns", "0"}, {"--stall-timeout", "0s"}, {"--min-rate", "-1"},
		{"--gc-percent", "0"}, {"--gc-percent", "5000"}, {"--gc-percent", "x"}} {
		run := func(env *cliEnv, args []string) int { return runCLI(env, "serve", cmdServe, args) }
		if rc := f.run(run, args...); rc != 2 {
			t.Errorf("%q: rc %d", args, rc)
		}
		f.oneLine(t, "paradrop: serve: ")
	}
}

// A data directory chutes could not run from is refused at start-up, in one
// line that says why, rather than every chute start failing later.
func TestServeRefusesUnusableData(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := syscall.Mount("", dir, "", syscall.MS_UNBINDABLE, ""); err != nil {
		t.Fatal(err)
	}
	err := serve(context.Background(), serveOptions{dataDir: dir, listen: "127.0.0.1:0", cgroups: testCgroupParent, logf: t.Logf})
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "chutes cannot run from "+dir) {
		t.Errorf("serve on an unbindable data directory: %v", err)
	}
}
