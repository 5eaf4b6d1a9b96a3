package chute

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"paradrop/cgroup"
	"paradrop/chute/manifest"
	"paradrop/chute/sandbox"
)

// ErrForbidden is a request its caller has no right to make.
var ErrForbidden = errors.New("forbidden")

// Privileges are what a chute may be given beyond the default sandbox:
// host device nodes (by host path) and capabilities (manifest names,
// "NET_RAW"), and following a LAN device (manifest follow: where the
// chute goes tells its developer where the device went). The caller of an
// install or update says which its chute may have: the operator's own are
// Config.Allow.
type Privileges struct {
	Devices      []string `json:"devices"`
	Capabilities []string `json:"capabilities"`
	Follow       bool     `json:"follow"`
}

// PrivilegeError is a manifest asking for privileges not allowed; it is
// an ErrForbidden.
type PrivilegeError struct {
	Devices      []string // host paths asked for and not allowed
	Capabilities []string
	Follow       bool // follow asked for and not allowed
}

func (e *PrivilegeError) Error() string {
	var what []string
	if len(e.Devices) > 0 {
		what = append(what, "devices "+strings.Join(e.Devices, ", "))
	}
	if len(e.Capabilities) > 0 {
		what = append(what, "capabilities "+strings.Join(e.Capabilities, ", "))
	}
	if e.Follow {
		what = append(what, "follow (a LAN device)")
	}
	return "not allowed to ask for " + strings.Join(what, " and ")
}

func (e *PrivilegeError) Unwrap() error { return ErrForbidden }

// Permits says which of man's privileges allow lacks, as a
// *PrivilegeError, or nil.
func (allow Privileges) Permits(man *manifest.Manifest) error {
	e := &PrivilegeError{}
	for _, d := range man.Devices {
		if !slices.Contains(allow.Devices, d.Path) {
			e.Devices = append(e.Devices, d.Path)
		}
	}
	for _, c := range man.Capabilities {
		if !slices.ContainsFunc(allow.Capabilities, func(a string) bool { return manifest.NormalizeCap(a) == c }) {
			e.Capabilities = append(e.Capabilities, c)
		}
	}
	e.Follow = man.Follow != nil && !allow.Follow
	if len(e.Devices)+len(e.Capabilities) > 0 || e.Follow {
		return e
	}
	return nil
}

// devicesOf is what the sandbox of a chute of manifest man is given of
// the host's devices, and what its cgroup allows of them.
func devicesOf(man *manifest.Manifest) ([]sandbox.DeviceNode, []cgroup.Device, error) {
	nodes := make([]sandbox.DeviceNode, 0, len(man.Devices))
	rules := append([]cgroup.Device(nil), sandbox.DefaultDevices...)
	for _, d := range man.Devices {
		var st unix.Stat_t
		if err := unix.Stat(d.Path, &st); err != nil {
			return nil, nil, fmt.Errorf("device %s: %w", d.Path, err)
		}
		var typ byte
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = 'c'
		case unix.S_IFBLK:
			typ = 'b'
		default:
			return nil, nil, fmt.Errorf("device %s: not a device node", d.Path)
		}
		rdev := uint64(st.Rdev)
		nodes = append(nodes, sandbox.DeviceNode{Path: d.Path, Inside: d.Where()})
		rules = append(rules, cgroup.Device{Type: typ, Major: int64(unix.Major(rdev)), Minor: int64(unix.Minor(rdev)), Access: d.Access})
	}
	return nodes, rules, nil
}
