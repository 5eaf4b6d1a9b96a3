//go:build !router

package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"paradrop/chute/signature/signaturetest"
	"paradrop/examples"
)

// TestMigrateKilledLeavesOneCopy: real daemons, each killed -9 at each
// phase of a migration, then started again: once both are back and the
// source has resolved the migration, exactly one copy of the chute runs
// (one daemon lists it running, no process of it runs under the other),
// its /data whole and its count going on.
func TestMigrateKilledLeavesOneCopy(t *testing.T) {
	a, _ := startRealDaemon(t, "mig")
	b := startTarget(t, a, "-kb", "mig")
	tokenRE := regexp.MustCompile(`(?m)^pdd_[0-9a-f]{64}$`)
	key := signaturetest.NewKey(t)
	add := func(d *daemon) string {
		out, errs, code := d.cli("developer", "add", "acme", "--key", key.PubFile)
		if code != 0 {
			t.Fatalf("developer add: %s", errs)
		}
		return tokenRE.FindString(out)
	}
	acmeA, acmeB := add(a), add(b)
	pkg, err := examples.Package("name: mig\nversion: 1.0.0\ncommand: [/bin/sh, /counter.sh]\nstop_grace: 1s\nresources: {memory: 32Mi, disk: 16Mi}\n",
		map[string]string{"counter.sh": counterChute})
	if err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(t.TempDir(), "mig.tar.gz")
	os.WriteFile(pkgFile, pkg, 0o644)
	install := func() string {
		t.Helper()
		if _, errs, code := a.cli("chute", "install", pkgFile, "--sign", key.SecFile, "--token", acmeA); code != 0 {
			t.Fatalf("install on A: %s", errs)
		}
		until(t, 20*time.Second, "the chute's blob on A", func() bool {
			st, err := os.Stat(filepath.Join(a.data, "chutes", "mig", "data", "blob"))
			return err == nil && st.Size() == 128*65536
		})
		b, _ := os.ReadFile(filepath.Join(a.data, "chutes", "mig", "data", "blob"))
		return string(b)
	}
	count := func(d *daemon) int {
		b, _ := os.ReadFile(filepath.Join(d.data, "chutes", "mig", "data", "count"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	kill := func(d *daemon) {
		d.cmd.Process.Kill()
		d.cmd.Wait()
	}
	// listed: the daemon's word; procs: what runs in the chute's cgroup
	// under that daemon's parent, whatever the daemon says.
	listed := func(d *daemon) bool {
		out, _, _ := d.cli("chute", "list")
		return strings.Contains(out, "mig")
	}
	procs := func(d *daemon) int {
		parent := d.cgroupParent
		if parent == "" {
			parent = e2eCgroupParent
		}
		n := 0
		files, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent, "mig", "cgroup.procs"))
		files2, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", parent, "mig", "cgroup.procs"))
		for _, f := range append(files, files2...) {
			b, _ := os.ReadFile(f)
			n = max(n, len(strings.Fields(string(b))))
		}
		return n
	}
	// settled waits until one daemon alone lists the chute, with no
	// migration left to resolve, and returns it; a process of the chute
	// under the other is a second copy.
	settled := func(what string, blob string) *daemon {
		t.Helper()
		var on, off *daemon
		until(t, 60*time.Second, what+": one copy", func() bool {
			la, lb := listed(a), listed(b)
			if la == lb {
				return false
			}
			on, off = a, b
			if lb {
				on, off = b, a
			}
			in := on.info("mig")
			return in["state"] == "running" && in["unconfirmed"] == nil && procs(off) == 0
		})
		got, _ := os.ReadFile(filepath.Join(on.data, "chutes", "mig", "data", "blob"))
		if string(got) != blob {
			t.Errorf("%s: /data/blob on %s differs from what A had", what, on.url)
		}
		n := count(on)
		until(t, 20*time.Second, what+": the count goes on", func() bool { return count(on) > n+3 })
		if procs(off) != 0 || listed(off) {
			t.Errorf("%s: a second copy on %s: %d processes, listed %v", what, off.url, procs(off), listed(off))
		}
		t.Logf("%s: the chute runs on %s", what, map[*daemon]string{a: "A", b: "B"}[on])
		return on
	}
	// migrate moves the chute through a phaseProxy calling at, and
	// returns once that connection has ended.
	migrate := func(at func(toB bool, n int64, chunk []byte, silent time.Duration) bool) {
		t.Helper()
		p := newPhaseProxy(t, b.url, at)
		if _, errs, code := a.cli("chute", "migrate", "mig", "--to", "http://"+p.addr, "--to-token", acmeB, "--no-wait", "--token", acmeA); code != 0 {
			t.Fatalf("migrate: %s", errs)
		}
		p.wait()
	}
	// killAt kills d at the first chunk for which when holds, and cuts the
	// connection there.
	killAt := func(d *daemon, when func(toB bool, n int64, chunk []byte, silent time.Duration) bool) func(bool, int64, []byte, time.Duration) bool {
		return func(toB bool, n int64, chunk []byte, silent time.Duration) bool {
			if when(toB, n, chunk, silent) {
				kill(d)
				return true
			}
			return false
		}
	}
	answered := func(toB bool, _ int64, chunk []byte, _ time.Duration) bool {
		return !toB && bytes.Contains(chunk, []byte("HTTP/1.1 200"))
	}
	again := func() string {
		t.Helper()
		if _, errs, code := b.cli("chute", "remove", "mig", "--yes"); code != 0 {
			t.Fatal(errs)
		}
		return install()
	}

	blob := install()
	pid := a.info("mig")["pid"]

	// A dies during the pre-copy: its chute, never told, runs on, re-adopted.
	migrate(killAt(a, func(toB bool, n int64, _ []byte, _ time.Duration) bool { return toB && n > int64(len(pkg))+256<<10 }))
	a.start()
	if on := settled("A killed during the pre-copy", blob); on != a || a.info("mig")["pid"] != pid {
		t.Errorf("A killed during the pre-copy: the chute was not left as it was (pid %v, was %v)", a.info("mig")["pid"], pid)
	}

	// A dies once its handover grace is over, sending what changed (the
	// chute told, stopped or about to be): it runs it again; B, whose
	// stream was cut, keeps nothing.
	migrate(killAt(a, func(toB bool, n int64, _ []byte, silent time.Duration) bool {
		return toB && n > int64(len(pkg)) && silent >= 500*time.Millisecond
	}))
	a.start()
	if on := settled("A killed after the handover", blob); on != a {
		t.Errorf("A killed after the handover: the chute runs on B")
	}

	// A dies as B answers that the chute runs there: A, back, asks B
	// (through the proxy, as it knows B) and removes its copy.
	migrate(killAt(a, answered))
	a.start()
	if on := settled("A killed as B answered", blob); on != b {
		t.Errorf("A killed as B answered: the chute runs on A, not B, which had confirmed it")
	}

	// B dies as it answers: it had confirmed the chute. A, unanswered,
	// asks B until it is back, and removes its copy.
	blob = again()
	migrate(killAt(b, answered))
	time.Sleep(time.Second) // A asks a B that is not there
	b.start()
	if on := settled("B killed as it answered", blob); on != b {
		t.Errorf("B killed as it answered: the chute runs on A, not B, which had confirmed it")
	}

	// B dies once it has the whole stream, while it installs and starts
	// the chute: whether or not it had confirmed it, one copy runs.
	blob = again()
	killed := make(chan struct{})
	var once sync.Once
	migrate(func(toB bool, n int64, chunk []byte, silent time.Duration) bool {
		if toB && bytes.Contains(chunk, []byte("manifest.json")) {
			once.Do(func() {
				go func() {
					defer close(killed)
					for deadline := time.Now().Add(20 * time.Second); procs(b) == 0 && time.Now().Before(deadline); {
						time.Sleep(5 * time.Millisecond)
					}
					kill(b)
				}()
			})
		}
		return false
	})
	<-killed
	b.start()
	settled("B killed while it started the chute", blob)
}

// startTarget starts a second daemon beside a, its cgroup parent named
// with suffix; at the test's end it removes the named chutes, stops (the
// daemon running then, if the test restarted it) and unmounts what an
// import it was killed in left mounted.
func startTarget(t *testing.T, a *daemon, suffix string, chutes ...string) *daemon {
	b := &daemon{t: t, bin: a.bin, data: filepath.Join(t.TempDir(), "data"), url: "http://" + freePort(t), cgroupParent: e2eCgroupParent + suffix}
	b.start()
	t.Cleanup(func() {
		for _, c := range chutes {
			b.cli("chute", "remove", c, "--yes")
		}
		b.cmd.Process.Signal(syscall.SIGTERM)
		b.cmd.Wait()
		staged, _ := filepath.Glob(filepath.Join(b.data, "staging", "*.data"))
		for _, m := range staged {
			syscall.Unmount(m, 0)
		}
		dropCgroupParent(t, b.cgroupParent)
	})
	return b
}

func until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// phaseProxy forwards every connection to a daemon at url. On the first
// (the migration stream), at sees each chunk before it is forwarded, with
// its direction, the bytes gone towards the daemon so far and the silence
// before it on that side; true cuts that connection.
type phaseProxy struct {
	addr string
	done chan struct{}
}

func newPhaseProxy(t *testing.T, url string, at func(toB bool, n int64, chunk []byte, silent time.Duration) bool) *phaseProxy {
	p := &phaseProxy{done: make(chan struct{})}
	var first atomic.Bool
	p.addr = acceptLoopback(t, func(c net.Conn) {
		u, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			return
		}
		defer u.Close()
		if !first.CompareAndSwap(false, true) {
			go io.Copy(c, u)
			io.Copy(u, c)
			return
		}
		defer close(p.done)
		var once sync.Once
		cut := func() { once.Do(func() { c.Close(); u.Close() }) }
		var mu sync.Mutex
		var n int64
		pipe := func(dst, src net.Conn, toB bool) {
			defer cut()
			last := time.Now()
			buf := make([]byte, 32<<10)
			for {
				k, err := src.Read(buf)
				if k > 0 {
					mu.Lock()
					if toB {
						n += int64(k)
					}
					stop := at(toB, n, buf[:k], time.Since(last))
					mu.Unlock()
					last = time.Now()
					if stop {
						return
					}
					if _, err := dst.Write(buf[:k]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		go pipe(c, u, false)
		pipe(u, c, true)
	})
	return p
}

// wait returns once the first connection has ended.
func (p *phaseProxy) wait() {
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
	}
}

// TestHandoverAckOnRealDaemon: a chute told it moves (grace 60 s) says it
// is ready on its socket with its token; the move goes on at once, the
// steps say so; an ack when not told is a 409.
func TestHandoverAckOnRealDaemon(t *testing.T) {
	a, top := startRealDaemon(t, "ready")
	b := startTarget(t, a, "-hb", "ready")
	pkg, err := examples.Package("name: ready\nversion: 1.0.0\nstop_grace: 60s\n"+
		"command: [/bin/sh, -c, \"cat /paradrop/token > /data/t; mv /data/t /data/token; trap 'exit 0' TERM; while true; do sleep 0.1; done\"]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(top, "ready.tar.gz")
	os.WriteFile(pkgFile, pkg, 0o644)
	if _, errs, code := a.cli("chute", "install", pkgFile); code != 0 {
		t.Fatalf("install: %s", errs)
	}
	var tok string
	until(t, 10*time.Second, "the chute's token", func() bool {
		b, _ := os.ReadFile(filepath.Join(a.data, "chutes", "ready", "data", "token"))
		tok = strings.TrimSpace(string(b))
		return tok != ""
	})
	sock := chuteSocket(a, "ready")
	ack := func() (int, []byte) {
		return call(t, sock, a.url+"/api/v1/self/migrate/ack", tok, "POST", "")
	}
	if code, body := ack(); code != http.StatusConflict {
		t.Errorf("an ack when not told: %d %s", code, body)
	}
	opB, err := os.ReadFile(filepath.Join(b.data, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	told := filepath.Join(a.data, "chutes", "ready", "policy", "migrate.json")
	go func() {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(told); err == nil {
				if code, body := ack(); code != http.StatusOK {
					t.Errorf("the ack: %d %s", code, body)
				}
				return
			}
		}
	}()
	start := time.Now()
	out, errs, code := a.cli("chute", "migrate", "ready", "--to", b.url, "--to-token", strings.TrimSpace(string(opB)))
	if code != 0 || !strings.Contains(out, "ready said it is ready after") {
		t.Fatalf("migrate: exit %d %s%s", code, out, errs)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the move took %s: the 60 s grace did not end at the ack", took)
	}
	if in := b.info("ready"); in["state"] != "running" {
		t.Errorf("on B: %v", in)
	}
}
