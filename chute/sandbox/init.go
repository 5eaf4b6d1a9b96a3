package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// File descriptors the shim passes to the init role.
const (
	initSpecFD   = 3 // the Spec as JSON; arrives once the process is in its cgroup
	initStatusFD = 4 // init writes why it failed; closed by a successful exec
)

// InitMain is the init role: it runs as pid 1 of the chute's namespaces,
// prepares the sandbox and execs the chute's command. It returns only on
// failure, after reporting why to the shim.
func InitMain() int {
	// Cgroup namespace, capabilities, no_new_privs and the seccomp filter
	// belong to a thread: all of it is done on this one, which then execs.
	runtime.LockOSThread()
	status := os.NewFile(initStatusFD, "status")
	unix.CloseOnExec(initStatusFD)
	err := runInit()
	fmt.Fprint(status, err.Error())
	return 1
}

func runInit() error {
	s, err := readInitSpec()
	if err != nil {
		return err
	}
	// The shim sent the spec only after putting us in the chute's cgroup,
	// so that is what the new cgroup namespace has as its root.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("unshare cgroup namespace: %w", err)
	}
	if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if s.NetNS == "" {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if err := setupRootfs(&s); err != nil {
		return err
	}
	for _, r := range s.Rlimits {
		if err := unix.Setrlimit(r.Resource, &unix.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", r.Resource, err)
		}
	}
	if err := dropCaps(); err != nil {
		return err
	}
	if err := setIDs(s.UID, s.GID); err != nil {
		return err
	}
	if err := unix.Chdir(s.Cwd); err != nil {
		return fmt.Errorf("chdir %s: %w", s.Cwd, err)
	}
	path, err := lookPath(s.Args[0], s.Env)
	if err != nil {
		return err
	}
	if err := installSeccomp(); err != nil {
		return err
	}
	err = unix.Exec(path, s.Args, s.Env)
	return fmt.Errorf("exec %q: %w", path, err)
}

func readInitSpec() (Spec, error) {
	f := os.NewFile(initSpecFD, "spec")
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return Spec{}, fmt.Errorf("read spec from shim: %w", err)
	}
	var s Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return Spec{}, fmt.Errorf("read spec from shim: %w", err)
	}
	return s, nil
}

// lookPath finds file in the chute's PATH, as the shell would; a name with
// a slash is left for execve to judge.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	var path string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, file)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %q: %w", file, errNotInPath)
}

var errNotInPath = errors.New("executable file not found in $PATH")

// loopbackUp brings lo up in a network namespace of the chute's own, which
// the kernel creates with lo down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}
