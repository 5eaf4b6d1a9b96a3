package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// assignment is the first line of a connection to a monitor: the state
// directory of the chute to start, or none for a launcher's hold.
type assignment struct {
	StateDir string `json:"state_dir"`
}

var (
	// errMonitorUnusable: the monitor never took the assignment, so it
	// did nothing in the state directory and another can start the chute.
	errMonitorUnusable = errors.New("monitor unusable")
	errClosed          = errors.New("launcher closed")
)

// Launcher starts chutes as Start does, but under the monitor of its
// executable (see MonitorCommand): a chute start then pays for one Go
// start-up of the binary (the chute's init) instead of two, and a running
// chute for a few threads of one shared process instead of a process of
// its own. The launcher starts its monitor as it is made, or finds the
// one a previous daemon left in its run directory, and holds it until
// Close; once the executable is replaced on disk, the next Start
// goes to a new monitor of the new binary, and the old one ends with its
// last chute.
//
// A Start that finds no usable monitor (one cannot be started, or it died
// and a second one failed too) execs a shim of the chute's own, as Start
// does; so does a Start whose spec names another executable. A Launcher
// is safe for concurrent use.
type Launcher struct {
	exe    string
	runDir string
	logf   func(format string, args ...any) // nil: say nothing

	mu     sync.Mutex
	mon    *monitorClient // nil until the first Start, or once it is gone
	closed bool
	// failed is why the last monitor could not be started, and failedAt
	// when: the next ones are not tried for monitorRetry.
	failed   error
	failedAt time.Time
}

// monitorRetry is how long a launcher whose monitor could not start (its
// run directory unusable, say) starts chutes cold without trying again:
// each try costs a start-up of the binary.
const monitorRetry = time.Minute

// NewLauncher returns a launcher whose chutes run under executable
// (default: os.Executable()), with its monitors' socket, pid and log
// files in runDir, which it creates; it starts, or finds, its monitor in
// the background, so that the first Start finds it running. Logf, if not
// nil, hears why chutes start under a shim each for a while (no monitor
// could start).
func NewLauncher(executable, runDir string, logf func(format string, args ...any)) *Launcher {
	l := &Launcher{exe: executable, runDir: runDir, logf: logf}
	if l.exe == "" {
		// Without it, every Start goes cold, and says why.
		l.exe, _ = os.Executable()
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), monitorLonely)
		defer cancel()
		// A failure shows again at the first Start.
		l.monitor(ctx)
	}()
	return l
}

// Start starts a chute as the package-level Start does, with the same
// contract, under the launcher's monitor. A spec naming another
// executable than the launcher's is started under a shim of its own. After
// Close, so is every Start.
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
	var monErr error
	// A monitor that was exiting as this start reached it leaves the
	// chute to the next one.
	for range 2 {
		var m *monitorClient
		if m, monErr = l.monitor(ctx); monErr != nil {
			break
		}
		c, err := m.assign(ctx, s.StateDir)
		if !errors.Is(err, errMonitorUnusable) {
			return c, err
		}
		monErr = err
		l.drop(m)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c, err := startCold(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("%w (and no monitor: %v)", err, monErr)
	}
	return c, nil
}

// Warm makes sure the launcher's monitor runs, starting it if need be: for
// a caller about to start chutes that wants those starts warm too.
func (l *Launcher) Warm(ctx context.Context) error {
	if _, err := l.monitor(ctx); err != nil {
		return fmt.Errorf("warm the monitor: %w", err)
	}
	return nil
}

// Close lets go of the launcher's monitor: with no chute, it exits.
// Chutes started are not the launcher's: they and their monitor live on.
func (l *Launcher) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.mon != nil {
		l.mon.release()
		l.mon = nil
	}
}

// monitor returns the monitor of the launcher's executable as it is now
// on disk: the one it holds, one already serving the run directory, or a
// new one.
func (l *Launcher) monitor(ctx context.Context) (*monitorClient, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errClosed
	}
	key, err := exeKey(l.exe)
	if err != nil {
		return nil, err
	}
	if m := l.mon; m != nil {
		if m.key == key && m.alive() {
			return m, nil
		}
		// Replaced on disk, or gone: an old monitor ends with its chutes.
		m.release()
		l.mon = nil
	}
	m, err := holdMonitor(ctx, key, monitorFile(l.runDir, key, ".sock"))
	if err == nil {
		l.mon = m
		return m, nil
	}
	if l.failed != nil && time.Since(l.failedAt) < monitorRetry {
		return nil, l.failed
	}
	sock, err := startMonitor(ctx, l.exe, l.runDir)
	if err == nil {
		m, err = holdMonitor(ctx, key, sock)
	}
	if err != nil {
		if ctx.Err() == nil {
			l.failed, l.failedAt = err, time.Now()
			if l.logf != nil {
				l.logf("chutes start under a shim each for %v: no monitor: %v", monitorRetry, err)
			}
		}
		return nil, err
	}
	l.failed = nil
	l.mon = m
	return m, nil
}

// drop forgets m, which failed a start.
func (l *Launcher) drop(m *monitorClient) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mon == m {
		l.mon = nil
	}
	m.release()
}

// monitorClient is a launcher's hold on a monitor.
type monitorClient struct {
	key, sock string
	pid       int
	hold      net.Conn
	gone      chan struct{} // closed once the hold ends: the monitor exited, or release
}

// startMonitor execs a monitor of exe for runDir and returns the socket
// it serves once it does.
func startMonitor(ctx context.Context, exe, runDir string) (string, error) {
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return "", fmt.Errorf("start monitor: %w", err)
	}
	// Its own output (runtime crashes; a chute's problems go to the
	// chute's shim.log) is rare: one file for all monitors.
	out, err := os.OpenFile(filepath.Join(runDir, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("start monitor: %w", err)
	}
	defer out.Close()
	cmd, reportR, err := execRole(exe, []string{MonitorCommand, runDir}, out)
	if err != nil {
		return "", fmt.Errorf("start monitor: %w", err)
	}
	defer reportR.Close()
	got := make(chan error, 1)
	var hello monitorHello
	go func() { got <- json.NewDecoder(reportR).Decode(&hello) }()
	select {
	case err = <-got:
	case <-ctx.Done():
		cmd.Process.Kill()
		return "", ctx.Err()
	}
	if err == nil && hello.Error != "" {
		err = errors.New(hello.Error)
	}
	if err == nil && hello.Socket == "" {
		err = errors.New("the binary does not know the monitor role")
	}
	if err != nil {
		return "", fmt.Errorf("monitor %d did not start: %w", cmd.Process.Pid, err)
	}
	return hello.Socket, nil
}

// holdMonitor connects to the monitor serving sock and holds it.
func holdMonitor(ctx context.Context, key, sock string) (*monitorClient, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	dec := json.NewDecoder(conn)
	var rep shimReport
	if err := json.NewEncoder(conn).Encode(assignment{}); err == nil {
		err = dec.Decode(&rep)
	}
	if err != nil || rep.Pid == 0 {
		conn.Close()
		return nil, fmt.Errorf("monitor at %s: %w", sock, orCtx(ctx, errors.Join(err, errMonitorUnusable)))
	}
	m := &monitorClient{key: key, sock: sock, pid: rep.Pid, hold: conn, gone: make(chan struct{})}
	go func() { io.Copy(io.Discard, conn); close(m.gone) }()
	return m, nil
}

func (m *monitorClient) alive() bool {
	select {
	case <-m.gone:
		return false
	default:
		return true
	}
}

func (m *monitorClient) release() { m.hold.Close() }

// assign has the monitor start the chute prepared in stateDir and returns
// as Start does. An error wrapping errMonitorUnusable means the monitor
// is gone without having touched stateDir.
func (m *monitorClient) assign(ctx context.Context, stateDir string) (*Chute, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", m.sock)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMonitorUnusable, err)
	}
	defer conn.Close()
	if err := json.NewEncoder(conn).Encode(assignment{StateDir: stateDir}); err != nil {
		return nil, fmt.Errorf("%w: %v", errMonitorUnusable, err)
	}
	c, err := awaitReport(ctx, json.NewDecoder(conn), func() { conn.Close() }, stateDir)
	// The kernel resets the connection of a peer that closed it with data
	// unread: the monitor, exiting, never read the assignment. (EOF would
	// mean it had, and died starting the chute.)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil, fmt.Errorf("%w: %v", errMonitorUnusable, err)
	}
	return c, err
}
