package sandbox

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/chute/sandbox/pid1"
)

// A chute with a health command has a door: a process inside the chute,
// started by its init, that runs the command on the shim's request with
// the chute's own confinement (see package pid1). Init finds the binary
// and the door's socket at these descriptors, after pid1.PlanFD and
// pid1.StatusFD.
const (
	doorExeFD  = 5
	doorSockFD = 6
)

// doorGrace is how long past the health timeout the shim waits for the
// door's report: the door kills the command at the timeout, then reaps it
// and reports.
const doorGrace = 2 * time.Second

// errNoHealthMsg is the shim's answer to a check of a chute without a
// health command.
const errNoHealthMsg = "no health command"

// ErrNoHealthCheck: the chute was started without a health command.
var ErrNoHealthCheck = errors.New("chute has no health command")

// HealthCheck is a command run in the chute on request (Chute.Check),
// with the Env, Cwd, ids, namespaces, cgroup, limits, capabilities and
// seccomp filter of the chute's command.
type HealthCheck struct {
	Args    []string
	Timeout time.Duration // after which the command is killed and fails
}

// CheckResult is how one run of the health command went.
type CheckResult struct {
	Code      int    `json:"code"`             // exit code, or 128 plus the signal that killed it
	Signal    string `json:"signal,omitempty"` // that signal's name
	TimedOut  bool   `json:"timed_out,omitempty"`
	Error     string `json:"error,omitempty"`  // why the command could not be run
	Output    string `json:"output,omitempty"` // the first bytes of its stdout and stderr
	Truncated bool   `json:"truncated,omitempty"`
}

// CheckOutputMax is how much of a health command's output a CheckResult
// keeps; the rest is discarded inside the chute.
const CheckOutputMax = pid1.CheckOutputMax

// Err is nil for a passed check, else why it failed, quoting the start of
// the command's output.
func (r CheckResult) Err() error {
	var why string
	switch {
	case r.Error != "":
		return errors.New(r.Error)
	case r.TimedOut:
		why = "timed out"
	case r.Signal != "":
		why = "killed by signal: " + r.Signal
	case r.Code != 0:
		why = fmt.Sprintf("exit code %d", r.Code)
	default:
		return nil
	}
	if r.Output != "" {
		why += fmt.Sprintf(": %.200q", r.Output)
	}
	return errors.New(why)
}

// Check runs the chute's health command once, in the chute, and returns
// how it went. The shim bounds it by the command's timeout; ctx may end
// the wait sooner. An error means the check could not be made, which
// callers count as failed: ErrNoHealthCheck, ErrNotRunning, or a door the
// chute killed or broke.
func (c *Chute) Check(ctx context.Context) (CheckResult, error) {
	resp, err := call(ctx, c.stateDir, request{Op: opCheck})
	switch {
	case err != nil && resp.Error == errNoHealthMsg:
		return CheckResult{}, ErrNoHealthCheck
	case err != nil:
		return CheckResult{}, fmt.Errorf("health check: %w", err)
	case resp.Check == nil:
		return CheckResult{}, errors.New("health check: shim sent no result")
	}
	return *resp.Check, nil
}

// door is the shim's end of a chute's door.
type door struct {
	conn    *net.UnixConn
	timeout time.Duration

	mu  sync.Mutex // one check at a time
	seq uint64
	buf []byte
}

// openDoor makes the socket to the door of the chute s and queues the
// door's configuration on it. It returns the shim's end, and the files
// init gets at doorExeFD and doorSockFD.
func openDoor(s Spec) (*door, []*os.File, error) {
	paths, search := execPaths(s.Health.Args[0], s.Env)
	cfg := pid1.DoorConfig{Timeout: s.Health.Timeout, Search: search, Paths: paths,
		Argv: s.Health.Args, Env: s.Env, Dir: s.Cwd}
	msg := cfg.Encode()
	if len(msg) > pid1.DoorConfigMax {
		return nil, nil, fmt.Errorf("health command and environment take %d bytes, more than %d", len(msg), pid1.DoorConfigMax)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("health door: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "door"), os.NewFile(uintptr(fds[1]), "door")
	defer ours.Close()
	fc, err := net.FileConn(ours)
	if err != nil {
		theirs.Close()
		return nil, nil, fmt.Errorf("health door: %w", err)
	}
	d := &door{conn: fc.(*net.UnixConn), timeout: s.Health.Timeout, buf: make([]byte, pid1.CheckReportMax+1)}
	// The door reads this first, before the chute's command even runs.
	if _, err := d.conn.Write(msg); err != nil {
		d.conn.Close()
		theirs.Close()
		return nil, nil, fmt.Errorf("health door: send configuration: %w", err)
	}
	// The binary this shim runs, for init to exec the door from inside
	// the chute's root.
	exe, err := os.Open("/proc/self/exe")
	if err == nil {
		if err = checkStatic(exe, s.Executable); err != nil {
			exe.Close()
		}
	}
	if err != nil {
		d.conn.Close()
		theirs.Close()
		return nil, nil, fmt.Errorf("health door: %w", err)
	}
	return d, []*os.File{exe, theirs}, nil
}

// ErrNotStatic: the binary is dynamically linked, and so cannot run the
// door of a chute with a health command.
var ErrNotStatic = errors.New("a chute's health command needs a statically linked binary (build with CGO_ENABLED=0)")

// CheckExecutable tells whether the binary at path can serve chutes with
// a health command: the door is exec'ed inside the chute's root, where
// the host's dynamic loader is not, so the binary must be static, as
// `make build` makes it. The error wraps ErrNotStatic when it is not.
func CheckExecutable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return checkStatic(f, path)
}

// checkStatic is CheckExecutable for the binary open at f, named name.
func checkStatic(f *os.File, name string) error {
	bin, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s is not", ErrNotStatic, name)
		}
	}
	return nil
}

// check asks the door for one run of the health command. The door is the
// chute's: its report is read within the timeout and bounded in size,
// descriptors sent along are dropped, and reports to earlier checks that
// timed out are skipped.
func (d *door) check() (CheckResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	d.conn.SetDeadline(time.Now().Add(d.timeout + doorGrace))
	if _, err := d.conn.Write(pid1.CheckRequest(d.seq)); err != nil {
		return CheckResult{}, doorErr(err, d.timeout)
	}
	for {
		n, _, flags, _, err := d.conn.ReadMsgUnix(d.buf, nil)
		if err != nil {
			return CheckResult{}, doorErr(err, d.timeout)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return CheckResult{}, errors.New("health door sent an oversized report")
		}
		rep, err := pid1.DecodeCheckReport(d.buf[:n])
		if err != nil {
			return CheckResult{}, fmt.Errorf("health door: %w", err)
		}
		if rep.Seq == d.seq {
			return resultOf(rep), nil
		}
	}
}

func doorErr(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("health door did not report within %s", timeout+doorGrace)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return errors.New("health door gone")
	}
	return fmt.Errorf("health door: %w", err)
}

func resultOf(rep pid1.CheckReport) CheckResult {
	r := CheckResult{Code: rep.Code, TimedOut: rep.TimedOut, Error: rep.Err, Output: rep.Output, Truncated: rep.Truncated}
	if !rep.Exited && rep.Err == "" {
		sig := syscall.Signal(rep.Signal)
		r.Code, r.Signal = 128+rep.Signal, sig.String()
	}
	return r
}

// check answers a check request for the shim's chute.
func (sh *shim) check() response {
	switch {
	case sh.door == nil:
		return response{Error: errNoHealthMsg}
	case sh.exited():
		return response{Error: errNotRunningMsg}
	}
	res, err := sh.door.check()
	if err != nil {
		return response{Error: err.Error()}
	}
	return response{Check: &res}
}
