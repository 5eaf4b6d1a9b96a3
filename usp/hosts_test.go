package usp

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"paradrop/chute"
	"paradrop/chute/manifest"
	"paradrop/usp/codec"
)

// Device.Hosts shows the operator's controller the LAN devices with their
// addresses and presence, and a developer's none; GetInstances keys them
// by PhysAddress; a ValueChange subscription on Active tells of a device
// that left; a device gone and another come never share a number.
func TestDeviceHosts(t *testing.T) {
	var mu sync.Mutex
	hosts := []chute.Host{
		{MAC: "02:00:00:00:00:0a", IPs: []string{"198.51.100.20", "198.51.100.21"}, Port: "lan1", Active: true},
		{MAC: "02:00:00:00:00:0b", Port: "lan2", Active: true},
	}
	chutes := twoChutes()
	(*chutes)[0].Manifest = &manifest.Manifest{Follow: &manifest.Follow{MAC: "02:00:00:00:00:0a"}}
	a := testAgent(t, chutes, func(c *Config) {
		c.Controllers = map[string]Controller{ctrlID: {Topic: "usp/controllers/ctrl"}, devCtrl: {Topic: "usp/controllers/dev", Developer: "acme"}}
		c.Hosts = func() []chute.Host {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(hosts)
		}
	})
	got := flat(ask(t, a, ctrlID, getReq(0, "Device.Hosts.")).Body.GetResponse().GetGetResp())
	want := []string{
		"Device.Hosts.HostNumberOfEntries=2",
		"Device.Hosts.Host.1.Active=true",
		"Device.Hosts.Host.1.IPAddress=198.51.100.21",
		"Device.Hosts.Host.1.IPv4Address.1.IPAddress=198.51.100.20",
		"Device.Hosts.Host.1.IPv4Address.2.IPAddress=198.51.100.21",
		"Device.Hosts.Host.1.IPv4AddressNumberOfEntries=2",
		"Device.Hosts.Host.1.PhysAddress=02:00:00:00:00:0a",
		"Device.Hosts.Host.2.Active=true",
		"Device.Hosts.Host.2.IPAddress=",
		"Device.Hosts.Host.2.IPv4AddressNumberOfEntries=0",
		"Device.Hosts.Host.2.PhysAddress=02:00:00:00:00:0b",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Get Device.Hosts.:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The chutes say which device they follow, for a controller to move
	// them after it.
	got = flat(ask(t, a, ctrlID, getReq(0, "Device.SoftwareModules.DeploymentUnit.*.X_ParaDrop_Follow")).Body.GetResponse().GetGetResp())
	if want := []string{"Device.SoftwareModules.DeploymentUnit.1.X_ParaDrop_Follow=02:00:00:00:00:0a",
		"Device.SoftwareModules.DeploymentUnit.2.X_ParaDrop_Follow="}; !slices.Equal(got, want) {
		t.Errorf("follow: %q, want %q", got, want)
	}
	for _, g := range flat(ask(t, a, devCtrl, getReq(0, "Device.")).Body.GetResponse().GetGetResp()) {
		if strings.HasPrefix(g, "Device.Hosts.") {
			t.Errorf("a developer's controller sees %s", g)
		}
	}

	m := ask(t, a, ctrlID, &codec.Request{ReqType: &codec.Request_GetInstances{GetInstances: &codec.GetInstances{ObjPaths: []string{
		"Device.Hosts.Host.", `Device.Hosts.Host.[Active==true&&PhysAddress=="02:00:00:00:00:0b"].`}}}})
	var insts []string
	for _, r := range m.Body.GetResponse().GetGetInstancesResp().ReqPathResults {
		s := fmt.Sprintf("%d:", r.ErrCode)
		for _, in := range r.CurrInsts {
			s += " " + in.InstantiatedObjPath + " " + in.UniqueKeys["PhysAddress"]
		}
		insts = append(insts, s)
	}
	if want := []string{
		"0: Device.Hosts.Host.1. 02:00:00:00:00:0a Device.Hosts.Host.1.IPv4Address.1.  Device.Hosts.Host.1.IPv4Address.2.  Device.Hosts.Host.2. 02:00:00:00:00:0b",
		"0: Device.Hosts.Host.2. 02:00:00:00:00:0b",
	}; !slices.Equal(insts, want) {
		t.Errorf("GetInstances:\n%s\nwant\n%s", strings.Join(insts, "\n"), strings.Join(want, "\n"))
	}

	send(t, a, ctrlID, "a-1", addSub(false, "ID", "present", "Enable", "true", "NotifType", "ValueChange",
		"ReferenceList", "Device.Hosts.Host.*.Active"))
	a.valueChanges()
	mu.Lock()
	hosts[1].Active = false
	mu.Unlock()
	a.valueChanges()
	n := drain(a)
	if len(n) != 1 {
		t.Fatalf("notifications %v", n)
	}
	if vc := n[0].msg.GetBody().GetRequest().GetNotify().GetValueChange(); vc.GetParamPath() != "Device.Hosts.Host.2.Active" || vc.GetParamValue() != "false" {
		t.Errorf("value change %v", vc)
	}

	mu.Lock()
	hosts = []chute.Host{hosts[1], {MAC: "02:00:00:00:00:0c", Active: true}}
	mu.Unlock()
	got = flat(ask(t, a, ctrlID, getReq(0, "Device.Hosts.Host.*.PhysAddress")).Body.GetResponse().GetGetResp())
	if want := []string{"Device.Hosts.Host.2.PhysAddress=02:00:00:00:00:0b", "Device.Hosts.Host.3.PhysAddress=02:00:00:00:00:0c"}; !slices.Equal(got, want) {
		t.Errorf("after a device left and another came: %q, want %q", got, want)
	}
}
