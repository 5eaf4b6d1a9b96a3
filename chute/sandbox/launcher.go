package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spareArg, in place of the state directory, makes the shim a spare.
const spareArg = "--spare"

// A spare and its launcher talk over a socketpair, the spare's
// shimReportFD: the spare sends a spareHello once booted, the launcher one
// assignment, and the spare, now the chute's shim, its shimReport.
type spareHello struct {
	Ready bool `json:"ready"`
}

type assignment struct {
	StateDir string `json:"state_dir"`
}

var (
	// errNoAssignment: the launcher let the spare go, or died.
	errNoAssignment = errors.New("no assignment")
	// errSpareUnusable: the spare never took its assignment, so it did
	// nothing in the state directory and a fresh shim can start the chute.
	errSpareUnusable = errors.New("spare shim unusable")
	errClosed        = errors.New("launcher closed")
)

// Launcher starts chutes as Start does, but under a shim it booted
// beforehand: a chute start then pays for one Go start-up of the binary
// (the chute's init) instead of two, the shim's having happened while
// nothing waited for it. It keeps such spares for its executable, one or,
// after a burst of starts, as many as the burst had under way at once
// (see spareDemand), and boots the next ones, in the background and at
// idle CPU priority, as soon as a Start is done; a spare gets the normal
// priority back when it is wanted (Start, Warm).
//
// An idle spare has no chute, state directory, cgroup or network
// namespace; it exits when its launcher closes it or its process dies.
// Once given a chute it is that chute's shim in every respect.
//
// A Start that finds no usable spare (a burst larger than the pool, a
// spare that died, or a binary replaced on disk since the spare booted)
// execs a fresh shim as Start does. So does a Start where such cold starts have lately
// been the faster: the launcher times both ways (see pathChooser). A
// Launcher is safe for concurrent use.
type Launcher struct {
	exe string

	mu      sync.Mutex
	spares  []*spare // the next Starts' shims, booting or ready, oldest first
	booting int      // spares being forked, outside the lock
	booted  *sync.Cond
	closed  bool
	paths   pathChooser
	demand  spareDemand
	trim    *time.Timer // shrinks the pool once a burst's hold is over
}

// NewLauncher returns a launcher whose shims run executable (default:
// os.Executable()), and starts booting its first spare.
func NewLauncher(executable string) *Launcher {
	l := &Launcher{exe: executable, demand: spareDemand{hold: spareHold}}
	l.booted = sync.NewCond(&l.mu)
	if l.exe == "" {
		// Without it, every Start goes cold, and says why.
		l.exe, _ = os.Executable()
	}
	go l.refill()
	return l
}

// Start starts a chute as the package-level Start does, with the same
// contract, handing it to the spare shim when there is a usable one. A
// spec naming another executable than the launcher's is started cold.
// After Close, every Start is cold.
func (l *Launcher) Start(ctx context.Context, s Spec) (*Chute, error) {
	if s.Executable == "" {
		s.Executable = l.exe
	}
	s, err := prepare(s)
	if err == nil {
		var c *Chute
		if c, err = l.start(ctx, s); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("start chute %q: %w", s.Name, err)
}

func (l *Launcher) start(ctx context.Context, s Spec) (*Chute, error) {
	if s.Executable != l.exe {
		return startCold(ctx, s)
	}
	sp, alone := l.take()
	// The next spares boot once this start is over: booting meanwhile,
	// they would compete for the CPUs with the chute's init, which is on
	// the way to the chute's command (on 2 loaded CPUs, warm starts took 10
	// to 30% longer so).
	defer func() {
		l.mu.Lock()
		l.demand.end()
		l.mu.Unlock()
		go l.refill()
	}()
	t0 := time.Now()
	if sp != nil {
		c, err := sp.serve(ctx, s.StateDir)
		if err == nil {
			l.took(true, alone, time.Since(t0))
		}
		if !errors.Is(err, errSpareUnusable) {
			return c, err
		}
		t0 = time.Now()
	}
	c, err := startCold(ctx, s)
	if err == nil {
		l.took(false, alone, time.Since(t0))
	}
	return c, err
}

// took records a start's time if no other start was under way from its
// beginning (alone) to its end.
func (l *Launcher) took(spare, alone bool, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if alone && l.demand.inFlight == 1 {
		l.paths.took(spare, d)
	}
}

// Warm waits until the spares the launcher keeps (one, or more after a
// burst) are booted and ready for the next Starts, starting those missing:
// for a caller about to start chutes that wants those starts warm too.
func (l *Launcher) Warm(ctx context.Context) error {
	l.mu.Lock()
	want := l.demand.want(time.Now())
	var err error
	// Spares a refill is forking count once they are in the pool.
	for err = l.fillLocked(want); err == nil && len(l.spares) < want; err = l.fillLocked(want) {
		l.booted.Wait()
	}
	sps := slices.Clone(l.spares)
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("warm a spare shim: %w", err)
	}
	for _, sp := range sps {
		// Wanted now: it boots at normal priority from here on.
		if err := sp.wake(); err != nil && l.keeps(sp) {
			return fmt.Errorf("warm a spare shim: %w", err)
		}
	}
	for _, sp := range sps {
		select {
		case <-sp.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		// One the pool let go meanwhile (a burst's hold ended) is no error.
		if sp.readyErr != nil && l.keeps(sp) {
			return fmt.Errorf("warm a spare shim: %w", sp.readyErr)
		}
	}
	return nil
}

// keeps reports whether sp is still one of l's idle spares.
func (l *Launcher) keeps(sp *spare) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.spares, sp)
}

// Close ends the idle spares and waits until they are gone. Shims given a
// chute are not the launcher's any more: they and their chutes live on.
func (l *Launcher) Close() {
	l.mu.Lock()
	l.closed = true
	for l.booting > 0 {
		l.booted.Wait()
	}
	sps := l.spares
	l.spares = nil
	if l.trim != nil {
		l.trim.Stop()
	}
	l.mu.Unlock()
	for _, sp := range sps {
		sp.discard()
	}
	for _, sp := range sps {
		<-sp.exited
	}
}

// take counts a Start and hands it the oldest spare, unless starts go
// cold here or there is none. Alone says no other Start was under way:
// only the time of a start that stays so judges its path (see
// pathChooser); those of a burst share the CPUs.
func (l *Launcher) take() (sp *spare, alone bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.demand.begin(time.Now())
	alone = l.demand.inFlight == 1
	if !l.paths.spareNext() || len(l.spares) == 0 {
		return nil, alone
	}
	sp = l.spares[0]
	l.spares = slices.Delete(l.spares, 0, 1)
	return sp, alone
}

// refill brings the pool to the size the latest starts want: it ends the
// spares beyond it and, if the next Start is to take a spare at all, boots
// the missing ones one by one. A spare that cannot be started is not
// retried until the next Start, which goes cold meanwhile and reports the
// reason if the binary cannot run at all.
func (l *Launcher) refill() {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		now := time.Now()
		want := l.demand.want(now)
		if len(l.spares)+l.booting >= want || !l.paths.spareNext() {
			keep := min(len(l.spares), want)
			extra := slices.Clone(l.spares[keep:])
			l.spares = l.spares[:keep]
			l.scheduleTrimLocked(now)
			l.mu.Unlock()
			for _, sp := range extra {
				sp.discard()
			}
			return
		}
		err := l.bootLocked()
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// scheduleTrimLocked has refill run again when the pool, larger than one
// spare for a burst, is to shrink back.
func (l *Launcher) scheduleTrimLocked(now time.Time) {
	d := l.demand.until(now)
	if d <= 0 {
		return
	}
	if l.trim == nil {
		l.trim = time.AfterFunc(d, l.refill)
	} else {
		l.trim.Reset(d)
	}
}

// fillLocked starts spares until the pool holds n, those being forked
// counted. Like bootLocked, it releases l.mu during each fork.
func (l *Launcher) fillLocked(n int) error {
	for len(l.spares)+l.booting < n {
		if err := l.bootLocked(); err != nil {
			return err
		}
	}
	return nil
}

// bootLocked starts a spare and adds it to the pool. The fork happens
// without the lock, which the Starts of a burst need for their own
// accounting: at idle priority on loaded CPUs it may take long.
func (l *Launcher) bootLocked() error {
	if l.closed {
		return errClosed
	}
	l.booting++
	l.mu.Unlock()
	sp, err := startSpare(l.exe)
	l.mu.Lock()
	l.booting--
	defer l.booted.Broadcast()
	if err != nil {
		return err
	}
	// Close, if it came meanwhile, waited for this one to end it.
	l.spares = append(l.spares, sp)
	return nil
}

// spare is a shim process booted without a chute.
type spare struct {
	cmd  *exec.Cmd
	exe  os.FileInfo // the binary it runs, as it was when it started
	conn net.Conn
	dec  *json.Decoder

	ready    chan struct{} // closed once the spare said it is ready, or failed to
	readyErr error
	exited   chan struct{} // closed once the process is reaped
	awake    atomic.Bool   // every thread has the normal policy (see wake)
}

func startSpare(exe string) (*spare, error) {
	st, err := os.Stat(exe)
	if err != nil {
		return nil, fmt.Errorf("start spare shim: %w", err)
	}
	// Close-on-exec from birth: were the launcher's end inherited by any
	// other child, an idle spare would not see it close when we die.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("start spare shim: socketpair: %w", err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "spare")
	defer theirs.Close()
	ours := os.NewFile(uintptr(fds[0]), "spare")
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("start spare shim: %w", err)
	}
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       []string{exe, ShimCommand, spareArg},
		Env:        []string{},
		ExtraFiles: []*os.File{theirs},
		// As a cold shim: its own session, no parent-death signal. Its
		// output goes nowhere until it has a state directory's shim.log.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := startIdle(cmd); err != nil {
		conn.Close()
		return nil, fmt.Errorf("start spare shim: %w", err)
	}
	sp := &spare{cmd: cmd, exe: st, conn: conn, dec: json.NewDecoder(conn),
		ready: make(chan struct{}), exited: make(chan struct{})}
	// Reaped whenever it ends, idle or as a chute's shim; if this process
	// dies first, init does.
	go func() { reap(cmd); close(sp.exited) }()
	go func() {
		var h spareHello
		err := sp.dec.Decode(&h)
		if err == nil && !h.Ready {
			err = errors.New("the binary does not know the spare role")
		}
		if err != nil {
			sp.readyErr = fmt.Errorf("spare shim %d did not boot: %w", cmd.Process.Pid, err)
		}
		close(sp.ready)
	}()
	return sp, nil
}

// startIdle starts cmd at the SCHED_IDLE policy, which its threads
// inherit: a spare boots on CPU time nothing else wants, not on that of
// the start that just took the previous spare and whose chute is still
// getting going. The fork happens on a thread of its own, which dies with
// its goroutine rather than go back to the scheduler at idle priority.
func startIdle(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		// Without the policy the spare merely boots at normal priority.
		unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_IDLE}, 0)
		errc <- cmd.Start()
	}()
	return <-errc
}

// wake gives every thread of the spare the normal policy back, before it
// is waited for or given a chute: threads it creates afterwards, and the
// chute it clones, inherit that policy, so one wake is enough.
func (sp *spare) wake() error {
	if sp.awake.Load() {
		return nil
	}
	pid := sp.cmd.Process.Pid
	select {
	case <-sp.exited: // reaped: its pid may be another process's now
		return fmt.Errorf("spare shim %d exited", pid)
	default:
	}
	// Threads being created meanwhile may inherit the idle policy: pass
	// again until one pass finds none.
	for range 5 {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return fmt.Errorf("spare shim %d: %w", pid, err)
		}
		idle := 0
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			attr, err := unix.SchedGetAttr(tid, 0)
			if err != nil || attr.Policy != unix.SCHED_IDLE {
				continue // gone, or already normal
			}
			idle++
			if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("spare shim %d: thread %d to normal priority: %w", pid, tid, err)
			}
		}
		if idle == 0 {
			sp.awake.Store(true)
			return nil
		}
	}
	return fmt.Errorf("spare shim %d: threads still at idle priority", pid)
}

// serve gives the spare the chute prepared in stateDir and returns as
// Start does. An error wrapping errSpareUnusable means the spare is gone
// without having touched stateDir.
func (sp *spare) serve(ctx context.Context, stateDir string) (*Chute, error) {
	defer sp.conn.Close()
	if err := sp.wake(); err != nil {
		sp.discard()
		return nil, fmt.Errorf("%w: %v", errSpareUnusable, err)
	}
	// Still booting, it is ahead of a shim exec'ed now.
	select {
	case <-sp.ready:
	case <-ctx.Done():
		sp.discard()
		return nil, ctx.Err()
	}
	if err := sp.usable(); err != nil {
		sp.discard()
		return nil, fmt.Errorf("%w: %v", errSpareUnusable, err)
	}
	if err := json.NewEncoder(sp.conn).Encode(assignment{StateDir: stateDir}); err != nil {
		sp.discard()
		return nil, fmt.Errorf("%w: %v", errSpareUnusable, err)
	}
	c, err := awaitReport(ctx, sp.dec, sp.cmd.Process, stateDir)
	// The kernel resets the connection of a peer that died with data
	// unread: the spare never read the assignment. (EOF would mean it had,
	// and failed as the chute's shim.)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil, fmt.Errorf("%w: %v", errSpareUnusable, err)
	}
	return c, err
}

func (sp *spare) usable() error {
	if sp.readyErr != nil {
		return sp.readyErr
	}
	select {
	case <-sp.exited:
		return fmt.Errorf("spare shim %d exited", sp.cmd.Process.Pid)
	default:
	}
	// A spare runs the binary it booted from: after an upgrade on disk,
	// chutes get the new one, as from a cold start.
	st, err := os.Stat(sp.cmd.Path)
	if err != nil {
		return err
	}
	if !os.SameFile(st, sp.exe) || !st.ModTime().Equal(sp.exe.ModTime()) {
		return fmt.Errorf("%s changed since spare shim %d booted", sp.cmd.Path, sp.cmd.Process.Pid)
	}
	return nil
}

// discard ends an idle spare; its reaper collects it.
func (sp *spare) discard() {
	sp.conn.Close()
	sp.cmd.Process.Kill()
}

// awaitAssignment is a spare's idle life, in the spare: it says it is
// ready, then waits for a state directory, which it returns once its own
// output goes to that directory's shim.log, as a cold shim's does.
func awaitAssignment(ch *os.File) (string, error) {
	if err := json.NewEncoder(ch).Encode(spareHello{Ready: true}); err != nil {
		return "", errNoAssignment
	}
	var a assignment
	if err := json.NewDecoder(ch).Decode(&a); err != nil {
		return "", errNoAssignment
	}
	if a.StateDir == "" {
		return "", errors.New("spare shim: assigned no state directory")
	}
	log, err := os.OpenFile(filepath.Join(a.StateDir, shimLogFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("spare shim: %w", err)
	}
	defer log.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(log.Fd()), fd, 0); err != nil {
			return "", fmt.Errorf("spare shim: redirect output to %s: %w", shimLogFile, err)
		}
	}
	return a.StateDir, nil
}
