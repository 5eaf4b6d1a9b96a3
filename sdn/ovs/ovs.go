// Package ovs finds or runs the Open vSwitch instance the gateway uses.
//
// When no usable OVS is running, Start runs a private one (ovsdb-server and
// ovs-vswitchd) with every file it needs - database, sockets, pidfiles,
// logs - in one directory. The processes are daemonized with pidfiles
// rather than kept as children, so that a restarted gateway daemon
// re-adopts the instance (and its bridges and flows) instead of starting a
// second one. Stop ends them.
//
// Open vSwitch's own binaries come from Debian's openvswitch-switch
// package; the database is programmed with paradrop/sdn/ovsdb.
package ovs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"paradrop/sdn/ovsdb"
)

// SchemaPath is where Debian installs the Open_vSwitch database schema.
const SchemaPath = "/usr/share/openvswitch/vswitch.ovsschema"

// ErrNotInstalled is returned (wrapped) when the Open vSwitch binaries are
// missing; `apt-get install openvswitch-switch` provides them.
var ErrNotInstalled = errors.New("open vswitch is not installed (apt-get install openvswitch-switch)")

// Daemon is an Open vSwitch instance: one run in its own directory by this
// package, or an external one found by Find.
type Daemon struct {
	dir      string // our run directory; "" for an external instance
	dbSocket string // "unix:..." or "tcp:..."
	runDir   string // where ovs-vswitchd puts BRIDGE.mgmt
}

// DBSocket returns the OVSDB address for ovsdb.Dial, e.g. "unix:DIR/db.sock".
func (d *Daemon) DBSocket() string { return d.dbSocket }

// MgmtSocket returns the path of bridge's OpenFlow management socket, which
// ovs-ofctl accepts as unix:PATH.
func (d *Daemon) MgmtSocket(bridge string) string {
	return filepath.Join(d.runDir, bridge+".mgmt")
}

// process describes one of the two OVS daemons in a run directory.
type process struct {
	name string // binary name, also the base of its pidfile and log
	args func(dir string) []string
}

var (
	dbServer = process{"ovsdb-server", func(dir string) []string {
		return []string{filepath.Join(dir, "conf.db"), "--remote=punix:" + filepath.Join(dir, "db.sock")}
	}}
	vswitchd = process{"ovs-vswitchd", func(dir string) []string {
		return []string{"unix:" + filepath.Join(dir, "db.sock")}
	}}
)

func (p process) pidfile(dir string) string { return filepath.Join(dir, p.name+".pid") }

// running returns the pid of p if it runs for dir. The pidfile path must
// appear on the command line, so a recycled pid is not mistaken for it.
func (p process) running(dir string) (int, bool) {
	b, err := os.ReadFile(p.pidfile(dir))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, isOurs(pid, p.pidfile(dir))
}

func isOurs(pid int, pidfile string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	// A zombie has an empty command line, so it does not count.
	return err == nil && bytes.Contains(cmdline, []byte("--pidfile="+pidfile+"\x00"))
}

func (p process) start(ctx context.Context, dir string) error {
	bin, err := lookBinary(p.name)
	if err != nil {
		return err
	}
	args := append(p.args(dir),
		"--pidfile="+p.pidfile(dir),
		"--log-file="+filepath.Join(dir, p.name+".log"),
		"--unixctl="+filepath.Join(dir, p.name+".ctl"),
		"--no-chdir",
		// The parent exits once the daemon is ready (or failed), which
		// gives us both readiness and its error message.
		"--detach")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = ovsEnv(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("start %s: %w: %s", p.name, err, bytes.TrimSpace(out))
	}
	return nil
}

// stop asks the process to exit with "exit --cleanup", which makes
// ovs-vswitchd delete its datapath and the tap devices of the userspace
// datapath (a plain SIGTERM leaves them behind). SIGTERM is the fallback,
// and SIGKILL follows if ctx ends before the process is gone.
func (p process) stop(ctx context.Context, dir string) error {
	pid, ok := p.running(dir)
	if !ok {
		return nil
	}
	appctl, err := lookBinary("ovs-appctl")
	if err == nil {
		ctl := filepath.Join(dir, p.name+".ctl")
		args := []string{"-t", ctl, "--timeout=5", "exit"}
		if p.name == vswitchd.name {
			args = append(args, "--cleanup")
		}
		err = exec.CommandContext(ctx, appctl, args...).Run()
	}
	if err != nil {
		err = syscall.Kill(pid, syscall.SIGTERM)
	}
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (pid %d): %w", p.name, pid, err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for isOurs(pid, p.pidfile(dir)) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("stop %s (pid %d): killed: %w", p.name, pid, ctx.Err())
		}
	}
	return nil
}

// ovsEnv keeps every file OVS creates on its own (e.g. BRIDGE.mgmt) in dir.
func ovsEnv(dir string) []string {
	return append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_LOGDIR="+dir, "OVS_DBDIR="+dir)
}

// lookBinary finds an OVS binary; sbin and Debian's libexec directory are
// searched too since they are often missing from PATH.
func lookBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/lib/openvswitch-switch"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, ErrNotInstalled)
}

// Installed reports whether the binaries Start needs are present.
func Installed() error {
	for _, name := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd"} {
		if _, err := lookBinary(name); err != nil {
			return err
		}
	}
	if _, err := os.Stat(SchemaPath); err != nil {
		return fmt.Errorf("%s: %w", SchemaPath, ErrNotInstalled)
	}
	return nil
}

// Start runs Open vSwitch in dir, creating the database if needed, or
// adopts the instance already running there. It uses the userspace
// datapath unless bridges ask for another.
func Start(ctx context.Context, dir string) (*Daemon, error) {
	d, err := start(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("start open vswitch in %s: %w", dir, err)
	}
	return d, nil
}

func start(ctx context.Context, dir string) (*Daemon, error) {
	if err := Installed(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	d := &Daemon{dir: dir, dbSocket: "unix:" + filepath.Join(dir, "db.sock"), runDir: dir}

	if _, ok := dbServer.running(dir); !ok {
		if err := createDB(ctx, dir); err != nil {
			return nil, err
		}
		// A socket left by a crashed server would make ours fail to bind.
		os.Remove(filepath.Join(dir, "db.sock"))
		if err := dbServer.start(ctx, dir); err != nil {
			return nil, err
		}
	}
	if err := initDB(ctx, d.dbSocket); err != nil {
		return nil, err
	}
	if _, ok := vswitchd.running(dir); !ok {
		if err := vswitchd.start(ctx, dir); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func createDB(ctx context.Context, dir string) error {
	db := filepath.Join(dir, "conf.db")
	if _, err := os.Stat(db); err == nil {
		return nil
	}
	tool, err := lookBinary("ovsdb-tool")
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, tool, "create", db, SchemaPath).CombinedOutput(); err != nil {
		return fmt.Errorf("create %s: %w: %s", db, err, bytes.TrimSpace(out))
	}
	return nil
}

// initDB does what `ovs-vsctl --no-wait init` does: insert the
// Open_vSwitch root row unless there is one.
func initDB(ctx context.Context, socket string) error {
	c, err := ovsdb.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Transact(ctx, ovsdb.VSwitchDB,
		// Fails with "timed out" at once if the table is not empty.
		ovsdb.Wait("Open_vSwitch", nil, nil, "==", nil, 0),
		ovsdb.Insert("Open_vSwitch", nil, ""))
	var e *ovsdb.Error
	if errors.As(err, &e) && e.OpName == "wait" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("initialize database: %w", err)
	}
	return nil
}

// Stop ends the ovs-vswitchd and ovsdb-server processes running in the
// daemon's directory, whether started or adopted; the database file stays.
// For an external instance it does nothing.
func (d *Daemon) Stop(ctx context.Context) error {
	if d.dir == "" {
		return nil
	}
	// vswitchd first, so it does not see its database vanish.
	return errors.Join(vswitchd.stop(ctx, d.dir), dbServer.stop(ctx, d.dir))
}

// Find returns the instance at ovsdbFlag (an ovsdb.Dial address, e.g. the
// system's "unix:/var/run/openvswitch/db.sock") if it answers, and
// otherwise starts or adopts our own in dir.
func Find(ctx context.Context, ovsdbFlag, dir string) (*Daemon, error) {
	if ovsdbFlag != "" {
		err := probe(ctx, ovsdbFlag)
		if err == nil {
			return external(ovsdbFlag), nil
		}
		if errInst := Installed(); errInst != nil {
			return nil, fmt.Errorf("find open vswitch: %s does not answer (%w) and %w", ovsdbFlag, err, errInst)
		}
	}
	return Start(ctx, dir)
}

func probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := ovsdb.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Echo(ctx)
}

// external describes an instance we did not start. Its management sockets
// are next to a unix database socket, else in the default run directory.
func external(addr string) *Daemon {
	runDir := "/var/run/openvswitch"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		runDir = filepath.Dir(path)
	}
	return &Daemon{dbSocket: addr, runDir: runDir}
}

// HasKernelModule reports whether the openvswitch kernel datapath is loaded
// or loadable, i.e. whether bridges can use datapath_type "system" rather
// than the slower userspace "netdev".
func HasKernelModule() bool {
	if _, err := os.Stat("/sys/module/openvswitch"); err == nil {
		return true
	}
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return false
	}
	modDir := filepath.Join("/lib/modules", strings.TrimSpace(string(release)))
	for _, index := range []string{"modules.dep", "modules.builtin"} {
		b, err := os.ReadFile(filepath.Join(modDir, index))
		if err == nil && bytes.Contains(b, []byte("/openvswitch.ko")) {
			return true
		}
	}
	return false
}
