package usp

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"paradrop/chute"
	"paradrop/chute/manifest"
	"paradrop/usp/codec"
)

// The data model's version, as GetSupportedDM names it.
const dataModelURI = "urn:broadband-forum-org:tr-181-2-18-0-usp"

type valueType = codec.GetSupportedDMResp_ParamValueType

// param is a parameter of the supported data model.
type param struct {
	name string
	typ  valueType
	// writable: a controller may set it (the others are read-only).
	writable bool
	// noValueChange: a ValueChange subscription ignores it (it changes
	// all the time).
	noValueChange bool
}

// object is an object of the supported data model; a multi-instance
// object's path ends with "{i}".
type object struct {
	path   []string
	params []param
	keys   [][]string // unique key sets, for multi-instance objects
	// writable: a controller may add and delete instances (the others
	// are read-only).
	writable bool
}

func (o *object) multi() bool { return o.path[len(o.path)-1] == "{i}" }

func (o *object) param(name string) (param, bool) {
	for _, p := range o.params {
		if p.name == name {
			return p, true
		}
	}
	return param{}, false
}

var (
	str   = codec.GetSupportedDMResp_PARAM_STRING
	uintT = codec.GetSupportedDMResp_PARAM_UNSIGNED_INT
	boolT = codec.GetSupportedDMResp_PARAM_BOOLEAN
)

// The supported data model (TR-181 names): only what is true of this
// gateway.
var (
	device     = &object{path: []string{"Device"}}
	deviceInfo = &object{path: []string{"Device", "DeviceInfo"}, params: []param{
		{name: "Manufacturer", typ: str}, {name: "ModelName", typ: str}, {name: "SerialNumber", typ: str},
		{name: "SoftwareVersion", typ: str}, {name: "UpTime", typ: uintT, noValueChange: true},
	}}
	localAgent = &object{path: []string{"Device", "LocalAgent"}, params: []param{
		{name: "EndpointID", typ: str}, {name: "ControllerNumberOfEntries", typ: uintT},
	}}
	controller = &object{path: []string{"Device", "LocalAgent", "Controller", "{i}"}, params: []param{
		{name: "EndpointID", typ: str}, {name: "Enable", typ: boolT}, {name: "MTPNumberOfEntries", typ: uintT},
	}, keys: [][]string{{"EndpointID"}}}
	controllerMTP = &object{path: []string{"Device", "LocalAgent", "Controller", "{i}", "MTP", "{i}"}, params: []param{
		{name: "Protocol", typ: str}, {name: "Enable", typ: boolT},
	}, keys: [][]string{{"Protocol"}}}
	controllerMQTT = &object{path: []string{"Device", "LocalAgent", "Controller", "{i}", "MTP", "{i}", "MQTT"}, params: []param{
		{name: "Topic", typ: str},
	}}
	requestObj = &object{path: []string{"Device", "LocalAgent", "Request", "{i}"}, params: []param{
		{name: "Originator", typ: str}, {name: "Command", typ: str}, {name: "CommandKey", typ: str}, {name: "Status", typ: str},
	}}
	subscriptionObj = &object{path: []string{"Device", "LocalAgent", "Subscription", "{i}"}, params: []param{
		{name: "Enable", typ: boolT, writable: true}, {name: "ID", typ: str, writable: true},
		{name: "NotifType", typ: str, writable: true}, {name: "ReferenceList", typ: str, writable: true},
		{name: "NotifRetry", typ: boolT, writable: true}, {name: "Recipient", typ: str}, {name: "Persistent", typ: boolT},
		{name: "CreationDate", typ: str},
	}, keys: [][]string{{"Recipient", "ID"}}, writable: true}
	softwareModules = &object{path: []string{"Device", "SoftwareModules"}, params: []param{
		{name: "ExecEnvNumberOfEntries", typ: uintT},
		{name: "DeploymentUnitNumberOfEntries", typ: uintT}, {name: "ExecutionUnitNumberOfEntries", typ: uintT},
	}}
	execEnv = &object{path: []string{"Device", "SoftwareModules", "ExecEnv", "{i}"}, params: []param{
		{name: "Enable", typ: boolT}, {name: "Status", typ: str}, {name: "Name", typ: str}, {name: "Type", typ: str},
		{name: "Vendor", typ: str}, {name: "Version", typ: str},
		{name: "AvailableDiskSpace", typ: uintT, noValueChange: true}, {name: "AvailableMemory", typ: uintT, noValueChange: true},
		{name: "ActiveExecutionUnits", typ: str},
	}, keys: [][]string{{"Name"}}}
	deploymentUnit = &object{path: []string{"Device", "SoftwareModules", "DeploymentUnit", "{i}"}, params: []param{
		{name: "UUID", typ: str}, {name: "DUID", typ: str}, {name: "Name", typ: str}, {name: "Status", typ: str},
		{name: "Resolved", typ: boolT}, {name: "URL", typ: str}, {name: "Vendor", typ: str}, {name: "Version", typ: str},
		{name: "ExecutionUnitList", typ: str}, {name: "ExecutionEnvRef", typ: str},
		{name: "X_ParaDrop_Follow", typ: str},
	}, keys: [][]string{{"DUID"}, {"UUID"}}}
	executionUnit = &object{path: []string{"Device", "SoftwareModules", "ExecutionUnit", "{i}"}, params: []param{
		{name: "EUID", typ: str}, {name: "Name", typ: str}, {name: "Status", typ: str}, {name: "RequestedState", typ: str},
		{name: "ExecutionFaultCode", typ: str}, {name: "ExecutionFaultMessage", typ: str},
		{name: "AutoStart", typ: boolT}, {name: "Vendor", typ: str}, {name: "Version", typ: str},
		{name: "AllocatedMemory", typ: uintT}, {name: "AllocatedDiskSpace", typ: uintT}, {name: "AllocatedCPUPercent", typ: uintT},
		{name: "MemoryInUse", typ: uintT, noValueChange: true}, {name: "DiskSpaceInUse", typ: uintT, noValueChange: true},
		{name: "ExecutionEnvRef", typ: str},
	}, keys: [][]string{{"EUID"}}}

	// model lists them parents first.
	model = []*object{device, deviceInfo, localAgent, controller, controllerMTP, controllerMQTT, requestObj, subscriptionObj,
		softwareModules, execEnv, deploymentUnit, executionUnit, hostsObj, hostObj, hostIPv4Obj}
)

// execEnvRef is the one ExecEnv: this gateway's chute runtime.
const execEnvRef = "Device.SoftwareModules.ExecEnv.1"

// instance is an object of the instantiated data model with its values.
type instance struct {
	path   []string
	obj    *object
	values map[string]string
}

func (in instance) name() string { return strings.Join(in.path, ".") + "." }

// duNamespace names the DUs' UUIDs (RFC 4122 version 5 of the chute's
// name): stable across restarts and reinstalls of the same chute.
var duNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://paradrop.org/usp/deployment-unit"))

// snapshot takes the instantiated data model as the controller from, of
// scope ctl, sees it: a developer's controller sees its developer's chutes
// only, and each controller its own requests.
func (a *Agent) snapshot(from string, ctl Controller) *snapshot {
	all := a.cfg.Chutes.List()
	nums := a.numbers(all) // of all chutes: numbers are the gateway's
	var chutes []chute.Info
	for _, c := range all {
		if ctl.sees(c.Owner) {
			chutes = append(chutes, c)
		}
	}
	d := a.cfg.Device
	up := "0"
	if d.UpTime != nil {
		up = strconv.FormatInt(int64(d.UpTime()/time.Second), 10)
	}
	out := []instance{
		at(device, nil),
		at(deviceInfo, map[string]string{
			"Manufacturer": d.Manufacturer, "ModelName": d.ModelName, "SerialNumber": d.SerialNumber,
			"SoftwareVersion": d.SoftwareVersion, "UpTime": up,
		}),
		at(localAgent, map[string]string{
			"EndpointID": a.cfg.EndpointID, "ControllerNumberOfEntries": strconv.Itoa(len(a.cfg.Controllers)),
		}),
	}
	// The controllers are fixed while the agent runs: numbered in the
	// order of their IDs, each with its one MQTT MTP.
	for i, id := range slices.Sorted(maps.Keys(a.cfg.Controllers)) {
		n := strconv.Itoa(i + 1)
		out = append(out,
			at(controller, map[string]string{"EndpointID": id, "Enable": "true", "MTPNumberOfEntries": "1"}, n),
			at(controllerMTP, map[string]string{"Protocol": "MQTT", "Enable": "true"}, n, "1"),
			at(controllerMQTT, map[string]string{"Topic": a.cfg.Controllers[id].Topic}, n, "1"))
	}
	out = append(out, a.ops.instances(from)...)
	out = append(out, a.subs.instances(from, a.recipient(from))...)
	out = append(out, at(softwareModules, map[string]string{
		"ExecEnvNumberOfEntries":        "1",
		"DeploymentUnitNumberOfEntries": strconv.Itoa(len(chutes)),
		"ExecutionUnitNumberOfEntries":  strconv.Itoa(len(chutes)),
	}))
	var mem, disk uint64
	if a.cfg.Available != nil {
		mem, disk = a.cfg.Available()
	}
	var active []string
	for _, c := range chutes {
		if c.State == chute.Running {
			active = append(active, "Device.SoftwareModules.ExecutionUnit."+strconv.FormatUint(uint64(nums[c.Name]), 10))
		}
	}
	out = append(out, at(execEnv, map[string]string{
		"Enable": "true", "Status": "Up", "Name": "paradrop", "Type": "Linux namespaces and cgroups",
		"Vendor": "ParaDrop", "Version": d.SoftwareVersion,
		"AvailableMemory": strconv.FormatUint(mem, 10), "AvailableDiskSpace": strconv.FormatUint(disk, 10),
		"ActiveExecutionUnits": strings.Join(active, ","),
	}, "1"))
	// A chute is one DU with one EU, both of its instance number.
	for _, c := range chutes {
		n := strconv.FormatUint(uint64(nums[c.Name]), 10)
		out = append(out, at(deploymentUnit, map[string]string{
			"UUID": uuid.NewSHA1(duNamespace, []byte(c.Name)).String(), "DUID": c.Name, "Name": c.Name,
			"Status": duStatus(c.State), "Resolved": "true", "URL": a.url(c.Name), "Vendor": string(c.Owner),
			"Version": c.Version, "ExecutionUnitList": "Device.SoftwareModules.ExecutionUnit." + n,
			"ExecutionEnvRef": execEnvRef, "X_ParaDrop_Follow": followOf(c),
		}, n))
	}
	var inUse map[string]Use
	if a.cfg.InUse != nil && len(chutes) > 0 {
		inUse = a.cfg.InUse()
	}
	for _, c := range chutes {
		n := strconv.FormatUint(uint64(nums[c.Name]), 10)
		code, msg := fault(c)
		use := inUse[c.Name]
		mem, disk, cpu := allocated(c)
		out = append(out, at(executionUnit, map[string]string{
			"EUID": c.Name, "Name": c.Name, "Status": euStatus(c.State), "RequestedState": euStatus(c.Desired),
			"ExecutionFaultCode": code, "ExecutionFaultMessage": msg,
			"AutoStart": strconv.FormatBool(c.Desired == chute.Running), "Vendor": string(c.Owner), "Version": c.Version,
			"AllocatedMemory": mem, "AllocatedDiskSpace": disk, "AllocatedCPUPercent": cpu,
			"MemoryInUse": strconv.FormatUint(use.Memory>>10, 10), "DiskSpaceInUse": strconv.FormatUint(use.Disk>>10, 10),
			"ExecutionEnvRef": execEnvRef,
		}, n))
	}
	out = append(out, a.hostInstances(ctl)...)
	return newSnapshot(out)
}

// recipient is the path of the controller from's object.
func (a *Agent) recipient(from string) string {
	i := slices.Index(slices.Sorted(maps.Keys(a.cfg.Controllers)), from)
	return "Device.LocalAgent.Controller." + strconv.Itoa(i+1)
}

// allocated is what the chute's manifest asks for: memory and disk in
// KiB, CPU in percent of one core; 0 where it sets no limit.
func allocated(c chute.Info) (mem, disk, cpu string) {
	man, _ := c.Manifest.(*manifest.Manifest)
	if man == nil {
		return "0", "0", "0"
	}
	r := man.Resources
	return strconv.FormatInt(int64(r.Memory)>>10, 10), strconv.FormatInt(int64(r.Disk)>>10, 10),
		strconv.FormatInt(int64(r.CPUMax*100+0.5), 10)
}

// url is the URL the agent installed chute name from ("" for one
// installed through the API).
func (a *Agent) url(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.urls[name]
}

func (a *Agent) setURL(name, url string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if url == "" {
		delete(a.urls, name)
		return
	}
	a.urls[name] = url
}

// number is chute name's instance number, given one if it has none yet.
func (a *Agent) number(name string) uint32 {
	a.mu.Lock()
	n, ok := a.nums[name]
	a.mu.Unlock()
	if ok {
		return n
	}
	return a.numbers(a.cfg.Chutes.List())[name]
}

func (a *Agent) numberString(name string) string {
	return strconv.FormatUint(uint64(a.number(name)), 10)
}

// at is the instance of o with these instance numbers, in order, for its
// "{i}".
func at(o *object, values map[string]string, nums ...string) instance {
	path := slices.Clone(o.path)
	for i, s := range path {
		if s == "{i}" {
			path[i], nums = nums[0], nums[1:]
		}
	}
	return instance{path: path, obj: o, values: values}
}

// numbers gives each chute its instance number: kept while the chute
// exists, never reused, across restarts too (R-ARC.8; state.go).
func (a *Agent) numbers(chutes []chute.Info) map[string]uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := make(map[string]uint32, len(chutes))
	changed := len(chutes) != len(a.nums)
	for _, c := range chutes {
		n, ok := a.nums[c.Name]
		if !ok {
			a.next++
			n, changed = a.next, true
		}
		seen[c.Name] = n
	}
	a.nums = seen
	if changed {
		a.keepNumbers()
	}
	return seen
}

// duStatus is TR-181's DeploymentUnit.Status of a chute.
func duStatus(s chute.State) string {
	switch s {
	case chute.Installing:
		return "Installing"
	case chute.Updating:
		return "Updating"
	}
	return "Installed"
}

// euStatus is TR-181's ExecutionUnit.Status of a chute.
func euStatus(s chute.State) string {
	switch s {
	case chute.Running:
		return "Active"
	case chute.Starting:
		return "Starting"
	case chute.Stopping:
		return "Stopping"
	}
	return "Idle"
}

// fault is TR-181's ExecutionFaultCode and message of a chute.
func fault(c chute.Info) (string, string) {
	if c.State != chute.Failed {
		return "NoFault", ""
	}
	msg := c.Error
	if msg == "" {
		msg = c.LastExit
	}
	if c.StartedAt == nil {
		return "FailureOnStart", msg
	}
	return "FailureWhileActive", msg
}

// supportedPath is the supported data model path of p: instance numbers
// and "*" read as "{i}".
func supportedPath(segs []string) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		if s == "*" || instanceNumber(s) || s[0] == '[' {
			s = "{i}"
		}
		out[i] = s
	}
	return out
}

// findObject is the supported object at segs (in supported form), which
// may name a multi-instance object without its "{i}".
func findObject(segs []string) *object {
	for _, o := range model {
		if slices.Equal(o.path, segs) || (o.multi() && slices.Equal(o.path[:len(o.path)-1], segs)) {
			return o
		}
	}
	return nil
}

// snapshot is the instantiated data model at one instant, parents first.
type snapshot struct {
	list   []instance
	byName map[string]map[string]string // values by instance path name
}

func newSnapshot(list []instance) *snapshot {
	s := &snapshot{list: list, byName: make(map[string]map[string]string, len(list))}
	for _, in := range list {
		s.byName[in.name()] = in.values
	}
	return s
}

// matches says whether the instantiated path segs starts with the first
// n segments of p: "*" and search expressions match instance numbers,
// the latter if the instance's values satisfy them.
func (s *snapshot) matches(p Path, n int, segs []string) bool {
	if len(segs) < n {
		return false
	}
	for i, r := range p.Segs[:n] {
		if r == segs[i] {
			continue
		}
		if !instanceNumber(segs[i]) {
			return false
		}
		if conds, ok := p.search[i]; ok {
			if !holds(conds, s.byName[strings.Join(segs[:i+1], ".")+"."]) {
				return false
			}
		} else if r != "*" {
			return false
		}
	}
	return true
}

// searchable says whether each search expression of p names parameters
// of the object it filters.
func (p Path) searchable() bool {
	for i, conds := range p.search {
		o := findObject(supportedPath(p.Segs[:i+1]))
		for _, c := range conds {
			if o == nil {
				return false
			}
			if _, ok := o.param(c.param); !ok {
				return false
			}
		}
	}
	return true
}

// depth counts the levels of segs below req: a table and its instance
// are one level.
func depth(req, segs []string) int {
	d := 0
	for _, s := range segs[len(req):] {
		if s != "{i}" && !instanceNumber(s) {
			d++
		}
	}
	return d
}
