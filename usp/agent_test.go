package usp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"paradrop/chute"
	"paradrop/usp/codec"
)

const (
	agentID = "os::test-agent"
	ctrlID  = "self::ctrl"
)

type fakeChutes []chute.Info

func (f *fakeChutes) List() []chute.Info { return slices.Clone(*f) }

// The fake's changes are done at once; Install and Update are not faked
// (the tests with a real daemon run them).
func (f *fakeChutes) Install(context.Context, io.Reader, chute.Origin) (chute.Change, error) {
	return chute.Change{}, errors.New("fake: no install")
}

func (f *fakeChutes) Update(context.Context, string, io.Reader, bool, chute.Origin) (chute.Change, error) {
	return chute.Change{}, errors.New("fake: no update")
}

func (f *fakeChutes) set(name string, fn func(*chute.Info)) (chute.Change, error) {
	for i := range *f {
		if (*f)[i].Name == name {
			fn(&(*f)[i])
			return chute.Change{Chute: name, State: chute.ChangeDone}, nil
		}
	}
	return chute.Change{}, chute.ErrNotFound
}

func (f *fakeChutes) Remove(name string, _ bool, _ chute.Actor) (chute.Change, error) {
	ch, err := f.set(name, func(*chute.Info) {})
	*f = slices.DeleteFunc(*f, func(c chute.Info) bool { return c.Name == name })
	return ch, err
}

func (f *fakeChutes) Start(name string, _ chute.Actor) (chute.Change, error) {
	return f.set(name, func(c *chute.Info) { c.State, c.Desired = chute.Running, chute.Running })
}

func (f *fakeChutes) Stop(name string, _ chute.Actor) (chute.Change, error) {
	return f.set(name, func(c *chute.Info) { c.State, c.Desired = chute.Stopped, chute.Stopped })
}

func (f *fakeChutes) Restart(name string, _ chute.Actor) (chute.Change, error) {
	return f.set(name, func(c *chute.Info) { c.Restarts++ })
}

func (f *fakeChutes) WaitChange(_ context.Context, id uint64) (chute.Change, error) {
	return chute.Change{ID: id, State: chute.ChangeDone}, nil
}

func testAgent(t testing.TB, chutes *fakeChutes, edit func(*Config)) *Agent {
	t.Helper()
	cfg := Config{
		EndpointID:  agentID,
		Controllers: map[string]Controller{ctrlID: {Topic: "usp/controllers/ctrl"}},
		Device: DeviceInfo{Manufacturer: "PC Engines", ModelName: "APU2", SerialNumber: "abc123",
			SoftwareVersion: "v1.2.3", UpTime: func() time.Duration { return 90 * time.Second }},
		Chutes: chutes,
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func twoChutes() *fakeChutes {
	started := time.Now()
	return &fakeChutes{
		{Name: "hello", Version: "1.0", State: chute.Running, Desired: chute.Running, StartedAt: &started},
		{Name: "web", Version: "2.1", State: chute.Failed, Desired: chute.Running, Error: "exec: not found"},
	}
}

// ask sends req from one endpoint to another and returns the answer, or
// nil if none.
func ask(t *testing.T, a *Agent, from string, req *codec.Request) *codec.Msg {
	t.Helper()
	msg := &codec.Msg{Header: &codec.Header{MsgId: "m-1", MsgType: codec.Header_GET}, Body: &codec.Body{MsgBody: &codec.Body_Request{Request: req}}}
	data, err := codec.Wrap(msg, from, agentID)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAnswer(t, a.Handle(data), from)
}

func decodeAnswer(t *testing.T, out []byte, to string) *codec.Msg {
	t.Helper()
	if out == nil {
		return nil
	}
	rec, msg, err := codec.Unwrap(out, to, 1<<20)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	if rec.FromId != agentID || msg.Header.MsgId != "m-1" {
		t.Fatalf("answer from %q to message %q", rec.FromId, msg.Header.MsgId)
	}
	return msg
}

func getReq(depth uint32, paths ...string) *codec.Request {
	return &codec.Request{ReqType: &codec.Request_Get{Get: &codec.Get{ParamPaths: paths, MaxDepth: depth}}}
}

// flat renders a GetResp as "path: code" and "resolved.param=value" lines.
func flat(r *codec.GetResp) []string {
	var out []string
	for _, p := range r.ReqPathResults {
		if p.ErrCode != 0 {
			out = append(out, fmt.Sprintf("%s: %d", p.RequestedPath, p.ErrCode))
		}
		for _, res := range p.ResolvedPathResults {
			for k, v := range res.ResultParams {
				out = append(out, res.ResolvedPath+k+"="+v)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestGet(t *testing.T) {
	a := testAgent(t, twoChutes(), nil)
	for _, tc := range []struct {
		name  string
		depth uint32
		paths []string
		want  []string
	}{
		{"parameter", 0, []string{"Device.DeviceInfo.Manufacturer", "Device.LocalAgent.EndpointID"},
			[]string{"Device.DeviceInfo.Manufacturer=PC Engines", "Device.LocalAgent.EndpointID=" + agentID}},
		{"object", 0, []string{"Device.DeviceInfo."}, []string{
			"Device.DeviceInfo.Manufacturer=PC Engines", "Device.DeviceInfo.ModelName=APU2",
			"Device.DeviceInfo.SerialNumber=abc123", "Device.DeviceInfo.SoftwareVersion=v1.2.3", "Device.DeviceInfo.UpTime=90"}},
		{"wildcard", 0, []string{"Device.SoftwareModules.DeploymentUnit.*.Name"}, []string{
			"Device.SoftwareModules.DeploymentUnit.1.Name=hello", "Device.SoftwareModules.DeploymentUnit.2.Name=web"}},
		{"instance", 0, []string{"Device.SoftwareModules.ExecutionUnit.2."}, []string{
			"Device.SoftwareModules.ExecutionUnit.2.AllocatedCPUPercent=0", "Device.SoftwareModules.ExecutionUnit.2.AllocatedDiskSpace=0",
			"Device.SoftwareModules.ExecutionUnit.2.AllocatedMemory=0",
			"Device.SoftwareModules.ExecutionUnit.2.AutoStart=true", "Device.SoftwareModules.ExecutionUnit.2.DiskSpaceInUse=0",
			"Device.SoftwareModules.ExecutionUnit.2.EUID=web",
			"Device.SoftwareModules.ExecutionUnit.2.ExecutionEnvRef=Device.SoftwareModules.ExecEnv.1",
			"Device.SoftwareModules.ExecutionUnit.2.ExecutionFaultCode=FailureOnStart",
			"Device.SoftwareModules.ExecutionUnit.2.ExecutionFaultMessage=exec: not found",
			"Device.SoftwareModules.ExecutionUnit.2.MemoryInUse=0",
			"Device.SoftwareModules.ExecutionUnit.2.Name=web", "Device.SoftwareModules.ExecutionUnit.2.RequestedState=Active",
			"Device.SoftwareModules.ExecutionUnit.2.Status=Idle", "Device.SoftwareModules.ExecutionUnit.2.Vendor=",
			"Device.SoftwareModules.ExecutionUnit.2.Version=2.1"}},
		{"table", 0, []string{"Device.SoftwareModules.ExecutionUnit.*.Status", "Device.SoftwareModules.DeploymentUnit.1.ExecutionUnitList"}, []string{
			"Device.SoftwareModules.DeploymentUnit.1.ExecutionUnitList=Device.SoftwareModules.ExecutionUnit.1",
			"Device.SoftwareModules.ExecutionUnit.1.Status=Active", "Device.SoftwareModules.ExecutionUnit.2.Status=Idle"}},
		{"search", 0, []string{`Device.SoftwareModules.ExecutionUnit.[Name=="web"].Status`,
			`Device.SoftwareModules.DeploymentUnit.[Version>=2&&Status=="Installed"].`,
			`Device.SoftwareModules.ExecutionUnit.[Name=="none"].Status`}, []string{
			"Device.SoftwareModules.DeploymentUnit.2.DUID=web",
			"Device.SoftwareModules.DeploymentUnit.2.ExecutionEnvRef=Device.SoftwareModules.ExecEnv.1",
			"Device.SoftwareModules.DeploymentUnit.2.ExecutionUnitList=Device.SoftwareModules.ExecutionUnit.2",
			"Device.SoftwareModules.DeploymentUnit.2.Name=web", "Device.SoftwareModules.DeploymentUnit.2.Resolved=true",
			"Device.SoftwareModules.DeploymentUnit.2.Status=Installed", "Device.SoftwareModules.DeploymentUnit.2.URL=",
			"Device.SoftwareModules.DeploymentUnit.2.UUID=a4b76130-cd15-5b65-b933-a04db035d0e0",
			"Device.SoftwareModules.DeploymentUnit.2.Vendor=", "Device.SoftwareModules.DeploymentUnit.2.Version=2.1",
			"Device.SoftwareModules.DeploymentUnit.2.X_ParaDrop_Follow=",
			"Device.SoftwareModules.ExecutionUnit.2.Status=Idle"}},
		{"max depth", 1, []string{"Device.SoftwareModules."}, []string{
			"Device.SoftwareModules.DeploymentUnitNumberOfEntries=2", "Device.SoftwareModules.ExecEnvNumberOfEntries=1",
			"Device.SoftwareModules.ExecutionUnitNumberOfEntries=2"}},
		{"max depth 2", 2, []string{"Device."}, []string{
			"Device.DeviceInfo.Manufacturer=PC Engines", "Device.DeviceInfo.ModelName=APU2",
			"Device.DeviceInfo.SerialNumber=abc123", "Device.DeviceInfo.SoftwareVersion=v1.2.3", "Device.DeviceInfo.UpTime=90",
			"Device.LocalAgent.ControllerNumberOfEntries=1", "Device.LocalAgent.EndpointID=" + agentID,
			"Device.SoftwareModules.DeploymentUnitNumberOfEntries=2", "Device.SoftwareModules.ExecEnvNumberOfEntries=1",
			"Device.SoftwareModules.ExecutionUnitNumberOfEntries=2"}},
		{"errors", 0, []string{
			"Device.SoftwareModules.DeploymentUnit.9.", "Device.SoftwareModules.DeploymentUnit.9.Name", "Device.Nope.",
			"Device.DeviceInfo.Nope", "Device..x", "Device.SoftwareModules.DeploymentUnit.{i}.", "Device.DeviceInfo.[a]",
			"Device.SoftwareModules.DeploymentUnit.Name", `Device.SoftwareModules.DeploymentUnit.[Nope=="x"].`,
		}, []string{
			"Device..x: 7008", "Device.DeviceInfo.Nope: 7026", "Device.DeviceInfo.[a]: 7008", "Device.Nope.: 7026",
			"Device.SoftwareModules.DeploymentUnit.9.: 7026", "Device.SoftwareModules.DeploymentUnit.9.Name: 7026",
			"Device.SoftwareModules.DeploymentUnit.Name: 7026", "Device.SoftwareModules.DeploymentUnit.[Nope==\"x\"].: 7026",
			"Device.SoftwareModules.DeploymentUnit.{i}.: 7008",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ask(t, a, ctrlID, getReq(tc.depth, tc.paths...))
			if m.Header.MsgType != codec.Header_GET_RESP {
				t.Fatalf("answer %v", m)
			}
			if got := flat(m.Body.GetResponse().GetGetResp()); !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	t.Run("whole tree", func(t *testing.T) {
		got := flat(ask(t, a, ctrlID, getReq(0, "Device.")).Body.GetResponse().GetGetResp())
		if len(got) != 5+2+(3+2+1)+3+9+2*11+2*15 {
			t.Errorf("%d parameters:\n%s", len(got), strings.Join(got, "\n"))
		}
	})
}

// The controllers, with their MQTT topics, in a nested table.
func TestControllers(t *testing.T) {
	a := testAgent(t, twoChutes(), func(c *Config) {
		c.Controllers = map[string]Controller{ctrlID: {Topic: "usp/controllers/ctrl"}, "self::acs": {Topic: "acs/topic"}}
	})
	got := flat(ask(t, a, ctrlID, getReq(0, "Device.LocalAgent.", `Device.LocalAgent.Controller.[EndpointID=="self::ctrl"].MTP.*.MQTT.Topic`)).Body.GetResponse().GetGetResp())
	want := []string{
		"Device.LocalAgent.Controller.1.Enable=true", "Device.LocalAgent.Controller.1.EndpointID=self::acs",
		"Device.LocalAgent.Controller.1.MTP.1.Enable=true", "Device.LocalAgent.Controller.1.MTP.1.MQTT.Topic=acs/topic",
		"Device.LocalAgent.Controller.1.MTP.1.Protocol=MQTT", "Device.LocalAgent.Controller.1.MTPNumberOfEntries=1",
		"Device.LocalAgent.Controller.2.Enable=true", "Device.LocalAgent.Controller.2.EndpointID=self::ctrl",
		"Device.LocalAgent.Controller.2.MTP.1.Enable=true", "Device.LocalAgent.Controller.2.MTP.1.MQTT.Topic=usp/controllers/ctrl",
		"Device.LocalAgent.Controller.2.MTP.1.MQTT.Topic=usp/controllers/ctrl", // the search
		"Device.LocalAgent.Controller.2.MTP.1.Protocol=MQTT", "Device.LocalAgent.Controller.2.MTPNumberOfEntries=1",
		"Device.LocalAgent.ControllerNumberOfEntries=2", "Device.LocalAgent.EndpointID=" + agentID,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	m := ask(t, a, ctrlID, &codec.Request{ReqType: &codec.Request_GetInstances{GetInstances: &codec.GetInstances{ObjPaths: []string{"Device.LocalAgent."}}}})
	var insts []string
	for _, in := range m.Body.GetResponse().GetGetInstancesResp().ReqPathResults[0].CurrInsts {
		insts = append(insts, in.InstantiatedObjPath+" "+in.UniqueKeys["EndpointID"]+in.UniqueKeys["Protocol"])
	}
	if want := []string{"Device.LocalAgent.Controller.1. self::acs", "Device.LocalAgent.Controller.1.MTP.1. MQTT",
		"Device.LocalAgent.Controller.2. self::ctrl", "Device.LocalAgent.Controller.2.MTP.1. MQTT"}; !slices.Equal(insts, want) {
		t.Errorf("instances %q", insts)
	}
}

// A chute keeps its instance number while it exists; a removed chute's
// number is not given to another.
func TestInstanceNumbers(t *testing.T) {
	chutes := twoChutes()
	a := testAgent(t, chutes, nil)
	names := func() []string {
		return flat(ask(t, a, ctrlID, getReq(0, "Device.SoftwareModules.DeploymentUnit.*.Name")).Body.GetResponse().GetGetResp())
	}
	names()
	*chutes = (*chutes)[1:]
	*chutes = append(*chutes, chute.Info{Name: "new", State: chute.Stopped})
	want := []string{"Device.SoftwareModules.DeploymentUnit.2.Name=web", "Device.SoftwareModules.DeploymentUnit.3.Name=new"}
	if got := names(); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestGetSupportedDM(t *testing.T) {
	a := testAgent(t, twoChutes(), nil)
	gsdm := func(req *codec.GetSupportedDM) *codec.GetSupportedDMResp {
		t.Helper()
		m := ask(t, a, ctrlID, &codec.Request{ReqType: &codec.Request_GetSupportedDm{GetSupportedDm: req}})
		if m.Header.MsgType != codec.Header_GET_SUPPORTED_DM_RESP {
			t.Fatalf("answer %v", m)
		}
		return m.Body.GetResponse().GetGetSupportedDmResp()
	}
	objs := func(r *codec.GetSupportedDMResp_RequestedObjectResult) (out []string) {
		for _, o := range r.SupportedObjs {
			s := o.SupportedObjPath
			for _, p := range o.SupportedParams {
				s += " " + p.ParamName
			}
			for _, k := range o.UniqueKeySets {
				s += " key:" + strings.Join(k.KeyNames, ",")
			}
			out = append(out, s)
		}
		return out
	}
	r := gsdm(&codec.GetSupportedDM{ObjPaths: []string{"Device.SoftwareModules."}, ReturnParams: true, ReturnUniqueKeySets: true})
	want := []string{
		"Device.SoftwareModules. ExecEnvNumberOfEntries DeploymentUnitNumberOfEntries ExecutionUnitNumberOfEntries",
		"Device.SoftwareModules.ExecEnv.{i}. Enable Status Name Type Vendor Version AvailableDiskSpace AvailableMemory ActiveExecutionUnits key:Name",
		"Device.SoftwareModules.DeploymentUnit.{i}. UUID DUID Name Status Resolved URL Vendor Version ExecutionUnitList ExecutionEnvRef X_ParaDrop_Follow key:DUID key:UUID",
		"Device.SoftwareModules.ExecutionUnit.{i}. EUID Name Status RequestedState ExecutionFaultCode ExecutionFaultMessage AutoStart Vendor Version AllocatedMemory AllocatedDiskSpace AllocatedCPUPercent MemoryInUse DiskSpaceInUse ExecutionEnvRef key:EUID",
	}
	if got := objs(r.ReqObjResults[0]); !slices.Equal(got, want) || r.ReqObjResults[0].DataModelInstUri != dataModelURI {
		t.Errorf("got %q", got)
	}
	r = gsdm(&codec.GetSupportedDM{ObjPaths: []string{"Device.", "Device.SoftwareModules.DeploymentUnit.", "Device.SoftwareModules.ExecutionUnit.1.",
		"Device.DeviceInfo.UpTime", "Device.Nope.", "Device.SoftwareModules.ExecutionUnit.7.", "Device.x..y"}, FirstLevelOnly: true, ReturnParams: true})
	for i, want := range [][]string{
		{"Device.", "Device.DeviceInfo.", "Device.LocalAgent.", "Device.SoftwareModules.", "Device.Hosts."},
		{"Device.SoftwareModules.DeploymentUnit.{i}. UUID DUID Name Status Resolved URL Vendor Version ExecutionUnitList ExecutionEnvRef X_ParaDrop_Follow"},
		{"Device.SoftwareModules.ExecutionUnit.{i}. EUID Name Status RequestedState ExecutionFaultCode ExecutionFaultMessage AutoStart Vendor Version AllocatedMemory AllocatedDiskSpace AllocatedCPUPercent MemoryInUse DiskSpaceInUse ExecutionEnvRef"},
		{"Device.DeviceInfo. UpTime"},
	} {
		if got := objs(r.ReqObjResults[i]); !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", r.ReqObjResults[i].ReqObjPath, got, want)
		}
	}
	if p := r.ReqObjResults[3].SupportedObjs[0].SupportedParams[0]; p.ValueType != codec.GetSupportedDMResp_PARAM_UNSIGNED_INT ||
		p.ValueChange != codec.GetSupportedDMResp_VALUE_CHANGE_WILL_IGNORE || p.Access != codec.GetSupportedDMResp_PARAM_READ_ONLY {
		t.Errorf("UpTime %v", p)
	}
	for i, code := range []uint32{7026, 7026, 7008} {
		if got := r.ReqObjResults[4+i].ErrCode; got != code {
			t.Errorf("%s: code %d, want %d", r.ReqObjResults[4+i].ReqObjPath, got, code)
		}
	}
}

func TestRefusals(t *testing.T) {
	a := testAgent(t, twoChutes(), func(c *Config) { c.MaxResponse = 4096 })
	errCode := func(m *codec.Msg) uint32 {
		t.Helper()
		if m == nil || m.Header.MsgType != codec.Header_ERROR {
			t.Fatalf("answer %v, want an Error", m)
		}
		return m.Body.GetError().ErrCode
	}
	t.Run("supported protocol", func(t *testing.T) {
		m := ask(t, a, ctrlID, &codec.Request{ReqType: &codec.Request_GetSupportedProtocol{GetSupportedProtocol: &codec.GetSupportedProtocol{ControllerSupportedProtocolVersions: "1.4"}}})
		if v := m.Body.GetResponse().GetGetSupportedProtocolResp().GetAgentSupportedProtocolVersions(); !strings.Contains(v, "1.4") {
			t.Errorf("versions %q", v)
		}
	})
	t.Run("unknown controller", func(t *testing.T) {
		if c := errCode(ask(t, a, "self::stranger", getReq(0, "Device."))); c != codePermission {
			t.Errorf("code %d", c)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		set := &codec.Request{ReqType: &codec.Request_Set{Set: &codec.Set{UpdateObjs: []*codec.Set_UpdateObject{{ObjPath: "Device.DeviceInfo."}}}}}
		if c := errCode(ask(t, a, ctrlID, set)); c != codeNotUpdatable {
			t.Errorf("code %d", c)
		}
	})
	t.Run("answer over the limit", func(t *testing.T) {
		if c := errCode(ask(t, a, ctrlID, getReq(0, slices.Repeat([]string{"Device."}, 1000)...))); c != codeResources {
			t.Errorf("code %d", c)
		}
	})
	t.Run("unsupported version answered", func(t *testing.T) {
		data := record(t, ctrlID, func(r *codec.Record) { r.Version = "9.9" })
		if c := errCode(decodeAnswer(t, a.Handle(data), ctrlID)); c != codec.CodeInvalidRecord {
			t.Errorf("code %d", c)
		}
	})
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("\x0a\xff\xff garbage")},
		{"other agent", record(t, ctrlID, func(r *codec.Record) { r.ToId = "os::other" })},
		{"a response", func() []byte {
			m := &codec.Msg{Header: &codec.Header{MsgId: "m-1", MsgType: codec.Header_GET_RESP},
				Body: &codec.Body{MsgBody: &codec.Body_Response{Response: &codec.Response{RespType: &codec.Response_GetResp{GetResp: &codec.GetResp{}}}}}}
			b, _ := codec.Wrap(m, ctrlID, agentID)
			return b
		}()},
		{"too large", record(t, ctrlID, func(r *codec.Record) { r.SenderCert = make([]byte, 70<<10) })},
		{"no sender", record(t, ctrlID, func(r *codec.Record) { r.FromId = "" })},
		{"invalid sender", record(t, ctrlID, func(r *codec.Record) { r.FromId = "not an endpoint ID" })},
	} {
		t.Run("no answer to "+tc.name, func(t *testing.T) {
			if out := a.Handle(tc.data); out != nil {
				t.Errorf("answered %d bytes", len(out))
			}
		})
	}
}

// record is a Get record from a controller, edited.
func record(t *testing.T, from string, edit func(*codec.Record)) []byte {
	t.Helper()
	b, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "m-1"}, Body: &codec.Body{MsgBody: &codec.Body_Request{Request: getReq(0, "Device.")}}}, from, agentID)
	if err != nil {
		t.Fatal(err)
	}
	rec := new(codec.Record)
	if err := proto.Unmarshal(b, rec); err != nil {
		t.Fatal(err)
	}
	edit(rec)
	if b, err = proto.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzHandle: any record answers with nothing or a valid record to its
// sender, within the limits.
func FuzzHandle(f *testing.F) {
	a := testAgent(f, twoChutes(), nil)
	seed, _ := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "m-1"},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: getReq(0, "Device.", "Device.SoftwareModules.ExecutionUnit.*.Status")}}}, ctrlID, agentID)
	f.Add(seed)
	f.Add([]byte("\x0a\x03\x31\x2e\x34"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := a.Handle(data)
		if out == nil {
			return
		}
		rec := new(codec.Record)
		if err := proto.Unmarshal(out, rec); err != nil || rec.FromId != agentID || len(out) > 2<<20 {
			t.Fatalf("answer %v: %v", rec, err)
		}
	})
}

func TestGetInstances(t *testing.T) {
	a := testAgent(t, twoChutes(), nil)
	m := ask(t, a, ctrlID, &codec.Request{ReqType: &codec.Request_GetInstances{GetInstances: &codec.GetInstances{ObjPaths: []string{
		"Device.SoftwareModules.DeploymentUnit.", "Device.SoftwareModules.", "Device.SoftwareModules.ExecutionUnit.2.",
		"Device.DeviceInfo.", "Device.DeviceInfo.UpTime", "Device.SoftwareModules.ExecutionUnit.9.", "Device.Nope.", "Device..",
		`Device.SoftwareModules.ExecutionUnit.[Status=="Active"].`,
	}, FirstLevelOnly: false}}})
	if m.Header.MsgType != codec.Header_GET_INSTANCES_RESP {
		t.Fatalf("answer %v", m)
	}
	var got []string
	for _, r := range m.Body.GetResponse().GetGetInstancesResp().ReqPathResults {
		s := fmt.Sprintf("%s %d:", r.RequestedPath, r.ErrCode)
		for _, in := range r.CurrInsts {
			s += " " + in.InstantiatedObjPath
			for _, k := range []string{"DUID", "UUID", "EUID"} {
				if v, ok := in.UniqueKeys[k]; ok {
					s += " " + k + "=" + v[:min(len(v), 5)]
				}
			}
		}
		got = append(got, s)
	}
	want := []string{
		"Device.SoftwareModules.DeploymentUnit. 0: Device.SoftwareModules.DeploymentUnit.1. DUID=hello UUID=03282 Device.SoftwareModules.DeploymentUnit.2. DUID=web UUID=a4b76",
		"Device.SoftwareModules. 0: Device.SoftwareModules.ExecEnv.1. Device.SoftwareModules.DeploymentUnit.1. DUID=hello UUID=03282 Device.SoftwareModules.DeploymentUnit.2. DUID=web UUID=a4b76 Device.SoftwareModules.ExecutionUnit.1. EUID=hello Device.SoftwareModules.ExecutionUnit.2. EUID=web",
		"Device.SoftwareModules.ExecutionUnit.2. 0: Device.SoftwareModules.ExecutionUnit.2. EUID=web",
		"Device.DeviceInfo. 0:",
		"Device.DeviceInfo.UpTime 7018:",
		"Device.SoftwareModules.ExecutionUnit.9. 7026:",
		"Device.Nope. 7026:",
		"Device.. 7008:",
		`Device.SoftwareModules.ExecutionUnit.[Status=="Active"]. 0: Device.SoftwareModules.ExecutionUnit.1. EUID=hello`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	m = ask(t, a, ctrlID, &codec.Request{ReqType: &codec.Request_GetInstances{GetInstances: &codec.GetInstances{ObjPaths: []string{
		"Device.SoftwareModules.", "Device.SoftwareModules.ExecutionUnit."}, FirstLevelOnly: true}}})
	r := m.Body.GetResponse().GetGetInstancesResp().ReqPathResults
	if r[0].ErrCode != codeNotTable || len(r[1].CurrInsts) != 2 {
		t.Errorf("first level only: %v", r)
	}
}

// BenchmarkGetTree: a Get of the whole tree on a gateway of 100 chutes,
// record in, record out.
func BenchmarkGetTree(b *testing.B) {
	var chutes fakeChutes
	for i := range 100 {
		chutes = append(chutes, chute.Info{Name: fmt.Sprintf("chute%03d", i), Version: "1.0", State: chute.Running, Desired: chute.Running})
	}
	a := testAgent(b, &chutes, nil)
	req, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "m-1"},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: getReq(0, "Device.")}}}, ctrlID, agentID)
	if err != nil {
		b.Fatal(err)
	}
	var out []byte
	for b.Loop() {
		out = a.Handle(req)
	}
	b.ReportMetric(float64(len(out)), "answer-bytes")
}
