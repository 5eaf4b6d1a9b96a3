package sandbox

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/cgroup"
	"paradrop/chute/sandbox/pid1"
)

// Files in a chute's state directory.
const (
	specFile    = "spec.json"
	pidFile     = "shim.pid"
	sockFile    = "shim.sock"
	exitFile    = "exit.json"
	shimLogFile = "shim.log"
)

// shimReportFD is where the shim tells Start whether the chute's command
// was exec'ed: one shimReport, then the pipe closes.
const shimReportFD = 3

type shimReport struct {
	Pid       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Error     string    `json:"error,omitempty"`
}

// logDrainTimeout bounds how long the shim waits, after the chute's pid 1
// is gone, for the rest of its output; the kernel kills the whole pid
// namespace, so the pipes normally close at once.
const logDrainTimeout = 5 * time.Second

// A shim's start leaves its heap under the runtime's first heap goal of
// 4 MiB, with no collection run yet; a collection's own structures would
// cost about 0.5 MiB, more than it would free. What comes later is the
// garbage of requests (the connection, its buffers, JSON): a health check
// every few seconds piled it up to that goal, a thousand requests taking
// a shim from 2.2 to 7 MiB of private memory. Once shimGarbage bytes were
// allocated after the start, the shim collects with GOGC shimGCPercent,
// a goal near its live heap: 4.5 MiB after three thousand requests. (The
// rest is the runtime's: the collector's structures, idle heap pages.)
const (
	shimGarbage   = 1 << 20
	shimGCPercent = 10
)

// collectOnceAsked lowers the shim's heap goal once requests have
// allocated shimGarbage bytes since the chute's start. Called by serve,
// which is alone to touch lowGC.
func (sh *shim) collectOnceAsked() {
	if !sh.lowGC && heapAllocs()-sh.allocsAtStart >= shimGarbage {
		debug.SetGCPercent(shimGCPercent)
		sh.lowGC = true
	}
}

// heapAllocs returns the bytes allocated on the heap since the process
// started.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// testHook, set by the package's tests only, sees the events of each
// chute's shim ("started", "request OP"): a test makes one panic there.
var testHook func(chute, event string)

// handlerGrace is how long an exiting shim lets its clients read the exit
// status it just sent them.
const handlerGrace = 2 * time.Second

type shim struct {
	dir string
	// errlog is the chute's shim.log: where the shim says what went wrong.
	errlog io.Writer
	spec   Spec
	ln     net.Listener
	log    *rotatingLog
	logs   sync.WaitGroup
	// logBudget bounds the CPU time spent copying the chute's output.
	logBudget *logBudget

	cmd       *exec.Cmd
	startedAt time.Time
	// takeWarm, in a monitor, hands the chute a warm init if one is
	// ready for it; warm is the one it got (see warmInit).
	takeWarm func(Spec) *warmInit
	warm     *warmInit
	// givenUp says that whoever asked for the start is gone (see
	// giveUp); cmdMu guards it and the setting of cmd, which giveUp
	// kills.
	cmdMu   sync.Mutex
	givenUp bool
	door    *door // nil without a health command

	done     chan struct{} // closed once status is saved and the socket is gone
	status   ExitStatus
	handlers sync.WaitGroup
	// allocsAtStart is heapAllocs when the chute was started; lowGC,
	// whether the shim has since switched to shimGCPercent.
	allocsAtStart uint64
	lowGC         bool
}

// ShimMain is the shim role, run as `<binary> __shim STATEDIR` by Start.
// It returns the process's exit code once the chute has exited.
func ShimMain(args []string) int {
	report := processSetup()
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: %s STATEDIR\n", ShimCommand)
		return 2
	}
	sh := newShim(args[0], os.Stderr)
	if err := sh.start(); err != nil {
		sh.abandon()
		json.NewEncoder(report).Encode(shimReport{Error: err.Error()})
		return 1
	}
	json.NewEncoder(report).Encode(shimReport{Pid: sh.cmd.Process.Pid, StartedAt: sh.startedAt})
	report.Close()
	go sh.serve()
	<-sh.done
	waitTimeout(&sh.handlers, handlerGrace)
	return 0
}

// processSetup makes the steps a shim or a monitor takes once for the
// whole process, and returns its report channel. Supplementary groups
// would follow a chute into its user namespace, where they cannot be
// dropped any more; syscall.Setgroups drops them on every thread.
func processSetup() *os.File {
	unix.CloseOnExec(shimReportFD)
	closeInheritedOnExec()
	// It outlives terminals and daemons; only an explicit signal ends it.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Fprintf(os.Stderr, "shim: drop supplementary groups: %v\n", err)
		os.Exit(1)
	}
	return os.NewFile(shimReportFD, "report")
}

func newShim(dir string, errlog io.Writer) *shim {
	return &shim{dir: dir, errlog: errlog, done: make(chan struct{})}
}

// closeInheritedOnExec keeps the descriptors the shim inherited beyond
// its report channel (from whatever started the daemon) from reaching the
// chute, its init and its door, which get only what the shim gives them.
func closeInheritedOnExec() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Fprintf(os.Stderr, "shim: %v\n", err)
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > shimReportFD {
			unix.CloseOnExec(fd)
		}
	}
}

func (sh *shim) start() error {
	data, err := os.ReadFile(filepath.Join(sh.dir, specFile))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &sh.spec); err != nil {
		return fmt.Errorf("read %s: %w", specFile, err)
	}
	if err := writeFileAtomic(filepath.Join(sh.dir, pidFile), fmt.Appendf(nil, "%d\n", os.Getpid())); err != nil {
		return err
	}
	sock := filepath.Join(sh.dir, sockFile)
	os.Remove(sock)
	if sh.ln, err = net.Listen("unix", sock); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if sh.log, err = openRotatingLog(sh.spec.LogDir, sh.spec.LogMaxBytes, sh.spec.LogFiles); err != nil {
		return fmt.Errorf("open chute log: %w", err)
	}
	sh.log.errlog = sh.errlog
	sh.allocsAtStart = heapAllocs()
	started := make(chan error, 1)
	if w := sh.warmInit(); w != nil {
		// Run on the thread that cloned it.
		w.jobs <- warmJob{sh, started}
	} else {
		go sh.run(started)
	}
	return <-started
}

func (sh *shim) warmInit() *warmInit {
	if sh.takeWarm == nil {
		return nil
	}
	return sh.takeWarm(sh.spec)
}

// run starts the chute, reports the outcome on started and, on success,
// reaps it and records its exit status.
func (sh *shim) run(started chan<- error) {
	// The chute's parent-death signal fires when the thread that cloned it
	// exits, and that thread enters the chute's network and a mount
	// namespace of its own: it stays locked to this goroutine, which lives
	// as long as the chute, and ends with it.
	runtime.LockOSThread()
	reported := false
	// A panic here ends this chute alone (a monitor serves others): it is
	// killed and its end recorded as if it had been.
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		sh.logPanic("chute", r)
		if sh.cmd != nil && sh.cmd.Process != nil {
			sh.cmd.Process.Kill()
			if sh.cmd.ProcessState == nil {
				sh.cmd.Wait()
			}
		}
		if !reported {
			started <- fmt.Errorf("shim panicked: %v", r)
			return
		}
		sh.logBudget.lift()
		sh.finish(ExitStatus{Code: 128 + int(syscall.SIGKILL), Signal: syscall.SIGKILL.String(), At: time.Now()})
	}()
	leave, err := sh.spawn()
	if err != nil {
		if sh.cmd != nil && sh.cmd.Process != nil {
			sh.cmd.Process.Kill()
			sh.cmd.Wait()
		}
		reported = true
		started <- err
		return
	}
	reported = true
	started <- nil
	// Init has its copy of the mounts: this thread, which lives as long
	// as the chute, is not to keep its own. Left after the report, as
	// dropping the copy waits out an RCU grace period the start need not.
	if err := leave(); err != nil {
		fmt.Fprintf(sh.errlog, "shim: %v\n", err)
	}
	if testHook != nil {
		testHook(sh.spec.Name, "started")
	}
	sh.cmd.Wait()
	// What is left in the pipes is bounded: copy it at once.
	sh.logBudget.lift()
	drained := make(chan struct{})
	go func() { sh.logs.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(logDrainTimeout):
		fmt.Fprintln(sh.errlog, "shim: chute output still open after its pid 1 exited")
	}
	sh.finish(exitStatusOf(sh.cmd.ProcessState))
}

// finish records the chute's end, once.
func (sh *shim) finish(st ExitStatus) {
	if sh.exited() {
		return
	}
	sh.status = st
	if err := sh.saveExit(); err != nil {
		fmt.Fprintf(sh.errlog, "shim: %v\n", err)
	}
	// Gone before anyone hears of the exit: a daemon that stops the chute
	// and at once cleans up or restarts it must not find this shim.
	sh.abandon()
	close(sh.done)
}

// abandon closes what the shim holds for its chute (in a monitor, which
// outlives the chute, nothing else would) and removes what says it is
// alive: before a failed start is reported, so that nobody finds a socket
// that never answers.
func (sh *shim) abandon() {
	if sh.ln != nil {
		sh.ln.Close()
	}
	if sh.log != nil {
		sh.log.Close()
	}
	if sh.door != nil {
		sh.door.conn.Close()
	}
	// exit.json stays.
	os.Remove(filepath.Join(sh.dir, sockFile))
	os.Remove(filepath.Join(sh.dir, pidFile))
}

// logPanic writes a recovered panic to shim.log.
func (sh *shim) logPanic(where string, r any) {
	fmt.Fprintf(sh.errlog, "shim: panic in %s (recovered): %v\n%s", where, r, debug.Stack())
}

// spawn creates the chute's init in its namespaces and cgroup, then hands
// it the spec and waits until it has exec'ed the chute's command. Once it
// succeeded, the calling thread is still in the mount namespace it built
// the chute's mounts in: leave takes it back.
func (sh *shim) spawn() (leave func() error, err error) {
	s := sh.spec
	if sh.warm != nil {
		// A warm init has a network namespace of its own, see warmInit.
		s.ownNet = true
	}
	// The output pipes' read ends belong to the log copiers, which finish
	// at EOF: once the chute is gone, or at once if it never starts.
	var outW [2]*os.File
	sh.logBudget = newLogBudget(cgroupCPULimit(s.CgroupPath))
	for i, stream := range []string{"stdout", "stderr"} {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		defer w.Close()
		outW[i] = w
		sh.logs.Add(1)
		go func() {
			defer sh.logs.Done()
			defer r.Close()
			defer func() {
				if p := recover(); p != nil {
					sh.logPanic(stream+" copier", p)
				}
			}()
			copyLines(sh.log, stream, r, sh.logBudget)
		}()
	}
	if err := checkMountpoints(s); err != nil {
		return nil, err
	}
	leaveNS, err := enterChuteNamespaces(s)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			leaveNS()
		}
	}()
	trees, err := openHostTrees(s)
	if err != nil {
		return nil, err
	}
	defer trees.Close()
	var doorFiles []*os.File
	if s.Health != nil {
		if sh.door, doorFiles, err = openDoor(s); err != nil {
			return nil, err
		}
		for _, f := range doorFiles {
			defer f.Close()
		}
	}
	planR, planW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer planR.Close()
	defer planW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusR.Close()
	defer statusW.Close()
	// pid1.PlanFD, pid1.StatusFD, then doorExeFD and doorSockFD if there is a door
	extra, fds := trees.pass(append([]*os.File{planR, statusW}, doorFiles...))
	plan, err := initPlan(s, fds)
	if err != nil {
		return nil, err
	}

	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		// A chute whose shim is gone could be neither stopped nor reaped.
		Pdeathsig: syscall.SIGKILL,
	}
	if s.UserNS {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(s.HostUID), Size: idRange}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(s.HostGID), Size: idRange}}
		attr.GidMappingsEnableSetgroups = false
		// The shim's uid 0 is not mapped in there: become the namespace's
		// root, or init would run as the overflow uid, without capabilities.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	if s.ownNetNS() {
		// Made with the user namespace, so owned by it.
		attr.Cloneflags |= syscall.CLONE_NEWNET
	}
	var g *cgroup.Group
	if s.CgroupPath != "" {
		if g, err = cgroup.Load(s.CgroupPath); err != nil {
			return nil, err
		}
	}
	// Opened here, not by Start: on cgroup v1 this thread starts init from
	// inside the chute's devices cgroup.
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	if sh.warm != nil {
		if err := sh.warm.assign(s, append([]*os.File{outW[0], outW[1]}, extra...), g); err != nil {
			// Nothing of the chute's ran in it: clone one as if there
			// had been none.
			fmt.Fprintf(sh.errlog, "shim: %v; cloning an init\n", err)
			sh.warm.discard()
			sh.warm = nil
		} else if err := sh.setCmd(sh.warm.cmd); err != nil {
			return nil, err
		}
	}
	// The child is an exec of /proc/self/exe, the very binary this shim
	// runs: no path lookup that the chute's host uid might not be allowed
	// to make, and no surprise if the binary was replaced on disk.
	if sh.warm == nil {
		cmd := &exec.Cmd{
			Path:        "/proc/self/exe",
			Args:        []string{s.Executable, pid1.Command},
			Env:         []string{},
			Stdin:       null,
			Stdout:      outW[0],
			Stderr:      outW[1],
			ExtraFiles:  extra,
			SysProcAttr: attr,
		}
		if err := startInCgroup(cmd, g); err != nil {
			sh.setCmd(cmd)
			return nil, err
		}
		if err := sh.setCmd(cmd); err != nil {
			return nil, err
		}
	}
	// Only the chute may hold the write ends, or EOF would never come.
	outW[0].Close()
	outW[1].Close()
	statusW.Close()
	pid := sh.cmd.Process.Pid
	if testHook != nil {
		testHook(s.Name, "init "+strconv.Itoa(pid))
	}
	if err := setChuteOOMScore(pid); err != nil {
		return nil, err
	}

	if s.ownNetNS() {
		if err := adoptNetwork(s, pid, sh.warm != nil); err != nil {
			return nil, err
		}
	}
	if _, err := planW.Write(plan.Bytes()); err != nil {
		return nil, fmt.Errorf("send plan to init: %w", err)
	}
	planW.Close()
	// EOF without a message means the exec closed the pipe. (An init that
	// crashed without a word also looks so; its exit status and the
	// traceback in the chute's log then tell.)
	msg, err := io.ReadAll(statusR)
	if err != nil {
		return nil, fmt.Errorf("read init status: %w", err)
	}
	if len(msg) > 0 {
		return nil, errors.New(string(msg))
	}
	if sh.isGivenUp() {
		return nil, errGivenUp
	}
	sh.startedAt = time.Now()
	return leaveNS, nil
}

var errGivenUp = errors.New("start given up by its caller")

// setCmd records the chute's init, started, unless the start was given
// up: then it kills it.
func (sh *shim) setCmd(cmd *exec.Cmd) error {
	sh.cmdMu.Lock()
	defer sh.cmdMu.Unlock()
	sh.cmd = cmd
	if sh.givenUp && cmd.Process != nil {
		cmd.Process.Kill()
		return errGivenUp
	}
	return nil
}

// giveUp ends a start nobody waits for any more, wherever it is: a
// start that hangs (an init that never answers, its plan blocked) would
// otherwise hold its thread, its init and its namespaces for ever. The
// init it made is killed; the start fails, and what it made is undone
// as after any failed start.
func (sh *shim) giveUp() {
	sh.cmdMu.Lock()
	defer sh.cmdMu.Unlock()
	sh.givenUp = true
	if sh.cmd != nil && sh.cmd.Process != nil {
		sh.cmd.Process.Kill()
	}
}

func (sh *shim) isGivenUp() bool {
	sh.cmdMu.Lock()
	defer sh.cmdMu.Unlock()
	return sh.givenUp
}

// startInCgroup starts cmd, from the calling thread, in g (if any). The
// process is born in g where the kernel allows (cgroup.Group.SpawnIn),
// and is otherwise added to it before it is sent its plan, so that init
// does nothing outside in either case.
//
// On v1 the calling thread is in g until cmd has started, and what acts
// on g then acts on it too. No chute can use that: none of its code runs
// in that moment (init waits for its plan, sent after; an instance
// before died with its pid namespace, and the chute manager empties g
// before a restart, in the chute's queue, which also keeps its other
// kills and freezes of g out of that moment: a kill would SIGKILL the
// shim, as g's cgroup.procs lists its pid then). The chute's limits cost
// the shim nothing: the thread counts once against pids.max (a limit of
// one is declined, see SpawnIn) and CPU throttling would only slow this
// chute's start; v1 charges anonymous memory to the group of the mm's
// owner, the shim's main thread, so only the fork's kernel memory, init's
// own, is the chute's (a whole chute run of `echo` peaks at 0.5 MiB,
// against a 4 MiB least limit). New runtime threads are made by Go's
// template thread, not this locked one, so none stays in g
// (TestCgroupPlacement).
func startInCgroup(cmd *exec.Cmd, g *cgroup.Group) error {
	if g == nil {
		return cmd.Start()
	}
	done, err := g.SpawnIn(cmd.SysProcAttr)
	if errors.Is(err, cgroup.ErrSpawnInUnsupported) {
		if err := cmd.Start(); err != nil {
			return err
		}
		return g.Add(cmd.Process.Pid)
	}
	if err != nil {
		return err
	}
	err = cmd.Start()
	// On an error, the caller kills the child and this thread ends with
	// its locked goroutine, wherever it is.
	return errors.Join(err, done())
}

func exitStatusOf(ps *os.ProcessState) ExitStatus {
	st := ExitStatus{Code: ps.ExitCode(), At: time.Now()}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		st.Code = 128 + int(ws.Signal())
		st.Signal = ws.Signal().String()
	}
	return st
}

// exitRecord is exit.json: enough for a daemon that attaches after the
// shim is gone.
type exitRecord struct {
	Pid       int        `json:"pid"`
	StartedAt time.Time  `json:"started_at"`
	Exit      ExitStatus `json:"exit"`
}

func (sh *shim) saveExit() error {
	data, err := json.Marshal(exitRecord{Pid: sh.cmd.Process.Pid, StartedAt: sh.startedAt, Exit: sh.status})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(sh.dir, exitFile), data)
}

func (sh *shim) exited() bool {
	select {
	case <-sh.done:
		return true
	default:
		return false
	}
}

func (sh *shim) state() response {
	r := response{Pid: sh.cmd.Process.Pid, StartedAt: sh.startedAt, Running: !sh.exited()}
	if !r.Running {
		st := sh.status
		r.Exit = &st
	}
	return r
}

func (sh *shim) serve() {
	for {
		conn, err := sh.ln.Accept()
		if err != nil {
			return
		}
		sh.collectOnceAsked()
		sh.handlers.Add(1)
		go func() {
			defer sh.handlers.Done()
			defer conn.Close()
			defer func() {
				if r := recover(); r != nil {
					sh.logPanic("request", r)
				}
			}()
			sh.handle(conn)
		}()
	}
}

// handle answers the requests of one connection, one JSON line each.
func (sh *shim) handle(conn net.Conn) {
	in := bufio.NewScanner(conn)
	// A request is a short line: no 4 KiB buffer of garbage per connection.
	in.Buffer(make([]byte, 0, 128), bufio.MaxScanTokenSize)
	enc := json.NewEncoder(conn)
	for in.Scan() {
		var req request
		var resp response
		err := json.Unmarshal(in.Bytes(), &req)
		if err == nil && testHook != nil {
			testHook(sh.spec.Name, "request "+req.Op)
		}
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp = sh.do(req, conn)
		}
		// A wait consumed the connection's input to notice a hang-up.
		if err := enc.Encode(resp); err != nil || req.Op == opWait {
			return
		}
	}
}

func (sh *shim) do(req request, conn net.Conn) response {
	switch req.Op {
	case opState:
		return sh.state()
	case opSignal:
		if sh.exited() {
			return response{Error: errNotRunningMsg}
		}
		// Process.Signal goes through a pidfd: it can never hit a recycled pid.
		if err := sh.cmd.Process.Signal(syscall.Signal(req.Signal)); err != nil {
			if errors.Is(err, os.ErrProcessDone) {
				return response{Error: errNotRunningMsg}
			}
			return response{Error: err.Error()}
		}
		return sh.state()
	case opWait:
		// A client that hangs up stops waiting; the read returns then.
		gone := make(chan struct{})
		go func() { io.Copy(io.Discard, conn); close(gone) }()
		select {
		case <-sh.done:
		case <-gone:
		}
		return sh.state()
	case opCheck:
		return sh.check()
	}
	return response{Error: fmt.Sprintf("unknown request %q", req.Op)}
}

// writeFileAtomic replaces path with data, so that readers see the old
// file or the new one, never a part. It does not sync: these are runtime
// files of a running chute (its spec, shim pid, exit status), which mean
// nothing after the machine restarts, and a sync cost a millisecond or
// more of every start on the gateway's flash or a VM's disk.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
