package main

// The migrate suite (issue "Chutes follow their users"): how long a chute
// is down, how long the whole move takes and how many bytes it moves when
// it goes from one gateway to another on this machine, against the move a
// person would make by hand in the same run: stop it through the API,
// stream /data with tar over a TCP connection, start it on the other
// gateway, where it was installed (and stopped) beforehand.
//
// B runs in a network namespace of its own, its API at its address on a
// fake WAN (a veth pair from A's namespace, the bench's, TEST-NET-2
// addresses): our move and the tar stream by hand both cross it, not
// loopback. Both gateways run with --network=false (no Open vSwitch per
// gateway: the chutes' network is not what moves), so no client can
// reach the chute: its answers are its heartbeat, a counter it writes to
// /data/beat every 10 ms, which the bench polls every 10 ms on each
// gateway. Downtime is from the last beat seen on A to the first new beat
// seen on B.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"paradrop/chute"
	"paradrop/examples"
)

func init() {
	suites["migrate"] = suite{summary: "a chute's downtime and bytes moving between two gateways; vs stop, tar over TCP, start", run: runMigrate}
}

// migrateRuns is how many moves of each size each contender makes.
const migrateRuns = 3

// migrateFiles is how many files /data holds; the chute rewrites one of
// them (10%) when told it moves.
const migrateFiles = 10

const beatManifest = `name: mover
version: 1.0.0
command: [/bin/sh, /beat.sh]
stop_grace: 1s
resources: {disk: %dMi}
`

// beatScript beats every 10 ms; told it moves, it rewrites /data/f0.
const beatScript = `#!/bin/sh
trap 'exit 0' TERM
trap 'head -c $(wc -c < /data/f0) /dev/urandom > /data/f0.new && mv /data/f0.new /data/f0' USR1
i=0
while true; do i=$((i+1)); echo $i > /data/beat; sleep 0.01; done
`

type moveResult struct {
	downtime, total sample
	bytes           int64 // of the last run
	after           afterStop
}

// afterStop is how the time from the chute's stop on A to the answer that
// it runs on B went, phase by phase, from the steps of A's migration and
// of B's install (one clock: one machine).
type afterStop struct {
	stop, delta, install, start, answer sample
}

// stepAt is the time of the first step of c that begins with prefix.
func stepAt(c chute.Change, prefix string) (time.Time, bool) {
	for _, s := range c.Steps {
		if strings.HasPrefix(s.Message, prefix) {
			return s.Time, true
		}
	}
	return time.Time{}, false
}

// measure adds the phases of one move: mig is A's migration, inst B's
// install of the chute.
func (a *afterStop) measure(mig, inst chute.Change) error {
	var t [6]time.Time
	for i, at := range []struct {
		c      chute.Change
		prefix string
	}{{mig, "stopping chute mover"}, {mig, "stopped mover in"}, {mig, "sent what changed in /data since:"},
		{inst, "installed mover"}, {inst, "chute mover running, pid"}, {mig, "running on "}} {
		var ok bool
		if t[i], ok = stepAt(at.c, at.prefix); !ok {
			return fmt.Errorf("no step %q in change %d", at.prefix, at.c.ID)
		}
	}
	for i, s := range []*sample{&a.stop, &a.delta, &a.install, &a.start, &a.answer} {
		*s = append(*s, t[i+1].Sub(t[i]))
	}
	return nil
}

func runMigrate(ctx context.Context, o options) (string, error) {
	tmp, remove, err := chuteTempDir("paradrop-bench-migrate-")
	if err != nil {
		return "", err
	}
	defer remove()
	bin := filepath.Join(tmp, "paradrop")
	if err := buildBinary(ctx, ".", bin); err != nil {
		return "", err
	}
	for _, d := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o700); err != nil {
			return "", err
		}
	}
	a, err := startDaemonIn(ctx, bin, filepath.Join(tmp, "a", "data"), daemonCgroup+"-a")
	if err != nil {
		return "", err
	}
	defer a.stop()
	wan, err := newFakeWAN(ctx)
	if err != nil {
		return "", err
	}
	defer wan.remove()
	b, err := startDaemonAt(ctx, wan.ns, net.JoinHostPort(migrateWANB, "8443"), bin, filepath.Join(tmp, "b", "data"), daemonCgroup+"-b")
	if err != nil {
		return "", err
	}
	defer b.stop()
	defer func() {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		a.removeAll(rmCtx)
		b.removeAll(rmCtx)
	}()
	dirs := map[*daemon]string{a: filepath.Join(tmp, "a", "data"), b: filepath.Join(tmp, "b", "data")}
	tab := newTable("/data", "contender", "n", "downtime median", "downtime max", "total median", "bytes moved", "vs /data")
	phases := newTable("/data", "stop", "last delta sent", "install on B", "start on B", "B's answer to A")
	var summary []string
	results := map[int][2]moveResult{}
	for _, mib := range []int{1, 16, 64} {
		pkg, err := examples.Package(fmt.Sprintf(beatManifest, 2*mib+8), map[string]string{"beat.sh": beatScript})
		if err != nil {
			return "", err
		}
		size := int64(mib) << 20
		var ours, peer moveResult
		for range migrateRuns {
			if err := moveOurs(ctx, a, b, dirs, pkg, size, &ours); err != nil {
				return "", fmt.Errorf("%d MiB, paradrop: %w", mib, err)
			}
			if err := movePeer(ctx, a, b, dirs, pkg, size, &peer); err != nil {
				return "", fmt.Errorf("%d MiB, by hand: %w", mib, err)
			}
		}
		for _, r := range []struct {
			name string
			m    moveResult
		}{{"paradrop chute migrate (pre-copy)", ours}, {"by hand: stop, tar over TCP, start", peer}} {
			tab.add(fmt.Sprintf("%d MiB", mib), r.name, strconv.Itoa(len(r.m.downtime)), ms(r.m.downtime.median()), ms(maxOf(r.m.downtime)),
				ms(r.m.total.median()), fmt.Sprintf("%.1f MiB", float64(r.m.bytes)/(1<<20)), fmt.Sprintf("%.2f×", float64(r.m.bytes)/float64(size)))
		}
		results[mib] = [2]moveResult{ours, peer}
		af := ours.after
		phases.add(fmt.Sprintf("%d MiB", mib), ms(af.stop.median()), ms(af.delta.median()), ms(af.install.median()), ms(af.start.median()), ms(af.answer.median()))
		summary = append(summary, fmt.Sprintf("%d MiB: downtime %s vs %s by hand (%.2f×), %.2f× /data moved",
			mib, ms(ours.downtime.median()), ms(peer.downtime.median()), ratio(ours.downtime, peer.downtime), float64(ours.bytes)/float64(size)))
	}
	tab.print(os.Stdout)
	phases.print(os.Stdout)
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	r16, r64 := results[16], results[64]
	goals := fmt.Sprintf("Goals: downtime ≤ 1 s at 16 MiB: %s (%s); ≤ 0.3× by hand at 64 MiB: %s (%.2f×); bytes ≤ 1.2× /data: %s at 16 MiB (%.2f×) and 64 MiB (%.2f×), the package counted",
		met(r16[0].downtime.median() <= time.Second), ms(r16[0].downtime.median()),
		met(ratio(r64[0].downtime, r64[1].downtime) <= 0.3), ratio(r64[0].downtime, r64[1].downtime),
		met(float64(r16[0].bytes) <= 1.2*float64(16<<20) && float64(r64[0].bytes) <= 1.2*float64(64<<20)),
		float64(r16[0].bytes)/float64(16<<20), float64(r64[0].bytes)/float64(64<<20))
	summary = append(summary, goals)
	body := fmt.Sprintf("Moving a chute between two gateways on this machine over a fake WAN (B in a network namespace of its own, its API and the by-hand tar receiver at 198.51.100.2 behind a veth pair from A at 198.51.100.1: no delay or rate limit on it, both moves cross it; `--network=false`, no Open vSwitch per gateway; %d files in /data, one of them — 10%% — rewritten by the chute when told it moves; %d moves each): %s. Downtime is from the chute's last heartbeat on A to its first on B, both polled every 10 ms in /data; total is the call (ours) or stop + copy + start (by hand); bytes are what crossed: the package, /data, what changed while the chute was told (sent before the stop) and after the stop (ours), the tar stream (by hand). The handover grace (1 s) is not downtime: the chute runs through it.\n\n%s\nOurs after the stop, medians, from the steps of A's migration and B's install: A stopping the chute, the last delta sent, B installing it (the stream's end checked, its record, /data put in place), B starting it, B's answer reaching A (after the chute runs: not downtime).\n\n%s",
		migrateFiles, migrateRuns, strings.Join(summary[:len(summary)-1], "; ")+". "+summary[len(summary)-1], tab.markdown(), phases.markdown())
	return body, nil
}

func maxOf(s sample) time.Duration {
	var m time.Duration
	for _, d := range s {
		m = max(m, d)
	}
	return m
}

// installBeat installs the beating chute on d and fills its /data with
// size bytes in migrateFiles files, owned by the chute.
func installBeat(ctx context.Context, d *daemon, dir string, pkg []byte, size int64) error {
	if err := d.change(ctx, "POST", "/chutes", bytes.NewReader(pkg)); err != nil {
		return err
	}
	data := filepath.Join(dir, "chutes", "mover", "data")
	var st syscall.Stat_t
	if err := syscall.Stat(data, &st); err != nil {
		return err
	}
	chunk := make([]byte, size/migrateFiles)
	for i := range migrateFiles {
		readRandom(chunk)
		f := filepath.Join(data, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(f, chunk, 0o644); err != nil {
			return err
		}
		if err := os.Chown(f, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return nil
}

func readRandom(b []byte) {
	f, err := os.Open("/dev/urandom")
	if err != nil {
		return
	}
	defer f.Close()
	io.ReadFull(f, b)
}

// beats polls the chute's heartbeat on a and b every 10 ms; stop waits
// for the first new beat on b (10 s at most) and returns the downtime:
// from the last change seen on a to the first change seen on b.
func beats(dirs map[*daemon]string, a, b *daemon) (stop func() (time.Duration, error)) {
	done := make(chan struct{})
	var mu sync.Mutex
	var lastA, firstB time.Time
	read := func(d *daemon) string {
		v, _ := os.ReadFile(filepath.Join(dirs[d], "chutes", "mover", "data", "beat"))
		return string(v)
	}
	go func() {
		prevA, prevB, seenB := read(a), "", false
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mu.Lock()
				if v := read(a); v != prevA && v != "" {
					prevA, lastA = v, now
				}
				switch v := read(b); {
				case v == "" || !firstB.IsZero():
				case !seenB:
					seenB, prevB = true, v
				case v != prevB:
					firstB = now
				}
				mu.Unlock()
			}
		}
	}()
	return func() (time.Duration, error) {
		defer close(done)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			seen := !firstB.IsZero()
			mu.Unlock()
			if seen {
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if lastA.IsZero() || firstB.IsZero() {
			return 0, fmt.Errorf("no beat seen (A last %v, B first %v)", lastA, firstB)
		}
		return firstB.Sub(lastA), nil
	}
}

var bytesRE = regexp.MustCompile(`(\d+) bytes`)

func moveOurs(ctx context.Context, a, b *daemon, dirs map[*daemon]string, pkg []byte, size int64, r *moveResult) error {
	if err := installBeat(ctx, a, dirs[a], pkg, size); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	stop := beats(dirs, a, b)
	time.Sleep(100 * time.Millisecond) // A's beats seen before the move
	to := map[string]string{"to": strings.TrimSuffix(b.base, "/api/v1"), "token": b.token}
	if strings.HasPrefix(b.base, "https:") {
		fp, err := b.fingerprint(ctx)
		if err != nil {
			return err
		}
		to["fingerprint"] = fp
	}
	body, _ := json.Marshal(to)
	start := time.Now()
	var c chute.Change
	if _, err := a.call(ctx, "POST", "/chutes/mover/migrate?wait=1", bytes.NewReader(body), &c); err != nil {
		stop()
		return err
	}
	total := time.Since(start)
	if c.State != chute.ChangeDone {
		stop()
		return fmt.Errorf("migrate: %s", c.Error)
	}
	down, err := stop()
	if err != nil {
		return err
	}
	var moved int64
	for _, s := range c.Steps {
		if m := bytesRE.FindStringSubmatch(s.Message); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			moved += n
		}
	}
	r.downtime, r.total, r.bytes = append(r.downtime, down), append(r.total, total), moved
	var changes struct {
		Changes []chute.Change `json:"changes"`
	}
	if _, err := b.call(ctx, "GET", "/changes", nil, &changes); err != nil {
		return err
	}
	var inst chute.Change
	for _, ch := range changes.Changes {
		if ch.Chute == "mover" && ch.Action == "install" && ch.ID > inst.ID {
			inst = ch
		}
	}
	if err := r.after.measure(c, inst); err != nil {
		return err
	}
	return b.change(ctx, "DELETE", "/chutes/mover", nil)
}

// movePeer is the move by hand: the chute is installed and stopped on b
// beforehand; then it is stopped on a, /data streamed as tar over a TCP
// connection into b's, and started on b.
func movePeer(ctx context.Context, a, b *daemon, dirs map[*daemon]string, pkg []byte, size int64, r *moveResult) error {
	if err := b.change(ctx, "POST", "/chutes", bytes.NewReader(pkg)); err != nil {
		return err
	}
	if err := b.change(ctx, "POST", "/chutes/mover/stop", nil); err != nil {
		return err
	}
	if err := installBeat(ctx, a, dirs[a], pkg, size); err != nil {
		return err
	}
	dataB := filepath.Join(dirs[b], "chutes", "mover", "data")
	os.Remove(filepath.Join(dataB, "beat"))
	time.Sleep(300 * time.Millisecond)
	stop := beats(dirs, a, b)
	time.Sleep(100 * time.Millisecond) // A's beats seen before the move
	start := time.Now()
	if err := a.change(ctx, "POST", "/chutes/mover/stop", nil); err != nil {
		stop()
		return err
	}
	moved, err := tarOverTCP(ctx, b.ns, filepath.Join(dirs[a], "chutes", "mover", "data"), dataB)
	if err != nil {
		stop()
		return err
	}
	if err := b.change(ctx, "POST", "/chutes/mover/start", nil); err != nil {
		stop()
		return err
	}
	total := time.Since(start)
	down, err := stop()
	if err != nil {
		return err
	}
	r.downtime, r.total, r.bytes = append(r.downtime, down), append(r.total, total), moved
	if err := a.change(ctx, "DELETE", "/chutes/mover", nil); err != nil {
		return err
	}
	return b.change(ctx, "DELETE", "/chutes/mover", nil)
}

// tarOverTCP streams src into dst as `tar c | ssh host tar x` would,
// through a TCP connection to B's address on the fake WAN (the listening
// socket in B's namespace ns), owners kept; it returns the bytes of the
// stream.
func tarOverTCP(ctx context.Context, ns, src, dst string) (int64, error) {
	var ln net.Listener
	err := inNetNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(migrateWANB, "0"))
		return err
	})
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	x := exec.CommandContext(ctx, "tar", "-C", dst, "--numeric-owner", "-xpf", "-")
	recv := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recv <- err
			return
		}
		defer c.Close()
		x.Stdin = c
		out, err := x.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("tar x: %w: %s", err, out)
		}
		recv <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: c}
	cmd := exec.CommandContext(ctx, "tar", "-C", src, "--numeric-owner", "-cf", "-", ".")
	cmd.Stdout = cw
	err = cmd.Run()
	c.Close()
	if rerr := <-recv; err == nil {
		err = rerr
	}
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// The fake WAN: a veth pair from the bench's namespace (A, migrateWANA)
// to a namespace of B's own (migrateWANB), TEST-NET-2 addresses, no other
// route; B's API and the by-hand tar stream's receiver listen at
// migrateWANB, so both moves cross the veth, not loopback.
const (
	migrateWANA = "198.51.100.1"
	migrateWANB = "198.51.100.2"
)

type fakeWAN struct {
	ns, link string
}

func newFakeWAN(ctx context.Context) (*fakeWAN, error) {
	id := strconv.Itoa(os.Getpid())
	w := &fakeWAN{ns: "pdmigwan-" + id, link: "pdmw" + id}
	ip := func(args ...string) error {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := ip("netns", "add", w.ns); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"link", "add", w.link, "type", "veth", "peer", "name", "wan0", "netns", w.ns},
		{"addr", "add", migrateWANA + "/30", "dev", w.link},
		{"link", "set", w.link, "up"},
		{"-n", w.ns, "addr", "add", migrateWANB + "/30", "dev", "wan0"},
		{"-n", w.ns, "link", "set", "wan0", "up"},
		{"-n", w.ns, "link", "set", "lo", "up"},
	} {
		if err := ip(args...); err != nil {
			w.remove()
			return nil, err
		}
	}
	return w, nil
}

// remove deletes the namespace, and the veth pair with it.
func (w *fakeWAN) remove() {
	exec.Command("ip", "link", "del", w.link).Run()
	exec.Command("ip", "netns", "del", w.ns).Run()
}
