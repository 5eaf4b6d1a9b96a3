package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/chute/sandbox/pid1"
)

// Command-line words under which the program must dispatch the two hidden
// roles of its own binary (see the package documentation).
const (
	ShimCommand = "__shim"
	// InitCommand is played by package pid1's init function, before
	// main runs: a program only needs to link this package for it.
	InitCommand = pid1.Command
)

// Defaults applied by Start to zero fields of a Spec.
const (
	DefaultLogMaxBytes = 1 << 20
	DefaultLogFiles    = 3
	DefaultTmpSize     = 64 << 20
	DefaultPath        = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// idRange is the number of ids the chute's user namespace maps: chute ids
// 0..65535 become host ids HostUID..HostUID+65535.
const idRange = 65536

// Spec describes a chute to start.
type Spec struct {
	Name     string
	Hostname string // default: Name

	Rootfs    string // chute's root; its proc, dev, sys, tmp (and data, paradrop when used) are directories, not symlinks, or missing (then made)
	DataDir   string // bound read-write at /data ("" = none)
	PolicyDir string // bound read-only at /paradrop ("" = none)

	Args []string
	Env  []string // PATH, HOSTNAME and HOME are added when missing
	Cwd  string   // default "/"

	UID, GID uint32 // inside the chute

	// UserNS puts the chute in its own user namespace, chute ids 0..65535
	// mapped to host ids HostUID.. and HostGID... Callers should always set
	// it: without it the chute runs with host ids (real host root, minus the
	// dropped capabilities, when UID is 0).
	UserNS           bool
	HostUID, HostGID uint32

	NetNS      string // bind-mounted network namespace to join ("" = new, loopback only)
	CgroupPath string // paradrop/cgroup path the chute is placed in before it runs ("" = none)

	TmpSize int64    // size of the /tmp tmpfs in bytes
	Rlimits []Rlimit // replace the defaults (NOFILE 1024, CORE 0) for the resources they name

	LogDir      string // current.log and its rotations
	LogMaxBytes int64  // size at which current.log rotates
	LogFiles    int    // files kept, current.log included

	// Devices are host device nodes passed into the chute's /dev, and
	// nothing else of the host's /dev: the chute gets a node of its own of
	// each one's number, owned by UID/GID (see openDeviceTrees). Opening
	// one also needs the chute's cgroup to allow its number
	// (cgroup.Group.LimitDevices): Start does not change the cgroup.
	Devices []DeviceNode
	// Etc are files the chute sees, read-only, in its /etc: the
	// gateway's resolv.conf and hosts. They are never written into the
	// rootfs: its etc becomes the lower layer of an overlay whose upper
	// layer, a tmpfs of the shim's, holds them (see openEtcTree).
	Etc []EtcFile
	// Caps are capabilities the chute keeps beyond the default set, by
	// name ("NET_RAW"). Which may be asked for is the caller's policy.
	// With UserNS, NET_RAW or NET_ADMIN also gives the chute a network
	// namespace of its own user namespace, into which NetNS's eth0 is
	// moved and on which NetNS is pinned from then on (see ownNetNS).
	Caps []string

	// Health is run in the chute by Chute.Check; a chute that has one
	// also has the door process that runs it (see door.go).
	Health *HealthCheck

	StateDir   string // shim's pid file, socket and exit status; one chute per directory
	Executable string // binary re-executed for the shim and init roles (default: os.Executable())

	// ownNet: the chute's init has a network namespace of its own,
	// whatever its capabilities (a warm init's, see warmInit).
	ownNet bool
}

// DeviceNode is a host device node passed into the chute.
type DeviceNode struct {
	Path   string `json:"path"`   // on the host
	Inside string `json:"inside"` // in the chute, a clean path under /dev/
}

// EtcFile is a file the chute sees, read-only, as /etc/Name.
type EtcFile struct {
	Name string // one path element: "resolv.conf"
	Data []byte // at most MaxEtcFile bytes
}

// MaxEtcFile is the largest EtcFile.Data.
const MaxEtcFile = 64 << 10

// Rlimit is a resource limit set in the chute, Resource being a
// unix.RLIMIT_* constant.
type Rlimit struct {
	Resource int    `json:"resource"`
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
}

// ExitStatus tells how a chute ended. Code is the exit code, or 128 plus the
// signal number when it was killed by a signal, which Signal then names
// ("killed", "terminated", ...).
type ExitStatus struct {
	Code   int       `json:"code"`
	Signal string    `json:"signal,omitempty"`
	At     time.Time `json:"at"`
}

var defaultRlimits = []Rlimit{
	{Resource: unix.RLIMIT_NOFILE, Soft: 1024, Hard: 1024},
	{Resource: unix.RLIMIT_CORE, Soft: 0, Hard: 0},
}

// withDefaults validates s and fills its zero fields.
func (s Spec) withDefaults() (Spec, error) {
	if s.Name == "" {
		return s, errors.New("spec: empty name")
	}
	if len(s.Args) == 0 {
		return s, errors.New("spec: no command")
	}
	for name, dir := range map[string]string{"Rootfs": s.Rootfs, "StateDir": s.StateDir, "LogDir": s.LogDir} {
		if dir == "" {
			return s, fmt.Errorf("spec: %s is required", name)
		}
	}
	if s.UserNS && (uint64(s.HostUID)+idRange > 1<<32 || uint64(s.HostGID)+idRange > 1<<32) {
		return s, errors.New("spec: host id range overflows")
	}
	if s.Health != nil && (len(s.Health.Args) == 0 || s.Health.Timeout <= 0) {
		return s, errors.New("spec: a health check needs a command and a positive timeout")
	}
	if s.UserNS && (s.UID >= idRange || s.GID >= idRange) {
		return s, fmt.Errorf("spec: uid/gid %d/%d not mapped in the chute", s.UID, s.GID)
	}
	if _, err := extraCaps(s.Caps); err != nil {
		return s, err
	}
	for i, d := range s.Devices {
		first, _, _ := strings.Cut(strings.TrimPrefix(d.Inside, "/dev/"), "/")
		if !strings.HasPrefix(d.Inside, "/dev/") || filepath.Clean(d.Inside) != d.Inside || !filepath.IsAbs(d.Path) {
			return s, fmt.Errorf("spec: device %q at %q: want an absolute host path and a clean path under /dev/", d.Path, d.Inside)
		}
		if slices.Contains(hostDevices, first) || slices.ContainsFunc(devSymlinks, func(l [2]string) bool { return l[1] == first }) ||
			first == "pts" || first == "shm" || slices.ContainsFunc(s.Devices[:i], func(e DeviceNode) bool { return e.Inside == d.Inside }) {
			return s, fmt.Errorf("spec: device %q at %q: the place is taken", d.Path, d.Inside)
		}
	}
	for i, e := range s.Etc {
		if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") || len(e.Data) > MaxEtcFile ||
			slices.ContainsFunc(s.Etc[:i], func(o EtcFile) bool { return o.Name == e.Name }) {
			return s, fmt.Errorf("spec: etc file %q: want one new name and at most %d bytes", e.Name, MaxEtcFile)
		}
	}
	for _, p := range []*string{&s.Rootfs, &s.DataDir, &s.PolicyDir, &s.LogDir, &s.StateDir} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return s, fmt.Errorf("spec: %w", err)
		}
		*p = abs
	}
	if s.Hostname == "" {
		s.Hostname = s.Name
	}
	if s.Cwd == "" {
		s.Cwd = "/"
	}
	if s.TmpSize == 0 {
		s.TmpSize = DefaultTmpSize
	}
	if s.LogMaxBytes == 0 {
		s.LogMaxBytes = DefaultLogMaxBytes
	}
	if s.LogFiles == 0 {
		s.LogFiles = DefaultLogFiles
	}
	s.Rlimits = mergeRlimits(defaultRlimits, s.Rlimits)
	s.Env = chuteEnv(s)
	if s.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return s, fmt.Errorf("spec: find own executable: %w", err)
		}
		s.Executable = exe
	}
	return s, nil
}

func mergeRlimits(defaults, given []Rlimit) []Rlimit {
	out := append([]Rlimit(nil), given...)
	for _, d := range defaults {
		found := false
		for _, g := range given {
			found = found || g.Resource == d.Resource
		}
		if !found {
			out = append(out, d)
		}
	}
	return out
}

// chuteEnv is the environment the chute's command gets: Spec.Env plus the
// variables a process expects from a login-less start.
func chuteEnv(s Spec) []string {
	env := append([]string(nil), s.Env...)
	has := func(key string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, key+"=") {
				return true
			}
		}
		return false
	}
	home := "/"
	if s.UID == 0 {
		home = "/root"
	}
	for _, kv := range [][2]string{{"PATH", DefaultPath}, {"HOSTNAME", s.Hostname}, {"HOME", home}} {
		if !has(kv[0]) {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return env
}
