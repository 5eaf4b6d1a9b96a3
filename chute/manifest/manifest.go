package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/semver"
)

// Manifest is a parsed chute.yaml. The YAML keys and the JSON keys are the
// same. Optional sections that have no defaults are pointers; everything else
// holds its default when absent (see the package documentation).
type Manifest struct {
	Name      string            `yaml:"name" json:"name"`
	Version   string            `yaml:"version" json:"version"`
	Command   []string          `yaml:"command" json:"command"`
	Env       map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	User      int               `yaml:"user" json:"user"`
	Resources Resources         `yaml:"resources" json:"resources"`
	Restart   Restart           `yaml:"restart" json:"restart"`
	Health    *Health           `yaml:"health,omitempty" json:"health,omitempty"`
	Update    Update            `yaml:"update" json:"update"`
	StopGrace Duration          `yaml:"stop_grace" json:"stop_grace"`
	Net       Net               `yaml:"net" json:"net"`
	Policy    Policy            `yaml:"policy" json:"policy"`
	// Devices and Capabilities are privileges beyond the default sandbox
	// that the operator must allow (see privileges.go).
	Devices      []Device `yaml:"devices,omitempty" json:"devices,omitempty"`
	Capabilities []string `yaml:"capabilities,omitempty" json:"capabilities,omitempty"`
	// Follow binds the chute to a user's device: it moves to the gateway
	// the device is on (package follow).
	Follow *Follow `yaml:"follow,omitempty" json:"follow,omitempty"`
}

// Follow names the LAN device a chute follows.
type Follow struct {
	MAC string `yaml:"mac" json:"mac"` // a unicast Ethernet MAC
}

// Resources are the limits the gateway enforces on the chute.
type Resources struct {
	CPUWeight int     `yaml:"cpu_weight" json:"cpu_weight"` // cgroup cpu.weight
	CPUMax    float64 `yaml:"cpu_max" json:"cpu_max"`       // cores
	// CPUs confines the chute to these CPUs (the kernel's list syntax,
	// "0", "0-1", "0,2"); "" is every CPU.
	CPUs      string    `yaml:"cpus,omitempty" json:"cpus,omitempty"`
	Memory    Bytes     `yaml:"memory" json:"memory"`
	Pids      int       `yaml:"pids" json:"pids"`
	Disk      Bytes     `yaml:"disk" json:"disk"` // quota of /data
	Tmp       Bytes     `yaml:"tmp" json:"tmp"`   // size of the tmpfs on /tmp
	Bandwidth Bandwidth `yaml:"bandwidth" json:"bandwidth"`
}

// Bandwidth limits the chute's traffic; 0 means unlimited.
type Bandwidth struct {
	Egress  Rate `yaml:"egress" json:"egress"`
	Ingress Rate `yaml:"ingress" json:"ingress"`
}

// Restart policies.
const (
	RestartNo        = "no"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Restart says what to do when the chute's command exits.
type Restart struct {
	Policy     string `yaml:"policy" json:"policy"`
	MaxRetries int    `yaml:"max_retries" json:"max_retries"` // 0 means unlimited
}

// Health is a periodic check of the chute; exactly one of Command and HTTP
// is set.
type Health struct {
	Command  []string      `yaml:"command,omitempty" json:"command,omitempty"`
	HTTP     *HTTPEndpoint `yaml:"http,omitempty" json:"http,omitempty"`
	Interval Duration      `yaml:"interval" json:"interval"`
	Timeout  Duration      `yaml:"timeout" json:"timeout"`
	Retries  int           `yaml:"retries" json:"retries"` // failures in a row that make the chute unhealthy
}

// HTTPEndpoint is an HTTP URL inside the chute: its port and path.
type HTTPEndpoint struct {
	Port int    `yaml:"port" json:"port"`
	Path string `yaml:"path" json:"path"`
}

// Update bounds how an update is judged: the new version must pass its health
// check (or, without one, keep running) for StableFor, within Timeout, or the
// gateway rolls back.
type Update struct {
	StableFor Duration `yaml:"stable_for" json:"stable_for"`
	Timeout   Duration `yaml:"timeout" json:"timeout"`
}

// Net is the chute's network access; by default it has none.
type Net struct {
	WAN      bool       `yaml:"wan" json:"wan"`
	LAN      []LANRule  `yaml:"lan,omitempty" json:"lan,omitempty"`
	Expose   []Expose   `yaml:"expose,omitempty" json:"expose,omitempty"`
	Redirect []Redirect `yaml:"redirect,omitempty" json:"redirect,omitempty"`
	Peers    []string   `yaml:"peers,omitempty" json:"peers,omitempty"`
}

// LANRule lets the chute reach LAN hosts chosen by exactly one of IP, MAC or
// CIDR, on Ports (all ports when empty). Parse writes them in canonical form.
type LANRule struct {
	IP    string `yaml:"ip,omitempty" json:"ip,omitempty"`
	MAC   string `yaml:"mac,omitempty" json:"mac,omitempty"`
	CIDR  string `yaml:"cidr,omitempty" json:"cidr,omitempty"`
	Ports []int  `yaml:"ports,omitempty" json:"ports,omitempty"`
}

// Expose forwards GatewayPort on the gateway to Port in the chute.
type Expose struct {
	Port        int    `yaml:"port" json:"port"`
	GatewayPort int    `yaml:"gateway_port" json:"gateway_port"`
	Proto       string `yaml:"proto" json:"proto"`
}

// Redirect makes the chute answer, transparently, LAN users' requests to
// To (the developer's cloud address, IP:port): they reach the chute's Port,
// and the replies are rewritten to come from To.
type Redirect struct {
	To    string `yaml:"to" json:"to"`
	Port  int    `yaml:"port" json:"port"`
	Proto string `yaml:"proto" json:"proto"`
}

// Policy is how the chute learns of a new resource policy: the gateway POSTs
// it to Hook, if any, and applies it Grace later.
type Policy struct {
	Hook  *Hook    `yaml:"hook,omitempty" json:"hook,omitempty"`
	Grace Duration `yaml:"grace" json:"grace"`
}

// Hook is an endpoint in the chute.
type Hook struct {
	HTTP *HTTPEndpoint `yaml:"http" json:"http"`
}

// withDefaults returns a Manifest holding every default, to be decoded into:
// yaml leaves absent keys alone, so a present key is validated and an absent
// one keeps its default.
func withDefaults() *Manifest {
	return &Manifest{
		Resources: Resources{
			CPUWeight: 100,
			CPUMax:    1.0,
			Memory:    64 * mi,
			Pids:      64,
			Disk:      64 * mi,
			Tmp:       16 * mi,
		},
		Restart:   Restart{Policy: RestartOnFailure, MaxRetries: 5},
		Update:    Update{StableFor: Duration(3 * time.Second), Timeout: Duration(30 * time.Second)},
		StopGrace: Duration(5 * time.Second),
		Policy:    Policy{Grace: Duration(3 * time.Second)},
	}
}

func defaultHealth() *Health {
	return &Health{Interval: Duration(5 * time.Second), Timeout: Duration(2 * time.Second), Retries: 3}
}

// Parse decodes chute.yaml, applies the defaults, validates the result and
// returns it in canonical form. Every error it returns is a defect of the
// manifest (the API answers 400); several are joined with errors.Join.
func Parse(data []byte) (*Manifest, error) {
	// A first pass into a node tree tells which optional sections are
	// present and, on error, which field a line belongs to.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 {
		return nil, errors.New("manifest is empty")
	}
	m := withDefaults()
	if h := lookup(root.Content[0], "health"); h != nil && h.ShortTag() != "!!null" {
		m.Health = defaultHealth()
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(m); err != nil {
		return nil, locate(err, root.Content[0])
	}
	if err := dec.Decode(new(yaml.Node)); err != io.EOF {
		return nil, errors.New("manifest has more than one YAML document")
	}
	for _, e := range []*HTTPEndpoint{healthHTTP(m.Health), hookHTTP(m.Policy.Hook)} {
		if e != nil && e.Path == "" {
			e.Path = "/"
		}
	}
	for i := range m.Net.Expose {
		m.Net.Expose[i].Proto = defaultProto(m.Net.Expose[i].Proto)
	}
	for i := range m.Devices {
		if m.Devices[i].Access == "" {
			m.Devices[i].Access = "rw"
		}
	}
	for i, c := range m.Capabilities {
		m.Capabilities[i] = NormalizeCap(c)
	}
	for i := range m.Net.Redirect {
		m.Net.Redirect[i].Proto = defaultProto(m.Net.Redirect[i].Proto)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	m.canonicalize()
	return m, nil
}

func defaultProto(p string) string {
	if p == "" {
		return "tcp"
	}
	return p
}

func healthHTTP(h *Health) *HTTPEndpoint {
	if h == nil {
		return nil
	}
	return h.HTTP
}

func hookHTTP(h *Hook) *HTTPEndpoint {
	if h == nil {
		return nil
	}
	return h.HTTP
}

// canonicalize rewrites addresses in one spelling so that other packages can
// compare them as strings. It runs after Validate, so they all parse.
func (m *Manifest) canonicalize() {
	for i := range m.Net.LAN {
		r := &m.Net.LAN[i]
		if r.IP != "" {
			r.IP = netip.MustParseAddr(r.IP).String()
		}
		if r.MAC != "" {
			hw, _ := net.ParseMAC(r.MAC)
			r.MAC = hw.String()
		}
		if r.CIDR != "" {
			r.CIDR = netip.MustParsePrefix(r.CIDR).String()
		}
	}
	for i := range m.Net.Redirect {
		r := &m.Net.Redirect[i]
		r.To = netip.MustParseAddrPort(r.To).String()
	}
	if m.Follow != nil {
		hw, _ := net.ParseMAC(m.Follow.MAC)
		m.Follow.MAC = hw.String()
	}
}

// Compare compares two chute versions as semantic versions and returns -1, 0
// or +1 as a is older than, the same as or newer than b.
func Compare(a, b string) (int, error) {
	va, err := semverOf(a)
	if err != nil {
		return 0, err
	}
	vb, err := semverOf(b)
	if err != nil {
		return 0, err
	}
	return semver.Compare(va, vb), nil
}

// errNotSemver is a version that is not MAJOR.MINOR.PATCH with an optional
// pre-release and build, as SemVer 2.0 writes it.
var errNotSemver = errors.New("not a semantic version like 1.2.0")

// semverOf returns version as golang.org/x/mod/semver spells it ("v" before
// it) if it is a full semantic version: no leading "v" and none of the
// shorthands ("1.2") that package accepts. x/mod's parser, unlike
// Masterminds' semver, compiles no regexps at init (200 KB the daemon held
// for its life, a quarter of all its packages' initialisation).
func semverOf(version string) (string, error) {
	core, _, _ := strings.Cut(version, "+")
	core, _, _ = strings.Cut(core, "-")
	v := "v" + version
	if strings.Count(core, ".") != 2 || !semver.IsValid(v) {
		return "", fmt.Errorf("version %q: %w", version, errNotSemver)
	}
	return v, nil
}

// lookup returns the value of key in a mapping node, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// keyPos is a mapping key in the document: its dotted path and where its
// value starts.
type keyPos struct {
	path      string
	key       string
	val       string // a scalar value's text
	line, col int
}

// keys lists every mapping key under n with its path.
func keys(n *yaml.Node, prefix string, out []keyPos) []keyPos {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			val := ""
			if v.Kind == yaml.ScalarNode {
				val = v.Value
			}
			out = append(out, keyPos{p, k.Value, val, k.Line, v.Column})
			out = keys(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			out = keys(c, prefix+"["+strconv.Itoa(i)+"]", out)
		}
	}
	return out
}

var (
	lineRE    = lazyRE(`^line (\d+): (.*)$`)
	unknownRE = lazyRE(`^field (\S+) not found in type \S+$`)
	// yaml quotes the offending value, cut to 7 bytes and "..." if long.
	valueRE = lazyRE("`([^`]*)`")
)

// lazyRE compiles expr at its first use rather than at package init: the
// package is linked into the daemon binary, which every chute start also
// runs as the chute's init, where no manifest is ever read.
func lazyRE(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// locate rewrites yaml's "line N: ..." decoding errors to also name the field
// of that line, so that a developer need not count lines.
func locate(err error, doc *yaml.Node) error {
	all := keys(doc, "", nil)
	// name finds the key on line that matches (by name, or by where its
	// value starts), or the only key on that line.
	name := func(line int, match func(keyPos) bool) string {
		var onLine []keyPos
		for _, k := range all {
			if k.line == line {
				if match(k) {
					return k.path
				}
				onLine = append(onLine, k)
			}
		}
		if len(onLine) == 1 {
			return onLine[0].path
		}
		return ""
	}
	if se, ok := errors.AsType[*scalarError](err); ok {
		if p := name(se.line, func(k keyPos) bool { return k.col == se.col }); p != "" {
			return fmt.Errorf("line %d: %s: %s", se.line, p, se.msg)
		}
		return se
	}
	te, ok := errors.AsType[*yaml.TypeError](err)
	if !ok {
		return err
	}
	var errs []error
	for _, msg := range te.Errors {
		m := lineRE().FindStringSubmatch(msg)
		if m == nil {
			errs = append(errs, errors.New(msg))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		rest := m[2]
		match := func(keyPos) bool { return false }
		if v := valueRE().FindStringSubmatch(rest); v != nil {
			match = func(k keyPos) bool {
				short, cut := strings.CutSuffix(v[1], "...")
				return k.val == v[1] || cut && k.val != "" && strings.HasPrefix(k.val, short)
			}
		}
		if u := unknownRE().FindStringSubmatch(rest); u != nil {
			rest = fmt.Sprintf("unknown key %q", u[1])
			match = func(k keyPos) bool { return k.key == u[1] }
		}
		if p := name(line, match); p != "" {
			msg = fmt.Sprintf("line %d: %s: %s", line, p, rest)
		} else {
			msg = fmt.Sprintf("line %d: %s", line, rest)
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}
