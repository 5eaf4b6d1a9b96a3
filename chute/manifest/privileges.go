package manifest

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Device is a host device node passed into the chute: the node only, with
// a cgroup rule allowing Access to it and to no other device beyond the
// sandbox's few defaults.
type Device struct {
	Path   string `yaml:"path" json:"path"`                         // on the host, under /dev
	Inside string `yaml:"inside,omitempty" json:"inside,omitempty"` // in the chute, under /dev; default Path
	Access string `yaml:"access,omitempty" json:"access,omitempty"` // some of r, w, m; default rw
}

// Where is the node's path in the chute.
func (d Device) Where() string {
	if d.Inside == "" {
		return d.Path
	}
	return d.Inside
}

// Requestable capabilities: those a chute may ask for beyond the
// sandbox's default set, if the operator allows them. In the chute's user
// namespace they reach only namespaces that one owns: raw sockets and
// interfaces of the chute's network namespace, which a chute keeping one
// of them gets as its own (see package sandbox), and nothing outside it.
// Capabilities the kernel checks against the initial user namespace only
// (IPC_LOCK, SYS_NICE, ...) would do nothing in a chute.
//
// Every other capability is never granted, whatever the operator allows,
// because in a user namespace it still reaches the host or its kernel, or
// escapes the sandbox: SYS_ADMIN (mounts, namespaces: the root of most
// container escapes), SYS_MODULE, SYS_RAWIO, SYS_BOOT, SYS_TIME,
// SYS_PTRACE (other processes' memory, the seccomp filter's bypass before
// 4.8), SYS_PACCT, SYS_RESOURCE (lifts the limits the gateway sets),
// SYS_TTY_CONFIG, MAC_ADMIN, MAC_OVERRIDE, BPF, PERFMON, SYSLOG,
// DAC_READ_SEARCH (open_by_handle_at opens host files by handle: the
// "shocker" escape), LINUX_IMMUTABLE, MKNOD and SETFCAP (devices and file
// capabilities come from the gateway, not the chute), AUDIT_CONTROL,
// AUDIT_READ, WAKE_ALARM, BLOCK_SUSPEND, CHECKPOINT_RESTORE, IPC_OWNER,
// IPC_LOCK, SYS_NICE, LEASE, NET_BROADCAST.
var requestableCaps = []string{"NET_RAW", "NET_ADMIN"}

// knownCaps are the capabilities of Linux 6.x by name, so that a typo is
// told apart from a capability that is never granted.
var knownCaps = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
	"NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// maxDevices bounds the devices list: each is a mount in the chute and a
// cgroup rule.
const maxDevices = 16

// NormalizeCap is a capability's name as the manifest keeps it: upper
// case, without the CAP_ prefix.
func NormalizeCap(name string) string {
	return strings.TrimPrefix(strings.ToUpper(name), "CAP_")
}

// CheckCapability says why a chute can never have capability name, or
// nil: the operator's allow lists are checked by the same rule.
func CheckCapability(name string) error {
	n := NormalizeCap(name)
	switch {
	case !slices.Contains(knownCaps, n):
		return fmt.Errorf("%q is not a capability", name)
	case !slices.Contains(requestableCaps, n):
		return fmt.Errorf("%s is never granted to a chute", n)
	}
	return nil
}

// CheckDevice says why path cannot name a device node given to a chute,
// or nil.
func CheckDevice(path string) error {
	if why := devPath(path); why != "" {
		return fmt.Errorf("path %q %s", path, why)
	}
	return nil
}

func (v *validator) capabilities(caps []string) {
	for i, c := range caps {
		if err := CheckCapability(c); err != nil {
			v.fail("capabilities", "%v", err)
		} else if n := NormalizeCap(c); slices.ContainsFunc(caps[:i], func(e string) bool { return NormalizeCap(e) == n }) {
			v.fail("capabilities", "%s is listed twice", n)
		}
	}
}

// devPath reports why p cannot name a device node under /dev.
func devPath(p string) string {
	switch {
	case len(p) > maxPathLen:
		return "is too long"
	case !strings.HasPrefix(p, "/dev/") || path.Clean(p) != p:
		return "is not a clean path under /dev/"
	case strings.ContainsAny(p, "\x00\n"):
		return "contains a NUL or newline"
	}
	// The chute's /dev is built by the sandbox; a device cannot replace
	// or hide what it puts there.
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/dev/"), "/")
	switch first {
	case "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin", "stdout", "stderr", "mqueue":
		return "is one of the sandbox's own /dev entries"
	}
	return ""
}

func (v *validator) devices(devs []Device) {
	if len(devs) > maxDevices {
		v.fail("devices", "%d devices, at most %d", len(devs), maxDevices)
	}
	for i, d := range devs {
		field := "devices." + d.Path
		if err := CheckDevice(d.Path); err != nil {
			v.fail(field, "%v", err)
		}
		if d.Inside != "" {
			if why := devPath(d.Inside); why != "" {
				v.fail(field, "inside %q %s", d.Inside, why)
			}
		}
		if d.Access == "" || strings.Trim(d.Access, "rwm") != "" || len(d.Access) > 3 {
			v.fail(field, "access %q is not some of r, w, m", d.Access)
		}
		for _, e := range devs[:i] {
			if e.Where() == d.Where() {
				v.fail(field, "%s is listed twice", d.Where())
			}
		}
	}
}
