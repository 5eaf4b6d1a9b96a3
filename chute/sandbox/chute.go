package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	// ErrNotRunning: the chute has exited.
	ErrNotRunning = errors.New("chute not running")
	// ErrNoShim: no shim answers for the state directory and it holds no
	// exit status either; there is nothing to adopt.
	ErrNoShim = errors.New("no shim for chute")
)

const errNotRunningMsg = "not running"

// The shim's protocol: one JSON request per line, one JSON response line
// each. A wait blocks until the chute exits and ends the connection.
const (
	opState  = "state"
	opSignal = "signal"
	opWait   = "wait"
	opCheck  = "check" // run the health command once (see door.go)
)

type request struct {
	Op     string `json:"op"`
	Signal int    `json:"signal,omitempty"`
}

type response struct {
	Pid       int          `json:"pid,omitempty"`
	StartedAt time.Time    `json:"started_at,omitzero"`
	Running   bool         `json:"running"`
	Exit      *ExitStatus  `json:"exit,omitempty"`
	Check     *CheckResult `json:"check,omitempty"`
	Error     string       `json:"error,omitempty"`
}

// Chute is a handle on a chute run by its shim. Any number of handles, in
// any number of daemons over time, may exist for one chute.
type Chute struct {
	stateDir  string
	pid       int
	startedAt time.Time

	watchOnce sync.Once
	exited    chan struct{}
	status    ExitStatus
	waitErr   error
}

func newChute(stateDir string, pid int, startedAt time.Time) *Chute {
	return &Chute{stateDir: stateDir, pid: pid, startedAt: startedAt, exited: make(chan struct{})}
}

// Start starts a chute under a new shim and returns once the chute's
// command has been exec'ed, or with the reason it could not be. The shim,
// and so the chute, outlive ctx and the calling process; ctx only bounds
// the start. A failed start leaves the shim's own log, shim.log, in the
// state directory for diagnosis; Cleanup removes it.
//
// Start execs a fresh shim each time; a Launcher starts chutes the same
// way from a shim it booted beforehand.
func Start(ctx context.Context, s Spec) (*Chute, error) {
	s, err := prepare(s)
	if err == nil {
		var c *Chute
		if c, err = startCold(ctx, s); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("start chute %q: %w", s.Name, err)
}

// prepare validates s and lays out its state directory for a shim: no
// live shim there, no state left from a previous run, the spec written.
func prepare(s Spec) (Spec, error) {
	s, err := s.withDefaults()
	if err != nil {
		return s, err
	}
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return s, err
	}
	if shimAlive(s.StateDir) {
		return s, errors.New("a shim is already running in " + s.StateDir)
	}
	if err := removeState(s.StateDir); err != nil {
		return s, err
	}
	if n := len(filepath.Join(s.StateDir, sockFile)); n >= len(syscall.RawSockaddrUnix{}.Path) {
		return s, fmt.Errorf("state dir path too long for a unix socket (%d bytes)", n)
	}
	data, err := json.Marshal(s)
	if err != nil {
		return s, err
	}
	return s, writeFileAtomic(filepath.Join(s.StateDir, specFile), data)
}

// startCold execs a new shim for the prepared spec s.
func startCold(ctx context.Context, s Spec) (*Chute, error) {
	shimLog, err := os.OpenFile(filepath.Join(s.StateDir, shimLogFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer shimLog.Close()
	cmd, reportR, err := execRole(s.Executable, []string{ShimCommand, s.StateDir}, shimLog)
	if err != nil {
		return nil, fmt.Errorf("start shim: %w", err)
	}
	defer reportR.Close()
	return awaitReport(ctx, json.NewDecoder(reportR), func() { cmd.Process.Kill() }, s.StateDir)
}

// execRole execs exe in a role (a shim or a monitor) with args, its output
// to out, and returns it with the read end of its report channel (its fd
// 3). The role runs in its own session: no signal for the daemon's process
// group or terminal reaches it, and no parent-death signal is set. It is
// reaped whenever it ends; if this process dies first, init does.
func execRole(exe string, args []string, out *os.File) (*exec.Cmd, *os.File, error) {
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        append([]string{exe}, args...),
		Env:         []string{},
		Stdout:      out,
		Stderr:      out,
		ExtraFiles:  []*os.File{reportW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		reportR.Close()
		return nil, nil, err
	}
	go reap(cmd)
	return cmd, reportR, nil
}

// awaitReport reads the shim's report from dec: the chute's command was
// exec'ed, or why not. If ctx ends first, it aborts the start: a shim it
// kills kills the half-started chute by its parent-death signal, a
// monitor it hangs up on kills the chute it starts; and a chute whose
// report came all the same is killed through its socket.
func awaitReport(ctx context.Context, dec *json.Decoder, abort func(), stateDir string) (*Chute, error) {
	type result struct {
		rep shimReport
		err error
	}
	got := make(chan result, 1)
	go func() {
		var rep shimReport
		err := dec.Decode(&rep)
		got <- result{rep, err}
	}()
	var res result
	select {
	case res = <-got:
	case <-ctx.Done():
		abort()
		if res = <-got; res.err == nil && res.rep.Error == "" {
			kill, cancel := context.WithTimeout(context.Background(), abortKillTimeout)
			defer cancel()
			call(kill, stateDir, request{Op: opSignal, Signal: int(syscall.SIGKILL)})
		}
		return nil, ctx.Err()
	}
	if res.err != nil {
		return nil, fmt.Errorf("shim failed: %w%s", res.err, shimLogTail(stateDir))
	}
	if res.rep.Error != "" {
		return nil, errors.New(res.rep.Error)
	}
	return newChute(stateDir, res.rep.Pid, res.rep.StartedAt), nil
}

// abortKillTimeout bounds the kill of a chute whose start was given up.
const abortKillTimeout = 5 * time.Second

// shimLogTail quotes the end of shim.log for an error message.
func shimLogTail(stateDir string) string {
	data, err := os.ReadFile(filepath.Join(stateDir, shimLogFile))
	if err != nil || len(data) == 0 {
		return ""
	}
	if len(data) > 1024 {
		data = data[len(data)-1024:]
	}
	return fmt.Sprintf(" (shim log: %q)", data)
}

// Attach re-adopts the chute whose state is in stateDir. If it exited
// while nobody was attached, Attach returns a Chute whose Wait reports the
// recorded exit status, together with an error wrapping ErrNotRunning. With
// neither a shim nor an exit status, the error wraps ErrNoShim.
func Attach(ctx context.Context, stateDir string) (*Chute, error) {
	resp, err := call(ctx, stateDir, request{Op: opState})
	if err == nil {
		c := newChute(stateDir, resp.Pid, resp.StartedAt)
		if !resp.Running && resp.Exit != nil {
			c.finish(*resp.Exit, nil)
			return c, fmt.Errorf("attach %s: %w", stateDir, ErrNotRunning)
		}
		return c, nil
	}
	if rec, rerr := readExit(stateDir); rerr == nil {
		c := newChute(stateDir, rec.Pid, rec.StartedAt)
		c.finish(rec.Exit, nil)
		return c, fmt.Errorf("attach %s: %w", stateDir, ErrNotRunning)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("attach %s: %w (%v)", stateDir, ErrNoShim, err)
}

// Cleanup removes the state of a chute that is gone. It refuses while a
// shim still serves the directory.
func Cleanup(stateDir string) error {
	if shimAlive(stateDir) {
		return fmt.Errorf("clean up %s: shim still running", stateDir)
	}
	if err := removeState(stateDir); err != nil {
		return fmt.Errorf("clean up %s: %w", stateDir, err)
	}
	if err := os.Remove(filepath.Join(stateDir, sysfsStaging)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clean up %s: %w", stateDir, err)
	}
	if err := os.Remove(stateDir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("clean up %s: %w", stateDir, err)
	}
	return nil
}

// removeState removes what a run left in stateDir. The empty directory a
// start mounts its staging sysfs on stays for the next run: made and
// removed at each start it would cost two inodes' churn on the disk.
func removeState(stateDir string) error {
	for _, name := range []string{specFile, pidFile, sockFile, exitFile, shimLogFile} {
		if err := os.Remove(filepath.Join(stateDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func shimAlive(stateDir string) bool {
	conn, err := net.DialTimeout("unix", filepath.Join(stateDir, sockFile), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func readExit(stateDir string) (exitRecord, error) {
	var rec exitRecord
	data, err := os.ReadFile(filepath.Join(stateDir, exitFile))
	if err != nil {
		return rec, err
	}
	return rec, json.Unmarshal(data, &rec)
}

// call sends one request to the shim and returns its response. The
// connection is dropped when ctx ends, which also ends a wait.
func call(ctx context.Context, stateDir string, req request) (response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(stateDir, sockFile))
	if err != nil {
		return response{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return response{}, orCtx(ctx, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return response{}, orCtx(ctx, err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return response{}, err
	}
	if resp.Error == errNotRunningMsg {
		return resp, ErrNotRunning
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

func orCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Pid is the host pid of the chute's pid 1.
func (c *Chute) Pid() int { return c.pid }

// StartedAt is when the chute's command was exec'ed.
func (c *Chute) StartedAt() time.Time { return c.startedAt }

// Signal sends sig to the chute's pid 1. Through the shim, which is its
// parent, so the pid cannot have been recycled. Pid 1 of a pid namespace
// only receives signals it has a handler for, except SIGKILL.
func (c *Chute) Signal(sig syscall.Signal) error {
	select {
	case <-c.exited:
		return fmt.Errorf("signal chute: %w", ErrNotRunning)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := call(ctx, c.stateDir, request{Op: opSignal, Signal: int(sig)}); err != nil {
		// The shim of a chute that just exited is gone without a word.
		if _, rerr := readExit(c.stateDir); rerr == nil {
			err = ErrNotRunning
		}
		return fmt.Errorf("signal chute: %w", err)
	}
	return nil
}

// Exited is closed once the chute has exited (or its shim has vanished);
// Wait then returns at once.
func (c *Chute) Exited() <-chan struct{} {
	c.watchOnce.Do(func() { go c.watch() })
	return c.exited
}

// Wait waits for the chute to exit and returns how it ended.
func (c *Chute) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-c.Exited():
		return c.status, c.waitErr
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// Stop sends SIGTERM, and SIGKILL if the chute is still running after
// grace: a pid 1 without a SIGTERM handler ignores SIGTERM, and killing
// pid 1 kills every process of the chute.
func (c *Chute) Stop(ctx context.Context, grace time.Duration) (ExitStatus, error) {
	// The kernel drops signals that a namespace's init does not catch, so
	// a pid 1 without a SIGTERM handler would only sit out the grace period
	// before the SIGKILL that ends it as SIGTERM's default action would.
	if !catches(c.pid, syscall.SIGTERM) {
		grace = 0
	}
	if err := c.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, ErrNotRunning) {
		return ExitStatus{}, fmt.Errorf("stop chute: %w", err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-c.Exited():
		return c.status, c.waitErr
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	case <-timer.C:
	}
	if err := c.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
		return ExitStatus{}, fmt.Errorf("stop chute: %w", err)
	}
	return c.Wait(ctx)
}

func (c *Chute) finish(st ExitStatus, err error) {
	c.status, c.waitErr = st, err
	c.watchOnce.Do(func() {})
	close(c.exited)
}

// watch waits for the exit through the shim. A shim that goes away
// without answering may still have recorded the exit just before.
func (c *Chute) watch() {
	resp, err := call(context.Background(), c.stateDir, request{Op: opWait})
	if err == nil && resp.Exit != nil {
		c.finish(*resp.Exit, nil)
		return
	}
	if rec, rerr := readExit(c.stateDir); rerr == nil {
		c.finish(rec.Exit, nil)
		return
	}
	if err == nil {
		err = errors.New("shim answered wait without an exit status")
	}
	c.finish(ExitStatus{}, fmt.Errorf("wait for chute: %w: %v", ErrNoShim, err))
}

// catches reports whether process pid has a handler for sig (SigCgt in its
// status). When that cannot be read, it answers true: the caller then waits
// the grace period as for any process.
func catches(pid int, sig syscall.Signal) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		if hex, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err != nil || mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return true
}
