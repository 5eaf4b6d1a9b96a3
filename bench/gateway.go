package main

// Helpers every suite may need: a busybox rootfs, the real daemon run as
// a subprocess, an API client, and cleanup of what they leave behind.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"paradrop/chute"
	"paradrop/examples"
	"paradrop/tlscert"
)

// busyboxRootfs fills dir with Debian's static busybox, its applet links
// and the mountpoints paradrop, runc and LXC all use.
func busyboxRootfs(dir string) error {
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc", "root", "data", "paradrop"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	bb, err := os.ReadFile(examples.Busybox)
	if err != nil {
		return fmt.Errorf("rootfs needs busybox-static: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	out, err := exec.Command(examples.Busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("rootfs: busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	return os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
}

// buildBinary builds a package of the module as make build builds the
// daemon, so that sizes and start-up are the shipped ones; with tags, as
// the Makefile's builds given those tags.
func buildBinary(ctx context.Context, pkg, out string, tags ...string) error {
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
	}
	return nil
}

// daemon is `paradrop serve` run as a subprocess on a loopback port.
type daemon struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:PORT/api/v1
	token   string
	logPath string
	exited  chan struct{}
	client  *http.Client
	// cgroupParent is removed by stop: a daemon keeps its parent, as a
	// gateway should, so every run left one per daemon in every hierarchy.
	cgroupParent string
	ns           string // its network namespace (/run/netns), "" the bench's
}

func startDaemon(ctx context.Context, bin, dataDir string) (*daemon, error) {
	return startDaemonIn(ctx, bin, dataDir, daemonCgroup)
}

// startDaemonIn is startDaemon with the chutes under cgroupParent (two
// daemons at once need two), and more flags of serve.
func startDaemonIn(ctx context.Context, bin, dataDir, cgroupParent string, flags ...string) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startDaemonAt(ctx, "", fmt.Sprintf("127.0.0.1:%d", port), bin, dataDir, cgroupParent, flags...)
}

// startDaemonAt is startDaemonIn listening at listen, in the named network
// namespace (/run/netns/ns) unless ns is "".
func startDaemonAt(ctx context.Context, ns, listen, bin, dataDir, cgroupParent string, flags ...string) (*daemon, error) {
	logPath := filepath.Join(filepath.Dir(dataDir), "daemon.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("daemon log: %w", err)
	}
	defer logf.Close()
	// Not CommandContext: stop ends it gently, so chutes can be removed first.
	// Off the host's network and out of the default cgroup parent, so the
	// bench touches nothing a gateway running on this machine owns.
	cmd := exec.Command(bin, "serve", "--data", dataDir, "--listen", listen,
		"--network=false", "--cgroup-parent", cgroupParent)
	cmd.Args = append(cmd.Args, flags...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // no terminal ^C before cleanup
	// Only the network namespace (not ip netns exec, whose mount namespace
	// would hide the daemon's /data volumes from the bench).
	if err := inNetNS(ns, cmd.Start); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	d := &daemon{cmd: cmd, base: "http://" + listen + "/api/v1", logPath: logPath,
		exited: make(chan struct{}), client: &http.Client{Timeout: 2 * time.Minute}, cgroupParent: cgroupParent, ns: ns}
	if ap, err := netip.ParseAddrPort(listen); err == nil && !ap.Addr().IsLoopback() {
		// Off loopback serve answers HTTPS only, with a self-signed
		// certificate: the bench's own calls (not measured) do not check
		// it; migrations pin it (fingerprint).
		d.base = "https://" + listen + "/api/v1"
		d.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	go func() { cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tok, err := os.ReadFile(filepath.Join(dataDir, "operator.token"))
		if err == nil && len(bytes.TrimSpace(tok)) > 0 {
			d.token = string(bytes.TrimSpace(tok))
			if _, err := d.call(ctx, "GET", "/health", nil, nil); err == nil {
				return d, nil
			}
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("daemon exited at start-up: %s", d.logTail())
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("daemon not answering after 30s: %s", d.logTail())
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// call makes one API request and decodes a 2xx answer into out (if not
// nil); other answers are errors carrying the daemon's message.
func (d *daemon) call(ctx context.Context, method, path string, body io.Reader, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// change makes a change-making call with ?wait=1 and fails unless the
// change ended well.
func (d *daemon) change(ctx context.Context, method, path string, body io.Reader) error {
	var c chute.Change
	if _, err := d.call(ctx, method, path+"?wait=1", body, &c); err != nil {
		return err
	}
	if c.State != chute.ChangeDone {
		return fmt.Errorf("%s %s: change %d %s: %s", method, path, c.ID, c.State, c.Error)
	}
	return nil
}

func (d *daemon) chute(ctx context.Context, name string) (chute.Info, error) {
	var in chute.Info
	_, err := d.call(ctx, "GET", "/chutes/"+name, nil, &in)
	return in, err
}

// removeAll removes every chute; run before stop, since chutes outlive
// the daemon.
func (d *daemon) removeAll(ctx context.Context) error {
	var list struct{ Chutes []chute.Info }
	if _, err := d.call(ctx, "GET", "/chutes", nil, &list); err != nil {
		return err
	}
	var errs []error
	for _, in := range list.Chutes {
		errs = append(errs, d.change(ctx, "DELETE", "/chutes/"+in.Name, nil))
	}
	return errors.Join(errs...)
}

// stop ends the daemon with SIGTERM, as a service manager would, and
// kills it if it lingers; then it removes the daemon's cgroup parent with
// whatever is left in it (call removeAll first to remove chutes the
// daemon's way).
func (d *daemon) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		err = errors.New("daemon ignored SIGTERM for 15s; killed")
	}
	if d.cgroupParent != "" {
		err = errors.Join(err, removeCgroupTree(d.cgroupParent))
	}
	return err
}

// vmRSS reads a process's resident set from /proc, in bytes.
// daemonCgroup is the cgroup parent of the bench's daemon's chutes.
var daemonCgroup = fmt.Sprintf("/paradrop-benchd-%d", os.Getpid())

func vmRSS(pid int) (int64, error) { return statusBytes(pid, "VmRSS") }

// statusBytes reads a kB field of /proc/PID/status, in bytes.
func statusBytes(pid int, field string) (int64, error) {
	v, err := procStatus(pid, field)
	if err != nil {
		return 0, err
	}
	kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s of %d: %w", field, pid, err)
	}
	return kb << 10, nil
}

// procStatus returns a field of /proc/PID/status.
func procStatus(pid int, field string) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == field {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// chuteTempDir makes a temporary directory for chutes. remove unmounts
// what is left below it and deletes it.
func chuteTempDir(prefix string) (dir string, remove func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, fmt.Errorf("temp dir: %w", err)
	}
	remove = func() {
		unmountUnder(dir)
		os.RemoveAll(dir)
	}
	return dir, remove, nil
}

// unmountUnder lazily unmounts whatever is still mounted below dir
// (chute volumes, network namespaces), deepest first, so that removing
// dir cannot reach into them.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// inNetNS runs f on a thread in the named network namespace
// (/run/netns/ns), or as it is if ns is "": a process f starts and a
// socket f opens stay in it.
func inNetNS(ns string, f func() error) error {
	if ns == "" {
		return f()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		panic(fmt.Sprintf("back to the bench's network namespace: %v", err)) // the thread is unusable
	}
	return ferr
}

// fingerprint is the SHA-256 fingerprint of the certificate d serves over
// HTTPS, as a migration to d pins it.
func (d *daemon) fingerprint(ctx context.Context) (string, error) {
	resp, err := d.client.Get(strings.TrimSuffix(d.base, "/api/v1") + "/api/v1/health")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return "", fmt.Errorf("%s: no certificate", d.base)
	}
	return tlscert.Of(resp.TLS.PeerCertificates[0].Raw).String(), nil
}
