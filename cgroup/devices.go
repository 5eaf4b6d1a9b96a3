package cgroup

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Device is a device node, or a class of them, that a group's processes
// may use.
type Device struct {
	Type         byte   // 'c' (character) or 'b' (block)
	Major, Minor int64  // -1 is any
	Access       string // some of r (read), w (write), m (mknod)
}

func (d Device) String() string {
	num := func(n int64) string {
		if n < 0 {
			return "*"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%c %s:%s %s", d.Type, num(d.Major), num(d.Minor), d.Access)
}

func (d Device) validate() error {
	if (d.Type != 'c' && d.Type != 'b') || d.Major < -1 || d.Minor < -1 ||
		d.Access == "" || strings.Trim(d.Access, "rwm") != "" {
		return fmt.Errorf("invalid device rule %q", d)
	}
	return nil
}

// deviceRules is the devices controller's program for allow: deny every
// device, then allow those listed. Both versions take the same list: v1
// writes it to devices.deny and devices.allow in order, v2 compiles it to
// a BPF program whose default is the first rule.
func deviceRules(allow []Device) ([]specs.LinuxDeviceCgroup, error) {
	// cgroup2's compiler needs the numbers even of a rule for all devices.
	any := int64(-1)
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Type: "a", Major: &any, Minor: &any, Access: "rwm"}}
	for _, d := range allow {
		if err := d.validate(); err != nil {
			return nil, err
		}
		major, minor := d.Major, d.Minor
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: string(d.Type), Major: &major, Minor: &minor, Access: d.Access})
	}
	return rules, nil
}

// LimitDevices makes allow the only devices the group's processes may
// open or create, replacing the rules of any earlier call. Descriptors
// already open stay usable.
func (g *Group) LimitDevices(allow []Device) error {
	rules, err := deviceRules(allow)
	if err == nil {
		err = g.b.limitDevices(rules)
	}
	if err != nil {
		return fmt.Errorf("limit devices of cgroup %q: %w", g.path, err)
	}
	return nil
}
