package ovsdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"time"
)

// VSwitchDB is the name of Open vSwitch's configuration database.
const VSwitchDB = "Open_vSwitch"

// ErrNotFound is returned (wrapped) when a named bridge or port does not
// exist.
var ErrNotFound = errors.New("not found")

// BridgeConfig is the desired state of a bridge. Zero fields mean the Open
// vSwitch default, and EnsureBridge resets them to it.
type BridgeConfig struct {
	Name string
	// DatapathType is "netdev" (userspace) or "system" (kernel module).
	DatapathType string
	// DatapathID pins the OpenFlow datapath id (other_config:datapath-id)
	// as 16 hex digits; empty lets OVS derive it from a MAC address.
	DatapathID string
	// Protocols lists allowed OpenFlow versions, e.g. "OpenFlow13".
	Protocols []string
	// FailMode is "secure" (no flows but the controller's) or "standalone".
	FailMode string
	// DisableInBand stops OVS from installing hidden in-band control flows
	// (other_config:disable-in-band).
	DisableInBand bool
	// Controller is the controller target, e.g. "tcp:127.0.0.1:6653".
	Controller string
	// HWAddr pins the MAC of the bridge's own port (other_config:hwaddr);
	// nil lets OVS pick the lowest universal MAC among the bridge's ports,
	// which changes as ports come and go.
	HWAddr net.HardwareAddr
}

func (cfg BridgeConfig) validate() error {
	if cfg.Name == "" {
		return errors.New("empty bridge name")
	}
	switch cfg.DatapathType {
	case "", "netdev", "system":
	default:
		return fmt.Errorf("datapath type %q is not netdev or system", cfg.DatapathType)
	}
	if cfg.DatapathID != "" {
		if len(cfg.DatapathID) != 16 {
			return fmt.Errorf("datapath id %q is not 16 hex digits", cfg.DatapathID)
		}
		for _, r := range cfg.DatapathID {
			if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
				return fmt.Errorf("datapath id %q is not 16 hex digits", cfg.DatapathID)
			}
		}
	}
	switch cfg.FailMode {
	case "", "secure", "standalone":
	default:
		return fmt.Errorf("fail mode %q is not secure or standalone", cfg.FailMode)
	}
	if cfg.HWAddr != nil && (len(cfg.HWAddr) != 6 || cfg.HWAddr[0]&1 != 0 || bytes.Equal(cfg.HWAddr, make([]byte, 6))) {
		return fmt.Errorf("bridge MAC %s is not a unicast Ethernet address", cfg.HWAddr)
	}
	return nil
}

// isWaitConflict reports whether a transaction failed on a zero-timeout
// wait op, i.e. what it read changed before it wrote.
func isWaitConflict(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.OpName == "wait" && e.Err == "timed out"
}

// retryConflicts runs a read-modify-write step again while it loses races
// to other writers.
func retryConflicts(ctx context.Context, step func() error) error {
	for attempt := 0; ; attempt++ {
		err := step()
		if !isWaitConflict(err) || attempt == 4 || ctx.Err() != nil {
			return err
		}
	}
}

// EnsureBridge creates the bridge described by cfg, or corrects an existing
// bridge of that name to match it. Other other_config keys are preserved.
// It does not wait for ovs-vswitchd to apply the change.
func (c *Client) EnsureBridge(ctx context.Context, cfg BridgeConfig) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("ensure bridge %q: %w", cfg.Name, err)
	}
	if err := retryConflicts(ctx, func() error { return c.ensureBridge(ctx, cfg) }); err != nil {
		return fmt.Errorf("ensure bridge %q: %w", cfg.Name, err)
	}
	return nil
}

func (c *Client) ensureBridge(ctx context.Context, cfg BridgeConfig) error {
	res, err := c.Transact(ctx, VSwitchDB,
		Select("Bridge", []Condition{Eq("name", cfg.Name)},
			"_uuid", "datapath_type", "protocols", "fail_mode", "other_config", "controller"),
		Select("Controller", nil, "_uuid", "target"))
	if err != nil {
		return err
	}
	if len(res[0].Rows) == 0 {
		return c.createBridge(ctx, cfg)
	}
	br := res[0].Rows[0]

	upd := Row{}
	if br.String("datapath_type") != cfg.DatapathType {
		upd["datapath_type"] = cfg.DatapathType
	}
	if !sameStrings(br.Strings("protocols"), cfg.Protocols) {
		upd["protocols"] = stringSet(cfg.Protocols)
	}
	if br.String("fail_mode") != cfg.FailMode {
		upd["fail_mode"] = optional(cfg.FailMode)
	}
	oldOther := br.StringMap("other_config")
	if newOther := cfg.otherConfig(oldOther); !maps.Equal(oldOther, newOther) {
		upd["other_config"] = StringMap(newOther)
	}

	var ops []Operation
	targets := make(map[UUID]string)
	for _, r := range res[1].Rows {
		targets[r.UUID()] = r.String("target")
	}
	ctls := br.UUIDs("controller")
	switch {
	case cfg.Controller == "" && len(ctls) > 0:
		upd["controller"] = Set{}
	case cfg.Controller != "" && (len(ctls) != 1 || targets[ctls[0]] != cfg.Controller):
		// Replacing the row rather than editing its target drops any
		// stale settings; the old row is garbage collected.
		ops = append(ops, Insert("Controller", Row{"target": cfg.Controller}, "ctl"))
		upd["controller"] = Set{NamedUUID("ctl")}
	}
	if len(upd) == 0 {
		return nil
	}
	self := []Condition{Eq("_uuid", br.UUID())}
	guard := Wait("Bridge", self, []string{"other_config", "controller"}, "==",
		[]Row{{"other_config": br["other_config"], "controller": br["controller"]}}, 0)
	ops = append([]Operation{guard}, ops...)
	ops = append(ops, Update("Bridge", self, upd))
	_, err = c.Transact(ctx, VSwitchDB, ops...)
	return err
}

func (c *Client) createBridge(ctx context.Context, cfg BridgeConfig) error {
	row := Row{
		"name":          cfg.Name,
		"ports":         Set{NamedUUID("port")},
		"datapath_type": cfg.DatapathType,
		"protocols":     stringSet(cfg.Protocols),
		"fail_mode":     optional(cfg.FailMode),
		"other_config":  StringMap(cfg.otherConfig(nil)),
	}
	ops := []Operation{
		// Like ovs-vsctl add-br: the bridge's own internal port.
		Insert("Interface", Row{"name": cfg.Name, "type": "internal"}, "iface"),
		Insert("Port", Row{"name": cfg.Name, "interfaces": Set{NamedUUID("iface")}}, "port"),
	}
	if cfg.Controller != "" {
		ops = append(ops, Insert("Controller", Row{"target": cfg.Controller}, "ctl"))
		row["controller"] = Set{NamedUUID("ctl")}
	}
	ops = append(ops,
		Insert("Bridge", row, "br"),
		Mutate("Open_vSwitch", nil, Mutation{"bridges", "insert", Set{NamedUUID("br")}}),
		Comment("paradrop: ensure bridge "+cfg.Name))
	res, err := c.Transact(ctx, VSwitchDB, ops...)
	if err != nil {
		return err
	}
	if res[len(res)-2].Count != 1 {
		// The unreferenced bridge was garbage collected with the commit.
		return errors.New("database has no Open_vSwitch row (not initialized)")
	}
	return nil
}

// otherConfig returns old with the keys EnsureBridge manages set to cfg.
func (cfg BridgeConfig) otherConfig(old map[string]string) map[string]string {
	m := maps.Clone(old)
	if m == nil {
		m = map[string]string{}
	}
	delete(m, "datapath-id")
	delete(m, "disable-in-band")
	delete(m, "hwaddr")
	if cfg.DatapathID != "" {
		m["datapath-id"] = toLowerHex(cfg.DatapathID)
	}
	if cfg.HWAddr != nil {
		m["hwaddr"] = cfg.HWAddr.String()
	}
	if cfg.DisableInBand {
		m["disable-in-band"] = "true"
	}
	return m
}

func toLowerHex(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func optional(s string) any {
	if s == "" {
		return Set{}
	}
	return s
}

func stringSet(ss []string) Set {
	s := make(Set, len(ss))
	for i, v := range ss {
		s[i] = v
	}
	return s
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// AddPort attaches interface portName (ifaceType "" for an existing system
// device such as a veth end, "internal" for an OVS-created one) to bridge
// as a port of the same name, with externalIDs as the interface's
// external_ids. An existing port on that bridge is corrected instead.
// Use OFPort to learn its OpenFlow port number.
func (c *Client) AddPort(ctx context.Context, bridge, portName, ifaceType string, externalIDs map[string]string) error {
	err := retryConflicts(ctx, func() error { return c.addPort(ctx, bridge, portName, ifaceType, externalIDs) })
	if err != nil {
		return fmt.Errorf("add port %q to bridge %q: %w", portName, bridge, err)
	}
	return nil
}

func (c *Client) addPort(ctx context.Context, bridge, portName, ifaceType string, externalIDs map[string]string) error {
	res, err := c.Transact(ctx, VSwitchDB,
		Select("Bridge", []Condition{Eq("name", bridge)}, "_uuid", "ports"),
		Select("Port", []Condition{Eq("name", portName)}, "_uuid"),
		Select("Interface", []Condition{Eq("name", portName)}, "_uuid", "type", "external_ids"))
	if err != nil {
		return err
	}
	if len(res[0].Rows) == 0 {
		return fmt.Errorf("bridge %w", ErrNotFound)
	}
	br := res[0].Rows[0]
	if len(res[1].Rows) == 0 {
		res, err := c.Transact(ctx, VSwitchDB,
			Insert("Interface", Row{"name": portName, "type": ifaceType, "external_ids": StringMap(externalIDs)}, "iface"),
			Insert("Port", Row{"name": portName, "interfaces": Set{NamedUUID("iface")}}, "port"),
			Mutate("Bridge", []Condition{Eq("_uuid", br.UUID())}, Mutation{"ports", "insert", Set{NamedUUID("port")}}))
		if err != nil {
			return err
		}
		if res[2].Count != 1 {
			return fmt.Errorf("bridge %w (deleted meanwhile)", ErrNotFound)
		}
		return nil
	}
	if !slices.Contains(br.UUIDs("ports"), res[1].Rows[0].UUID()) {
		return errors.New("a port of that name is on another bridge")
	}
	if len(res[2].Rows) == 0 {
		return errors.New("port exists without an interface of the same name")
	}
	iface := res[2].Rows[0]
	upd := Row{}
	if iface.String("type") != ifaceType {
		upd["type"] = ifaceType
	}
	if ext := iface.StringMap("external_ids"); !maps.Equal(ext, externalIDs) && (len(ext) > 0 || len(externalIDs) > 0) {
		upd["external_ids"] = StringMap(externalIDs)
	}
	if len(upd) == 0 {
		return nil
	}
	_, err = c.Transact(ctx, VSwitchDB, Update("Interface", []Condition{Eq("_uuid", iface.UUID())}, upd))
	return err
}

// DeletePort removes port portName from bridge; its Port and Interface rows
// go with it. Deleting a port that does not exist is not an error.
func (c *Client) DeletePort(ctx context.Context, bridge, portName string) error {
	res, err := c.Transact(ctx, VSwitchDB,
		Select("Bridge", []Condition{Eq("name", bridge)}, "_uuid", "ports"),
		Select("Port", []Condition{Eq("name", portName)}, "_uuid"))
	if err != nil {
		return fmt.Errorf("delete port %q from bridge %q: %w", portName, bridge, err)
	}
	if len(res[0].Rows) == 0 {
		return fmt.Errorf("delete port %q from bridge %q: bridge %w", portName, bridge, ErrNotFound)
	}
	if len(res[1].Rows) == 0 {
		return nil
	}
	port := res[1].Rows[0].UUID()
	br := res[0].Rows[0]
	if !slices.Contains(br.UUIDs("ports"), port) {
		return fmt.Errorf("delete port %q from bridge %q: port is on another bridge", portName, bridge)
	}
	// Port and Interface are not root tables: dropping the reference
	// deletes them.
	_, err = c.Transact(ctx, VSwitchDB,
		Mutate("Bridge", []Condition{Eq("_uuid", br.UUID())}, Mutation{"ports", "delete", Set{port}}))
	if err != nil {
		return fmt.Errorf("delete port %q from bridge %q: %w", portName, bridge, err)
	}
	return nil
}

// ListPorts returns the sorted names of bridge's ports, without the
// bridge's own internal port (as ovs-vsctl list-ports does).
func (c *Client) ListPorts(ctx context.Context, bridge string) ([]string, error) {
	res, err := c.Transact(ctx, VSwitchDB,
		Select("Bridge", []Condition{Eq("name", bridge)}, "ports"),
		Select("Port", nil, "_uuid", "name"))
	if err != nil {
		return nil, fmt.Errorf("list ports of bridge %q: %w", bridge, err)
	}
	if len(res[0].Rows) == 0 {
		return nil, fmt.Errorf("list ports of bridge %q: bridge %w", bridge, ErrNotFound)
	}
	ports := res[0].Rows[0].UUIDs("ports")
	var names []string
	for _, p := range res[1].Rows {
		if name := p.String("name"); name != bridge && slices.Contains(ports, p.UUID()) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// OFPort waits until ovs-vswitchd has assigned interface ifaceName an
// OpenFlow port number and returns it (OFPP_LOCAL, 0xfffe, for a bridge's
// own port). It waits until ctx is done; the error then includes the
// interface's error column, e.g. a missing device.
func (c *Client) OFPort(ctx context.Context, ifaceName string) (uint32, error) {
	row, err := c.waitInterface(ctx, ifaceName, "ofport", func(r Row) bool {
		n, ok := r.Int("ofport")
		return ok && n > 0 && (n < 0xff00 || n == 0xfffe)
	})
	if err != nil {
		return 0, fmt.Errorf("ofport of interface %q: %w", ifaceName, err)
	}
	n, _ := row.Int("ofport")
	return uint32(n), nil
}

// WaitInterfaceMAC waits until ovs-vswitchd reports interface ifaceName
// using mac (mac_in_use), as it does once it has applied a bridge's
// hwaddr to the bridge's own port.
func (c *Client) WaitInterfaceMAC(ctx context.Context, ifaceName string, mac net.HardwareAddr) error {
	_, err := c.waitInterface(ctx, ifaceName, "mac_in_use", func(r Row) bool {
		got, err := net.ParseMAC(r.String("mac_in_use"))
		return err == nil && bytes.Equal(got, mac)
	})
	if err != nil {
		return fmt.Errorf("interface %q to use MAC %s: %w", ifaceName, mac, err)
	}
	return nil
}

// waitInterface monitors the Interface table until the row named name
// satisfies ready. ready runs on the monitor goroutine, one call at a time.
func (c *Client) waitInterface(ctx context.Context, name, column string, ready func(Row) bool) (Row, error) {
	found := make(chan Row, 1)
	var mu sync.Mutex
	var lastErr string // the interface's error column, for the timeout message
	m, err := c.Monitor(ctx, VSwitchDB, map[string][]string{"Interface": {"name", "error", column}}, func(tu TableUpdates) {
		for _, ru := range tu["Interface"] {
			if ru.New == nil || ru.New.String("name") != name {
				continue
			}
			mu.Lock()
			lastErr = ru.New.String("error")
			mu.Unlock()
			if ready(ru.New) {
				select {
				case found <- ru.New:
				default:
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		m.Cancel(cctx) // best effort: the row wait is over either way
		cancel()
	}()
	select {
	case r := <-found:
		return r, nil
	case <-c.Done():
		return nil, c.Err()
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		if lastErr != "" {
			return nil, fmt.Errorf("%w (interface error: %s)", ctx.Err(), lastErr)
		}
		return nil, ctx.Err()
	}
}
