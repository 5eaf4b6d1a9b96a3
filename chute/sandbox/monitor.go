package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// One Go process per chute cannot cost under 1 MiB of private memory (an
// empty Go program holds 0.64 MiB): a Launcher's chutes share a monitor
// instead, one process that is each chute's shim in every respect the
// chute and the daemon see. Per chute it holds what a shim did: the
// thread that cloned init (whose end kills the chute by its parent-death
// signal), the two log copiers and their CPU budget, exit.json and the
// chute's own shim.sock, so Attach and the state directory's layout do
// not change. What changes: shim.pid names the monitor, and a monitor
// that dies takes every chute it serves with it, as a shim took its one.
//
// A monitor runs as `BINARY __monitor RUNDIR`, detached as a shim is (its
// own session, no parent-death signal), and serves RUNDIR/KEY.sock, KEY
// naming the binary file it runs: a binary replaced on disk gets a
// monitor of its own for its chutes, while the old one serves the old
// chutes until the last ends. A connection's first line is an assignment:
// a state directory, answered by the chute's shimReport; or none, a
// launcher's hold, answered by the monitor's pid and kept open as long as
// the launcher uses this monitor. With neither a chute nor a connection
// left, the monitor exits; after a daemon restart, the next launcher finds
// it by its socket.
const (
	MonitorCommand = "__monitor"
	// monitorLonely is how long a new monitor waits for its first
	// connection.
	monitorLonely = 30 * time.Second
)

// monitorHello is a new monitor's first and last word on its report
// channel: the socket it serves, or why it does not.
type monitorHello struct {
	Socket string `json:"socket,omitempty"`
	Error  string `json:"error,omitempty"`
}

// exeKey names the binary file at path as it is now: another file there,
// or the same rewritten, has another key.
func exeKey(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("stat %s: no inode", path)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d:%d:%d:%d", sys.Dev, sys.Ino, st.Size(), st.ModTime().UnixNano())
	return fmt.Sprintf("%012x", h.Sum64()>>16), nil
}

// monitorFile is the path of the monitor of key's file named by ext in
// runDir: short, as a socket's path must be.
func monitorFile(runDir, key, ext string) string {
	return filepath.Join(runDir, key+ext)
}

// MonitorMain is the monitor role, run as `<binary> __monitor RUNDIR` by
// a Launcher. It returns the process's exit code once it serves nothing.
func MonitorMain(args []string) int {
	report := processSetup()
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: %s RUNDIR\n", MonitorCommand)
		return 2
	}
	// Assembled once for all chutes; an error shows at a start.
	seccompFilter()
	m, err := listenMonitor(args[0])
	if err != nil {
		json.NewEncoder(report).Encode(monitorHello{Error: err.Error()})
		return 1
	}
	json.NewEncoder(report).Encode(monitorHello{Socket: m.sock})
	report.Close()
	m.serve()
	return 0
}

type monitor struct {
	sock, pidPath string
	ln            *net.UnixListener
	lock          *os.File // flock'ed while this monitor owns sock

	mu      sync.Mutex
	chutes  int // started or starting
	clients int // open connections
	closing bool
	quit    chan struct{} // closed once nothing holds the monitor
	trim    *time.Timer   // see trimSoon

	// warm is the warm init ready for the next start, if any; warming,
	// whether one is being cloned; warmFailed, whether a clone failed,
	// after which chutes are cloned at their start.
	warm       *warmInit
	warming    bool
	warmFailed bool
	warmTimer  *time.Timer // see keepWarmSoon
	// warmMade is closed once the warm init being made is ready, or not.
	warmMade chan struct{}
	// warmWait counts a warm init that is neither taken nor reaped.
	warmWait sync.WaitGroup

	// starts holds a token for each start under way (see admit).
	starts chan struct{}
}

// monitorTrimAfter is how quiet starts and exits must have been before
// the monitor collects and hands back to the system what they left: a
// start's garbage (the spec, the plan, codecs: about 0.4 MB) and an ended
// chute's state would otherwise stay in its private memory until a heap
// goal the monitor's small live heap seldom reaches.
const monitorTrimAfter = time.Second

// trimSoon has the monitor trim its memory once starts and exits pause:
// one collection for a burst of them.
func (m *monitor) trimSoon() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.trim == nil {
		m.trim = time.AfterFunc(monitorTrimAfter, debug.FreeOSMemory)
	} else {
		m.trim.Reset(monitorTrimAfter)
	}
}

// listenMonitor takes RUNDIR's socket for the binary this process runs.
// The lock file keeps a monitor that is exiting from removing the socket
// of the next one.
func listenMonitor(runDir string) (*monitor, error) {
	key, err := exeKey("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return nil, err
	}
	sock := monitorFile(runDir, key, ".sock")
	m := &monitor{sock: sock, pidPath: monitorFile(runDir, key, ".pid"), quit: make(chan struct{}),
		starts: make(chan struct{}, runtime.NumCPU())}
	if m.lock, err = os.OpenFile(monitorFile(runDir, key, ".lock"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		err = unix.Flock(int(m.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			m.lock.Close()
			return nil, fmt.Errorf("another monitor serves %s: %w", sock, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		m.lock.Close()
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // removed under the lock, see serve
	m.ln = ln
	if err := writeFileAtomic(m.pidPath, fmt.Appendf(nil, "%d\n", os.Getpid())); err != nil {
		ln.Close()
		m.lock.Close()
		return nil, err
	}
	return m, nil
}

// serve accepts connections until nothing holds the monitor, then removes
// its socket and pid file and returns.
func (m *monitor) serve() {
	lonely := time.AfterFunc(monitorLonely, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.quitIfIdleLocked()
	})
	go func() {
		for {
			conn, err := m.ln.Accept()
			if err != nil {
				return
			}
			lonely.Stop()
			m.mu.Lock()
			if m.closing {
				m.mu.Unlock()
				// Unread: its launcher sees the reset and starts another.
				conn.Close()
				continue
			}
			m.clients++
			m.mu.Unlock()
			go func() {
				defer m.release(&m.clients)
				defer conn.Close()
				m.handle(conn)
			}()
		}
	}()
	<-m.quit
	m.ln.Close()
	os.Remove(m.sock)
	os.Remove(m.pidPath)
	m.lock.Close()
	// Its warm init, told to go, is to go first (its parent-death
	// signal would end it too, a moment later).
	waitTimeout(&m.warmWait, handlerGrace)
}

// release counts a connection or chute (*n) that is over.
func (m *monitor) release(n *int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	*n--
	m.quitIfIdleLocked()
}

func (m *monitor) quitIfIdleLocked() {
	if m.chutes == 0 && m.clients == 0 && !m.closing {
		m.closing = true
		m.dropWarmLocked()
		close(m.quit)
	}
}

func (m *monitor) handle(conn net.Conn) {
	var a assignment
	if err := json.NewDecoder(conn).Decode(&a); err != nil {
		return
	}
	if a.StateDir == "" {
		// A launcher's hold: the monitor stays while it is open.
		if json.NewEncoder(conn).Encode(shimReport{Pid: os.Getpid()}) == nil {
			io.Copy(io.Discard, conn)
		}
		return
	}
	m.mu.Lock()
	m.chutes++
	m.mu.Unlock()
	if !m.startChute(conn, a.StateDir) {
		m.release(&m.chutes)
	}
	m.trimSoon()
}

// A start is CPU work from its clone to its exec (the monitor's, init's,
// the kernel's): started all at once, a burst's starts share the CPUs and
// each ends near the burst's end. The monitor runs as many at a time as
// there are CPUs, in their order of arrival, so that the first end as
// soon as they can and the burst as a whole ends no later. A start holds
// its turn for startTurn at most: one that waits on something else (a
// device, a slow disk) does not hold up the others.
const startTurn = 250 * time.Millisecond

// admit waits for a start's turn, or until hungUp is closed, and returns
// the func that ends the turn.
func (m *monitor) admit(hungUp <-chan struct{}) (done func(), err error) {
	select {
	case m.starts <- struct{}{}:
	case <-hungUp:
		return nil, errGivenUp
	}
	end := sync.OnceFunc(func() { <-m.starts })
	t := time.AfterFunc(startTurn, end)
	return func() { t.Stop(); end() }, nil
}

// startChute starts the chute of stateDir as a shim would and reports to
// conn. It returns whether the chute runs, and is then counted until its
// end.
func (m *monitor) startChute(conn net.Conn, stateDir string) (running bool) {
	enc := json.NewEncoder(conn)
	log, err := os.OpenFile(filepath.Join(stateDir, shimLogFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		enc.Encode(shimReport{Error: err.Error()})
		return false
	}
	sh := newShim(stateDir, log)
	sh.takeWarm = m.takeWarm
	// The next warm init is made once this start, and the burst it may
	// be part of, is over, not during them; and only once a chute that
	// gains by one has started: a gateway whose chutes all join the
	// daemon's network namespace would hold one for nothing.
	defer func() {
		if warmEligible(sh.spec) {
			m.keepWarmSoon()
		}
	}()
	// The launcher sends nothing after the assignment: a read that ends
	// is its hang-up, and before the report, its giving up.
	starting, hungUp := make(chan struct{}), make(chan struct{})
	go func() {
		conn.Read(make([]byte, 1))
		close(hungUp)
		select {
		case <-starting:
		default:
			sh.giveUp()
		}
	}()
	done, err := m.admit(hungUp)
	if err == nil {
		err = sh.start()
		done()
	}
	close(starting)
	if err != nil {
		fmt.Fprintf(log, "shim: start failed: %v\n", err)
		sh.abandon()
		enc.Encode(shimReport{Error: err.Error()})
		log.Close()
		return false
	}
	// A launcher that gave up on the start (its context ended) has hung
	// up: the chute is not to run with nobody knowing it.
	if err := enc.Encode(shimReport{Pid: sh.cmd.Process.Pid, StartedAt: sh.startedAt}); err != nil {
		fmt.Fprintf(log, "shim: report the start: %v; killing the chute\n", err)
		sh.cmd.Process.Kill()
	}
	go func() {
		defer func() {
			if r := recover(); r != nil {
				sh.logPanic("serve", r)
			}
		}()
		sh.serve()
	}()
	go func() {
		<-sh.done
		waitTimeout(&sh.handlers, handlerGrace)
		log.Close()
		m.release(&m.chutes)
		m.trimSoon()
	}()
	return true
}
