package manifest

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path"
	"strings"
	"time"
)

// Limits that are not defaults; see the package documentation.
const (
	maxNameLen = 32
	maxUser    = 65535 // a chute's user namespace maps 65536 ids
	maxPathLen = 1024
	// MinDisk is the least /data quota: the smallest ext4 volume the
	// chute's volume can be (volume.MinSize, which a test holds equal).
	MinDisk = 4 * mi
)

var (
	// A DNS label that starts with a letter: it names the chute's
	// hostname, interfaces and directories, and cannot be mistaken for a
	// number.
	nameRE   = lazyRE(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
	envKeyRE = lazyRE(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// validator collects every violation, so that a developer sees them all at
// once rather than one per upload.
type validator struct{ errs []error }

func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (v *validator) intRange(field string, n, lo, hi int) {
	if n < lo || n > hi {
		v.fail(field, "%d is out of range %d..%d", n, lo, hi)
	}
}

func (v *validator) durRange(field string, d Duration, lo, hi time.Duration) {
	if time.Duration(d) < lo || time.Duration(d) > hi {
		v.fail(field, "%s is out of range %s..%s", d, lo, hi)
	}
}

func (v *validator) minBytes(field string, b, lo Bytes) {
	if b < lo {
		v.fail(field, "%s is less than the minimum %s", b, lo)
	}
}

// Validate reports every rule that m breaks, joined with errors.Join, each
// naming its field. It does not apply defaults: a Manifest built by hand must
// set every field (Parse does so).
func (m *Manifest) Validate() error {
	v := &validator{}
	if err := CheckName(m.Name); err != nil {
		v.fail("name", "%v", err)
	}
	if _, err := semverOf(m.Version); err != nil {
		v.fail("version", "%q is not a semantic version like 1.2.0", m.Version)
	}
	v.argv("command", m.Command)
	for k, val := range m.Env {
		if !envKeyRE().MatchString(k) {
			v.fail("env", "%q is not a valid variable name", k)
		}
		if strings.ContainsRune(val, 0) {
			v.fail("env."+k, "value contains a NUL byte")
		}
	}
	v.intRange("user", m.User, 0, maxUser)

	r := m.Resources
	v.intRange("resources.cpu_weight", r.CPUWeight, 1, 10000)
	if !(r.CPUMax > 0 && r.CPUMax <= 64) { // also refuses NaN
		v.fail("resources.cpu_max", "%v is out of range: more than 0, at most 64 cores", r.CPUMax)
	}
	v.minBytes("resources.memory", r.Memory, 4*mi)
	v.intRange("resources.pids", r.Pids, 1, 32768)
	v.minBytes("resources.disk", r.Disk, MinDisk)
	v.minBytes("resources.tmp", r.Tmp, 1*mi)

	switch m.Restart.Policy {
	case RestartNo, RestartOnFailure, RestartAlways:
	default:
		v.fail("restart.policy", "%q is not one of no, on-failure, always", m.Restart.Policy)
	}
	v.intRange("restart.max_retries", m.Restart.MaxRetries, 0, math.MaxInt32)

	if h := m.Health; h != nil {
		if (len(h.Command) > 0) == (h.HTTP != nil) {
			v.fail("health", "needs exactly one of command or http")
		}
		if len(h.Command) > 0 {
			v.argv("health.command", h.Command)
		}
		if h.HTTP != nil {
			v.endpoint("health.http", h.HTTP)
		}
		v.durRange("health.interval", h.Interval, 100*time.Millisecond, 24*time.Hour)
		v.durRange("health.timeout", h.Timeout, 100*time.Millisecond, 24*time.Hour)
		v.intRange("health.retries", h.Retries, 1, 100)
	}

	v.durRange("update.timeout", m.Update.Timeout, 1, 10*time.Minute)
	v.durRange("update.stable_for", m.Update.StableFor, 0, time.Duration(m.Update.Timeout))
	v.durRange("stop_grace", m.StopGrace, 0, 5*time.Minute)

	v.net(m.Name, &m.Net)

	if m.Policy.Hook != nil {
		if m.Policy.Hook.HTTP == nil {
			v.fail("policy.hook", "needs http")
		} else {
			v.endpoint("policy.hook.http", m.Policy.Hook.HTTP)
		}
	}
	v.durRange("policy.grace", m.Policy.Grace, 0, 60*time.Second)
	v.devices(m.Devices)
	v.capabilities(m.Capabilities)
	if m.Follow != nil {
		// A device is one host: a group address would bind the chute to
		// whoever claims it.
		if hw, err := net.ParseMAC(m.Follow.MAC); err != nil || len(hw) != 6 || hw[0]&1 != 0 {
			v.fail("follow.mac", "%q is not a unicast Ethernet MAC address like 02:00:00:00:00:01", m.Follow.MAC)
		}
	}
	return errors.Join(v.errs...)
}

// CheckName reports whether name can be a chute's name, as Validate does:
// the API checks names in requests by the same rule.
func CheckName(name string) error {
	if !nameRE().MatchString(name) || len(name) > maxNameLen {
		return fmt.Errorf("%q is not a lowercase DNS label of at most %d characters starting with a letter", name, maxNameLen)
	}
	return nil
}

// argv checks a command line run inside the chute. argv[0] must be absolute
// because the chute has no shell or PATH lookup to rely on.
func (v *validator) argv(field string, argv []string) {
	if len(argv) == 0 {
		v.fail(field, "is required")
		return
	}
	if !path.IsAbs(argv[0]) {
		v.fail(field, "%q is not an absolute path", argv[0])
	}
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			v.fail(fmt.Sprintf("%s[%d]", field, i), "contains a NUL byte")
		}
	}
}

func (v *validator) endpoint(field string, e *HTTPEndpoint) {
	v.intRange(field+".port", e.Port, 1, 65535)
	if !strings.HasPrefix(e.Path, "/") || len(e.Path) > maxPathLen ||
		strings.ContainsFunc(e.Path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		v.fail(field+".path", "%q is not an absolute URL path", e.Path)
	}
}

func (v *validator) proto(field, p string) {
	if p != "tcp" && p != "udp" {
		v.fail(field, "%q is not tcp or udp", p)
	}
}

func (v *validator) net(self string, n *Net) {
	for i, r := range n.LAN {
		f := fmt.Sprintf("net.lan[%d]", i)
		set := 0
		if r.IP != "" {
			set++
			if a, err := netip.ParseAddr(r.IP); err != nil || a.Zone() != "" {
				v.fail(f+".ip", "%q is not an IP address", r.IP)
			}
		}
		if r.MAC != "" {
			set++
			if hw, err := net.ParseMAC(r.MAC); err != nil || len(hw) != 6 {
				v.fail(f+".mac", "%q is not an Ethernet MAC address", r.MAC)
			}
		}
		if r.CIDR != "" {
			set++
			if p, err := netip.ParsePrefix(r.CIDR); err != nil {
				v.fail(f+".cidr", "%q is not a CIDR prefix", r.CIDR)
			} else if p.Masked() != p {
				v.fail(f+".cidr", "%q has host bits set (did you mean %s?)", r.CIDR, p.Masked())
			}
		}
		if set != 1 {
			v.fail(f, "needs exactly one of ip, mac or cidr")
		}
		for j, p := range r.Ports {
			v.intRange(fmt.Sprintf("%s.ports[%d]", f, j), p, 1, 65535)
		}
	}

	type portKey struct {
		port  int
		proto string
	}
	seen := map[portKey]bool{}
	for i, e := range n.Expose {
		f := fmt.Sprintf("net.expose[%d]", i)
		v.intRange(f+".port", e.Port, 1, 65535)
		v.intRange(f+".gateway_port", e.GatewayPort, 1, 65535)
		v.proto(f+".proto", e.Proto)
		// The gateway can listen on each of its ports only once.
		if k := (portKey{e.GatewayPort, e.Proto}); seen[k] {
			v.fail(f+".gateway_port", "%d/%s is exposed twice", e.GatewayPort, e.Proto)
		} else {
			seen[k] = true
		}
	}

	seen = map[portKey]bool{}
	for i, r := range n.Redirect {
		f := fmt.Sprintf("net.redirect[%d]", i)
		if ap, err := netip.ParseAddrPort(r.To); err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
			v.fail(f+".to", "%q is not IP:PORT", r.To)
		}
		v.intRange(f+".port", r.Port, 1, 65535)
		v.proto(f+".proto", r.Proto)
		// A connection to one port can go on to only one place.
		if k := (portKey{r.Port, r.Proto}); seen[k] {
			v.fail(f+".port", "%d/%s is redirected twice", r.Port, r.Proto)
		} else {
			seen[k] = true
		}
	}

	peers := map[string]bool{}
	for i, p := range n.Peers {
		f := fmt.Sprintf("net.peers[%d]", i)
		switch {
		case !nameRE().MatchString(p) || len(p) > maxNameLen:
			v.fail(f, "%q is not a chute name", p)
		case p == self:
			v.fail(f, "a chute is not its own peer")
		case peers[p]:
			v.fail(f, "%q is listed twice", p)
		}
		peers[p] = true
	}
}
