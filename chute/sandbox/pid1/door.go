package pid1

import (
	"errors"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// The health door runs a chute's health command on the shim's request,
// inside the chute. Init starts it as the last step of its plan, so it
// has exactly the confinement the chute's command is about to have:
// namespaces, cgroup, capabilities, ids, limits, no_new_privs and seccomp
// filter, all inherited; and so has every command it starts. No process
// outside can give a command that confinement: joining a user namespace
// takes a single-threaded caller, which no Go program is.
//
// The door is the same binary, exec'ed through a descriptor init got from
// the shim (its /proc/self/fd link resolves in the chute's /proc to the
// file outside its root), and plays its role from this package's init
// function, as init does.
//
// It serves the shim over a SOCK_SEQPACKET socket, one message each way
// per check: the shim's first message is the DoorConfig; then each
// request, a sequence number, gets a CheckReport with that number. The
// chute runs as the door's uid in its namespaces and can kill it or take
// it over: the shim bounds what it reads from the door in size and time,
// and a door that does not answer makes a failed check.

// DoorCommand is the argument (os.Args[1], the only one) that makes the
// process a chute's health door.
const DoorCommand = "__door"

// doorSockFD is the door's end of the shim's socket.
const doorSockFD = 3

// Bounds of the door's messages.
const (
	// CheckOutputMax is how much of a check's output (stdout and stderr
	// together) is kept; the rest is read and discarded.
	CheckOutputMax = 4096
	checkErrMax    = 256
	// CheckReportMax bounds an encoded CheckReport.
	CheckReportMax = 4*8 + 2*4 + checkErrMax + CheckOutputMax
	// DoorConfigMax bounds an encoded DoorConfig, which must fit in one
	// message of the socket.
	DoorConfigMax = 64 << 10
)

// drainGrace is how long the door reads on once the command has exited:
// output still open then is held by something it left behind.
const drainGrace = 100 * time.Millisecond

// DoorConfig is the health command and how the door runs it.
type DoorConfig struct {
	Timeout time.Duration // after which the command's process group is killed
	Search  bool          // Paths come from $PATH, as for Plan.Exec
	Paths   []string      // candidates for Argv[0]
	Argv    []string
	Env     []string
	Dir     string
}

// Encode is c as the door's first message.
func (c *DoorConfig) Encode() []byte {
	var p Plan // the plan's encoding
	p.num(uint64(c.Timeout))
	p.num(boolNum(c.Search))
	p.list(c.Paths)
	p.list(c.Argv)
	p.list(c.Env)
	p.str(c.Dir)
	return p.b
}

func decodeDoorConfig(b []byte) (DoorConfig, error) {
	d := &decoder{b: b}
	c := DoorConfig{Timeout: time.Duration(d.num())}
	search := d.num()
	c.Search = search == 1
	c.Paths, c.Argv, c.Env = d.list(), d.list(), d.list()
	c.Dir = d.str()
	if d.bad || len(d.b) > 0 || search > 1 || c.Timeout <= 0 || len(c.Argv) == 0 {
		return c, errBadMessage
	}
	return c, nil
}

// CheckRequest is the shim's request for check number seq.
func CheckRequest(seq uint64) []byte {
	var p Plan
	p.num(seq)
	return p.b
}

func decodeCheckRequest(b []byte) (uint64, error) {
	d := &decoder{b: b}
	seq := d.num()
	if d.bad || len(d.b) > 0 {
		return 0, errBadMessage
	}
	return seq, nil
}

// CheckReport is how one run of the health command went.
type CheckReport struct {
	Seq       uint64 // the request's
	Exited    bool   // Code is the command's exit code
	Code      int
	Signal    int    // the signal that killed it, when not Exited
	TimedOut  bool   // it was killed at the timeout
	Truncated bool   // output beyond CheckOutputMax was discarded
	Err       string // why it could not be started; nothing else is set then
	Output    string // the first CheckOutputMax bytes of stdout and stderr
}

const (
	reportExited = 1 << iota
	reportTimedOut
	reportTruncated
	reportFlags = reportExited | reportTimedOut | reportTruncated
)

// Encode is r as a message of at most CheckReportMax bytes, Err and
// Output cut to their bounds.
func (r *CheckReport) Encode() []byte {
	flags := boolNum(r.Exited)*reportExited | boolNum(r.TimedOut)*reportTimedOut | boolNum(r.Truncated)*reportTruncated
	var p Plan
	p.num(r.Seq)
	p.num(flags)
	p.num(uint64(r.Code))
	p.num(uint64(r.Signal))
	p.str(r.Err[:min(len(r.Err), checkErrMax)])
	p.str(r.Output[:min(len(r.Output), CheckOutputMax)])
	return p.b
}

// DecodeCheckReport reads a report from the door, which the chute may
// have written: anything out of bounds is refused.
func DecodeCheckReport(b []byte) (CheckReport, error) {
	if len(b) > CheckReportMax {
		return CheckReport{}, errBadMessage
	}
	d := &decoder{b: b}
	r := CheckReport{Seq: d.num()}
	flags, code, sig := d.num(), d.num(), d.num()
	r.Err, r.Output = d.str(), d.str()
	if d.bad || len(d.b) > 0 || flags&^reportFlags != 0 || code > 255 || sig > 127 ||
		len(r.Err) > checkErrMax || len(r.Output) > CheckOutputMax {
		return CheckReport{}, errBadMessage
	}
	r.Exited, r.TimedOut, r.Truncated = flags&reportExited != 0, flags&reportTimedOut != 0, flags&reportTruncated != 0
	r.Code, r.Signal = int(code), int(sig)
	return r, nil
}

var errBadMessage = errors.New("malformed door message")

func boolNum(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// door is the door's life: the configuration, then one check per
// request, until the shim's end closes.
func door() {
	// What ps shows in the chute, rather than the descriptor's number.
	name := []byte("paradrop-door\x00")
	prctl(prSetName, uintptr(unsafe.Pointer(&name[0])), 0)
	// The socket is the door's alone, not the health commands'.
	syscall.CloseOnExec(doorSockFD)
	// What a check leaves behind, in its process group or not, becomes
	// the door's, which ends it with the check (killOrphans); without
	// this, it would go to the chute's pid 1.
	if err := prctl(prSetChildSubreaper, 1, 0); err != nil {
		return
	}
	buf := make([]byte, DoorConfigMax)
	n, err := recv(buf)
	if err != nil {
		return
	}
	cfg, err := decodeDoorConfig(buf[:n])
	if err != nil {
		return
	}
	for {
		n, err := recv(buf)
		if err != nil {
			return
		}
		seq, err := decodeCheckRequest(buf[:n])
		if err != nil {
			continue
		}
		rep := runCheck(&cfg)
		rep.Seq = seq
		if err := send(rep.Encode()); err != nil {
			return
		}
	}
}

// recv reads one message; the shim's end closed is an error.
func recv(buf []byte) (int, error) {
	for {
		n, err := syscall.Read(doorSockFD, buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, errors.New("shim gone")
		}
		return n, nil
	}
}

func send(msg []byte) error {
	for {
		_, err := syscall.Write(doorSockFD, msg)
		if err != syscall.EINTR {
			return err
		}
	}
}

// runCheck runs the health command once, in a process group of its own,
// stdin /dev/null, stdout and stderr into one pipe whose first
// CheckOutputMax bytes it keeps. At the timeout, or once the command has
// exited, the group is killed: nothing of a check outlives it.
func runCheck(cfg *DoorConfig) CheckReport {
	deadline := time.Now().Add(cfg.Timeout)
	r, w, err := os.Pipe()
	if err != nil {
		return CheckReport{Err: "pipe: " + err.Error()}
	}
	defer r.Close()
	null, err := os.Open("/dev/null")
	if err != nil {
		w.Close()
		return CheckReport{Err: err.Error()}
	}
	var proc *os.Process
	err = firstPath(cfg.Search, cfg.Paths, func(path string) error {
		var err error
		proc, err = os.StartProcess(path, cfg.Argv, &os.ProcAttr{
			Dir: cfg.Dir, Env: cfg.Env, Files: []*os.File{null, w, w},
			Sys: &syscall.SysProcAttr{Setpgid: true},
		})
		return err
	})
	w.Close()
	null.Close()
	if err != nil {
		return CheckReport{Err: "start " + cfg.Argv[0] + ": " + err.Error()}
	}
	r.SetReadDeadline(deadline)
	exited := make(chan *os.ProcessState, 1)
	go func() {
		st, _ := proc.Wait()
		if d := time.Now().Add(drainGrace); d.Before(deadline) {
			r.SetReadDeadline(d)
		}
		exited <- st
	}()
	var rep CheckReport
	rep.Output, rep.Truncated = keepFirst(r, CheckOutputMax)
	var st *os.ProcessState
	timer := time.NewTimer(time.Until(deadline))
	select {
	case st = <-exited:
	case <-timer.C:
		rep.TimedOut = true
	}
	timer.Stop()
	syscall.Kill(-proc.Pid, syscall.SIGKILL)
	if rep.TimedOut {
		proc.Kill() // had it left its group
		st = <-exited
	}
	killOrphans()
	if st != nil {
		switch ws := st.Sys().(syscall.WaitStatus); {
		case ws.Exited():
			rep.Exited, rep.Code = true, ws.ExitStatus()
		case ws.Signaled():
			rep.Signal = int(ws.Signal())
		}
	}
	return rep
}

// killOrphans kills and reaps the door's children: once the command is
// reaped, they are what it left behind and the door, a child subreaper,
// inherited. Rounds repeat for what those forked meanwhile; the chute's
// pids limit bounds them.
func killOrphans() {
	self := os.Getpid()
	for range 100 {
		kids := childrenOf(self)
		if len(kids) == 0 {
			return
		}
		for _, pid := range kids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range kids {
			for {
				_, err := syscall.Wait4(pid, nil, 0, nil)
				if err != syscall.EINTR {
					break
				}
			}
		}
	}
}

// childrenOf lists the processes whose parent is ppid, from /proc.
func childrenOf(ppid int) []int {
	dir, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := dir.Readdirnames(-1)
	dir.Close()
	var kids []int
	for _, name := range names {
		pid, ok := atoi(name)
		if !ok {
			continue
		}
		stat, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		if p, ok := statPPid(string(stat)); ok && p == ppid {
			kids = append(kids, pid)
		}
	}
	return kids
}

// statPPid reads the parent's pid from the text of /proc/PID/stat: "pid
// (comm) state ppid ...", where comm may hold anything but ends at the
// last parenthesis.
func statPPid(stat string) (int, bool) {
	end := -1
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			end = i
			break
		}
	}
	if end < 0 || len(stat) < end+5 {
		return 0, false
	}
	rest := stat[end+4:] // past ") S "
	for i := range len(rest) {
		if rest[i] == ' ' {
			return atoi(rest[:i])
		}
	}
	return 0, false
}

func atoi(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// keepFirst reads r to its end or first error, and returns its first max
// bytes and whether there was more.
func keepFirst(r interface{ Read([]byte) (int, error) }, max int) (string, bool) {
	kept := make([]byte, 0, max)
	buf := make([]byte, 32<<10)
	more := false
	for {
		n, err := r.Read(buf)
		keep := min(n, max-len(kept))
		kept = append(kept, buf[:keep]...)
		more = more || keep < n
		if err != nil {
			return string(kept), more
		}
	}
}
