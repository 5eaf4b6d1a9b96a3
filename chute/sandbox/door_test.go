package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"paradrop/chute/sandbox"
	"paradrop/chute/sandbox/pid1"
	"paradrop/chute/sandbox/sandboxtest"
)

// healthSpec is a chute whose health command runs /data/check.sh, which
// setCheck writes.
func healthSpec(t *testing.T, name string) sandbox.Spec {
	t.Helper()
	s := newSpec(t, name, "echo up; exec sleep 1000")
	s.Executable = sandboxtest.StaticExecutable(t)
	s.Health = &sandbox.HealthCheck{Args: []string{"/bin/sh", "-c", ". /data/check.sh"}, Timeout: 2 * time.Second}
	return s
}

func setCheck(t *testing.T, s sandbox.Spec, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.DataDir, "check.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
}

func check(t *testing.T, c *sandbox.Chute) (sandbox.CheckResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Check(ctx)
}

// chuteProcs returns the host pids of the processes in the pid namespace
// of the chute's pid 1, with their command lines.
func chuteProcs(t *testing.T, pid int) map[int]string {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc")
	procs := map[int]string{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if other, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); other == ns {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			procs[p] = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return procs
}

func TestCheck(t *testing.T) {
	s := healthSpec(t, "checked")
	s.Env = []string{"FOO=bar"}
	s.Cwd = "/tmp"
	c := start(t, s)
	tests := []struct {
		name   string
		script string
		want   sandbox.CheckResult
		err    string // of CheckResult.Err, "" for a pass
	}{
		{name: "pass", script: "echo fine", want: sandbox.CheckResult{Output: "fine\n"}},
		{name: "environment and directory", script: `echo $FOO $(pwd) $(id -u)`, want: sandbox.CheckResult{Output: "bar /tmp 0\n"}},
		{name: "exit code", script: "echo bad >&2; exit 3", want: sandbox.CheckResult{Code: 3, Output: "bad\n"},
			err: `exit code 3: "bad\n"`},
		{name: "killed", script: "kill -9 $$", want: sandbox.CheckResult{Code: 137, Signal: "killed"},
			err: "killed by signal: killed"},
		{name: "output capped", script: `head -c 100000 /dev/zero | tr '\0' a; echo end`,
			want: sandbox.CheckResult{Output: strings.Repeat("a", sandbox.CheckOutputMax), Truncated: true}},
		{name: "timeout", script: "echo waiting; sleep 30", want: sandbox.CheckResult{Code: 137, Signal: "killed", TimedOut: true, Output: "waiting\n"},
			err: `timed out: "waiting\n"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setCheck(t, s, tt.script)
			t0 := time.Now()
			res, err := check(t, c)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if d := time.Since(t0); d > s.Health.Timeout+time.Second {
				t.Errorf("check took %s, timeout %s", d, s.Health.Timeout)
			}
			if res != tt.want {
				t.Errorf("result %+v, want %+v", res, tt.want)
			}
			if err := res.Err(); (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
				t.Errorf("Err() = %v, want %q", err, tt.err)
			}
		})
	}

	t.Run("nothing outlives a check", func(t *testing.T) {
		// One in the command's process group, one in a session of its
		// own, one orphaned twice over.
		setCheck(t, s, "sleep 100 & setsid sleep 101 & (setsid sh -c 'sleep 102 &' &); sleep 0.2; echo started")
		if res, err := check(t, c); err != nil || res.Err() != nil {
			t.Fatalf("Check: %+v, %v", res, err)
		}
		time.Sleep(100 * time.Millisecond)
		for pid, cmd := range chuteProcs(t, c.Pid()) {
			if cmd == "sleep 100" || cmd == "sleep 101" || cmd == "sleep 102" {
				t.Errorf("pid %d %q, left by the check, still runs", pid, cmd)
			}
		}
	})
}

// TestCheckAsUser: a chute running as a user other than root checks as
// that user, with no capabilities, as its command runs.
func TestCheckAsUser(t *testing.T) {
	s := healthSpec(t, "user")
	s.UID, s.GID = 1000, 1000
	setCheck(t, s, "id -u; id -g; grep -E '^Cap(Prm|Eff)' /proc/self/status")
	c := start(t, s)
	res, err := check(t, c)
	if want := "1000\n1000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"; err != nil || res.Output != want {
		t.Errorf("Check: %+v, %v; want output %q", res, err, want)
	}
}

// TestCheckDoor: the door holds nothing of the chute's or the shim's
// beyond its socket, has the chute's confinement, and a chute that kills
// it fails its checks at once.
func TestCheckDoor(t *testing.T) {
	s := healthSpec(t, "door")
	c := start(t, s)
	waitForLog(t, s.LogDir, "up")
	var door int
	for pid, cmd := range chuteProcs(t, c.Pid()) {
		if cmd == "paradrop-door "+"__door" {
			door = pid
		}
	}
	if door == 0 {
		t.Fatalf("no door among the chute's processes %v", chuteProcs(t, c.Pid()))
	}
	main, doorSt := procStatus(t, c.Pid()), procStatus(t, door)
	for _, k := range []string{"Uid", "Gid", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters"} {
		if doorSt[k] != main[k] {
			t.Errorf("%s: door %q, chute %q", k, doorSt[k], main[k])
		}
	}
	t.Logf("door: VmRSS %s, RssAnon %s, Threads %s", doorSt["VmRSS"], doorSt["RssAnon"], doorSt["Threads"])

	chuteOut, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", c.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", door))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", door, fd.Name()))
		n, _ := strconv.Atoi(fd.Name())
		switch {
		case n <= 2 && target == "/dev/null", n == 3 && strings.HasPrefix(target, "socket:"):
		case n > 3 && strings.HasPrefix(target, "anon_inode:"): // the Go runtime's poller
		default:
			t.Errorf("door holds fd %d: %s (the chute's output is %s)", n, target, chuteOut)
		}
	}
	if mainFds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Pid())); len(mainFds) != 3 {
		t.Errorf("the chute's command holds %d fds, want its 3 standard ones", len(mainFds))
	}

	setCheck(t, s, "kill -9 $PPID; sleep 5")
	t0 := time.Now()
	if res, err := check(t, c); err == nil {
		t.Errorf("check whose door was killed: %+v", res)
	}
	if _, err := check(t, c); err == nil || time.Since(t0) > 3*time.Second {
		t.Errorf("checks after the door died: %v after %s, want an error at once", err, time.Since(t0))
	}
}

// TestCheckAfterDaemonDeath: checks keep working when the daemon that
// started the chute, cold or under a monitor, is gone.
func TestCheckAfterDaemonDeath(t *testing.T) {
	for _, how := range []string{"cold", "warm"} {
		t.Run(how, func(t *testing.T) {
			s := healthSpec(t, "adopted")
			setCheck(t, s, "echo alive")
			pids := fromFakeDaemon(t, s, map[string]int{"cold": 1, "warm": 2}[how], how)
			c, err := attach(t, s.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Signal(syscall.SIGKILL); wait(t, c) })
			if how == "warm" && (c.Pid() != pids[1] || ppid(t, c.Pid()) != pids[0]) {
				t.Errorf("chute %d not started by the monitor %d (pids %v)", c.Pid(), pids[0], pids)
			}
			res, err := check(t, c)
			if err != nil || res.Output != "alive\n" || res.Err() != nil {
				t.Errorf("Check: %+v, %v", res, err)
			}
		})
	}
}

// The door role, like init, runs before the binary's heavy dependencies
// are initialised; with its socket closed, it exits at once.
func TestDoorRunsBeforeOtherPackages(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fds[0])
	sock := os.NewFile(uintptr(fds[1]), "door")
	defer sock.Close()
	var trace strings.Builder
	cmd := exec.Command(os.Args[0], pid1.DoorCommand)
	cmd.Env = []string{"GODEBUG=inittrace=1"}
	cmd.Stderr = &trace
	cmd.ExtraFiles = []*os.File{sock}
	if err := cmd.Run(); err != nil {
		t.Fatalf("door without a shim: %v, want exit status 0", err)
	}
	checkInitTrace(t, "door", trace.String())
}

func TestCheckErrors(t *testing.T) {
	t.Run("no health command", func(t *testing.T) {
		s := newSpec(t, "nohealth", "sleep 1000")
		c := start(t, s)
		if _, err := check(t, c); !errors.Is(err, sandbox.ErrNoHealthCheck) {
			t.Errorf("Check: %v, want ErrNoHealthCheck", err)
		}
		if procs := chuteProcs(t, c.Pid()); len(procs) != 1 {
			t.Errorf("chute without a health command runs %v, want its command alone", procs)
		}
	})
	t.Run("command not found", func(t *testing.T) {
		s := healthSpec(t, "notfound")
		s.Health.Args = []string{"nosuchcheck"}
		c := start(t, s)
		res, err := check(t, c)
		if err != nil || res.Error != "start nosuchcheck: executable file not found in $PATH" {
			t.Errorf("Check: %+v, %v", res, err)
		}
	})
	t.Run("dynamic binary", func(t *testing.T) {
		s := healthSpec(t, "dynamic")
		// Debian's dash is dynamically linked, its busybox-static not.
		if err := sandbox.CheckExecutable("/bin/sh"); !errors.Is(err, sandbox.ErrNotStatic) {
			t.Errorf("CheckExecutable(/bin/sh): %v, want ErrNotStatic", err)
		}
		if err := sandbox.CheckExecutable(s.Rootfs + "/bin/busybox"); err != nil {
			t.Errorf("CheckExecutable(static busybox): %v", err)
		}
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		if sandbox.CheckExecutable(self) != nil {
			s.Executable = self
			if c, err := sandbox.Start(context.Background(), s); err == nil || !strings.Contains(err.Error(), "statically linked") {
				if c != nil {
					c.Signal(syscall.SIGKILL)
				}
				t.Errorf("Start with a dynamic binary: %v, want a refusal naming the static build", err)
			}
		}
	})
	t.Run("after exit", func(t *testing.T) {
		s := healthSpec(t, "exited")
		c := start(t, s)
		c.Signal(syscall.SIGKILL)
		wait(t, c)
		if _, err := check(t, c); err == nil {
			t.Error("Check of an exited chute succeeded")
		}
	})
}
