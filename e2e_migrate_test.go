//go:build !router

package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"paradrop/chute/signature/signaturetest"
	"paradrop/examples"
)

// counterChute counts in memory, writing its count to /data/count and
// starting from it; told of its migration (SIGUSR1) it hands its count
// over in /data/handover and stops counting; started as a migrated chute
// it goes on from the count handed over.
const counterChute = `#!/bin/sh
n=$(cat /data/count 2>/dev/null || echo 0)
if [ -n "$PARADROP_MIGRATED_FROM" ] && [ -f /data/handover ]; then
  n=$(cat /data/handover)
  echo "migrated from $PARADROP_MIGRATED_FROM at $n"
fi
[ -f /data/blob ] || dd if=/dev/urandom of=/data/blob bs=65536 count=128 2>/dev/null
handed=0
trap 'echo $n > /data/handover; echo "handover at $n: $(cat /paradrop/migrate.json)"; handed=1' USR1
trap 'exit 0' TERM
while true; do
  if [ $handed = 0 ]; then n=$((n+1)); echo $n > /data/count; fi
  sleep 0.05
done
`

// TestMigrateBetweenGateways: two real daemons on one machine; a
// developer's chute moves from A to B with its /data intact and its
// in-memory count handed over; a developer cannot move another's chute; a
// target whose quota refuses it, or that dies mid-transfer, leaves the
// chute running on A with its /data as it was.
func TestMigrateBetweenGateways(t *testing.T) {
	a, _ := startRealDaemon(t, "mig")
	b := startTarget(t, a, "-b", "mig")
	tokenRE := regexp.MustCompile(`(?m)^pdd_[0-9a-f]{64}$`)
	add := func(d *daemon, args ...string) string {
		out, errs, code := d.cli(append([]string{"developer", "add"}, args...)...)
		if code != 0 {
			t.Fatalf("developer add %v: %s", args, errs)
		}
		return tokenRE.FindString(out)
	}
	key, betaKey := signaturetest.NewKey(t), signaturetest.NewKey(t)
	acmeA := add(a, "acme", "--key", key.PubFile)
	betaA := add(a, "beta", "--key", betaKey.PubFile)
	// On B acme may not yet hold the chute's memory.
	acmeB := add(b, "acme", "--key", key.PubFile, "--memory", "16Mi")
	as := func(d *daemon, token string, args ...string) (string, string, int) {
		return d.cli(append(args, "--token", token)...)
	}

	pkg, err := examples.Package("name: mig\nversion: 1.0.0\ncommand: [/bin/sh, /counter.sh]\nstop_grace: 1s\nresources: {memory: 32Mi, disk: 16Mi}\n",
		map[string]string{"counter.sh": counterChute})
	if err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(t.TempDir(), "mig.tar.gz")
	os.WriteFile(pkgFile, pkg, 0o644)
	if _, errs, code := as(a, acmeA, "chute", "install", pkgFile, "--sign", key.SecFile); code != 0 {
		t.Fatalf("install on A: %s", errs)
	}
	dataOf := func(d *daemon) string { return filepath.Join(d.data, "chutes", "mig", "data") }
	count := func(d *daemon) int {
		b, _ := os.ReadFile(filepath.Join(dataOf(d), "count"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	waitCount := func(d *daemon, above int) int {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if n := count(d); n > above {
				return n
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("count on %s stays at %d", d.url, count(d))
		return 0
	}
	sum := func(d *daemon) string {
		b, err := os.ReadFile(filepath.Join(dataOf(d), "blob"))
		if err != nil || len(b) != 128*65536 {
			t.Fatalf("blob on %s: %d bytes, %v", d.url, len(b), err)
		}
		return fmt.Sprintf("%x", sha256.Sum256(b))
	}
	waitCount(a, 5)
	blob := sum(a)
	pid := a.info("mig")["pid"]
	migrate := func(token, to string) (string, string, int) {
		return as(a, token, "chute", "migrate", "mig", "--to", to, "--to-token", acmeB)
	}
	untouched := func(what string) {
		t.Helper()
		if in := a.info("mig"); in["state"] != "running" || in["pid"] != pid {
			t.Errorf("after %s, A's chute: %v %v (was pid %v)", what, in["state"], in["pid"], pid)
		}
		if out, _, _ := b.cli("chute", "list"); strings.Contains(out, "mig") {
			t.Errorf("after %s, B lists the chute: %s", what, out)
		}
	}

	// Another developer: A answers as if the chute did not exist.
	if _, errs, code := migrate(betaA, b.url); code != 1 || !strings.Contains(errs, `chute "mig": no such chute`) {
		t.Errorf("beta migrates acme's chute: exit %d %s", code, errs)
	}
	untouched("beta's attempt")

	// B does not know the token: the chute was never stopped on A.
	if _, errs, code := as(a, acmeA, "chute", "migrate", "mig", "--to", b.url, "--to-token", "pdd_"+strings.Repeat("0", 64)); code != 1 || !strings.Contains(errs, "refused: invalid token") {
		t.Errorf("migrate with a token B does not know: exit %d %s", code, errs)
	}
	untouched("B's refusal of the token")

	// B's quota refuses it: the chute was never stopped on A.
	if out, errs, code := migrate(acmeA, b.url); code != 1 || !strings.Contains(errs, "memory") {
		t.Errorf("migrate beyond B's quota: exit %d %s%s", code, out, errs)
	}
	untouched("B's refusal")

	// B dies mid-transfer. While /data (8 MiB) is pre-copied, A's chute is
	// untouched; once it was stopped, A runs it again, its /data as it
	// was, counting on from it.
	if _, errs, code := b.cli("developer", "set", "acme", "--memory", "64Mi"); code != 0 {
		t.Fatal(errs)
	}
	killB := func(p *killingProxy, want string) {
		t.Helper()
		out, errs, code := migrate(acmeA, "http://"+p.addr)
		if code != 1 || !strings.Contains(out, "admitted the package") || !strings.Contains(out, want) {
			t.Errorf("migrate to a target killed mid-transfer: exit %d %s%s", code, out, errs)
		}
		b.cmd.Wait()
		if in := a.info("mig"); in["state"] != "running" {
			t.Fatalf("after B died, A's chute: %v", in)
		}
		if got := sum(a); got != blob {
			t.Errorf("after B died, A's /data/blob is %s, was %s", got, blob)
		}
		b.start()
		if out, _, _ := b.cli("chute", "list"); strings.Contains(out, "mig") {
			t.Errorf("B, restarted, lists the chute: %s", out)
		}
	}
	killB(newKillingProxy(t, b, int64(len(pkg))+64<<10, 0), "sent the package")
	untouched("B died during the pre-copy")
	before := count(a)
	killB(newKillingProxy(t, b, int64(len(pkg)), 500*time.Millisecond), "mig runs here again")
	waitCount(a, before)

	// The move: the steps say what moved and how long it took; /data
	// arrives whole, the count goes on from the one handed over.
	out, errs, code := migrate(acmeA, b.url)
	if code != 0 {
		t.Fatalf("migrate: exit %d %s%s", code, out, errs)
	}
	t.Logf("paradrop chute migrate:\n%s", out)
	for _, want := range []string{"admitted the package", "sent the package: ", "sent /data while it runs: ", "stopped mig in", "sent what changed in /data since: ", "running on " + b.url} {
		if !strings.Contains(out, want) {
			t.Errorf("the steps do not say %q:\n%s", want, out)
		}
	}
	if _, errs, code := a.cli("chute", "info", "mig"); code != 1 || !strings.Contains(errs, "no such chute") {
		t.Errorf("A still has the chute: %s", errs)
	}
	in := b.info("mig")
	if in["state"] != "running" || in["owner"] != "acme" {
		t.Fatalf("on B: %v", in)
	}
	if got := sum(b); got != blob {
		t.Errorf("B's /data/blob is %s, A's was %s", got, blob)
	}
	handedB, _ := os.ReadFile(filepath.Join(dataOf(b), "handover"))
	handed, _ := strconv.Atoi(strings.TrimSpace(string(handedB)))
	logs, _, _ := b.cli("chute", "logs", "mig")
	host, _ := os.Hostname()
	if handed == 0 || !strings.Contains(logs, fmt.Sprintf("migrated from %s at %d", host, handed)) {
		t.Errorf("handed over %d; B's logs:\n%s", handed, logs)
	}
	waitCount(b, handed+3)

	// Back to A, which holds the package the chute left there: only its
	// /data moves.
	out, errs, code = as(b, acmeB, "chute", "migrate", "mig", "--to", a.url, "--to-token", acmeA)
	if code != 0 || !strings.Contains(out, "the target holds the package") || strings.Contains(out, "sent the package") {
		t.Fatalf("migrate back: exit %d %s%s", code, out, errs)
	}
	if in := a.info("mig"); in["state"] != "running" {
		t.Fatalf("back on A: %v", in)
	}
	if got := sum(a); got != blob {
		t.Errorf("back on A, /data/blob is %s, was %s", got, blob)
	}
}

// killingProxy forwards one connection to b and kills b once more than
// after bytes have gone through towards it, and, with pause, only at the
// first bytes after a silence that long (the source's handover grace).
type killingProxy struct{ addr string }

func newKillingProxy(t *testing.T, b *daemon, after int64, pause time.Duration) *killingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		u, err := net.Dial("tcp", strings.TrimPrefix(b.url, "http://"))
		if err != nil {
			return
		}
		defer u.Close()
		go io.Copy(c, u)
		var n int64
		last := time.Now()
		buf := make([]byte, 32<<10)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				silent := time.Since(last) >= pause
				last = time.Now()
				if n += int64(k); n > after && silent {
					b.cmd.Process.Kill()
					return
				}
				u.Write(buf[:k])
			}
			if err != nil {
				return
			}
		}
	}()
	return &killingProxy{addr: l.Addr().String()}
}
