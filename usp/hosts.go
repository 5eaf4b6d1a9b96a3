package usp

import (
	"strconv"
	"sync"

	"paradrop/chute"
	"paradrop/chute/manifest"
)

// Device.Hosts: the LAN devices the gateway sees (TR-181 names; what the
// gateway knows of them: MAC, IPv4 addresses, presence).
var (
	hostsObj = &object{path: []string{"Device", "Hosts"}, params: []param{
		{name: "HostNumberOfEntries", typ: uintT},
	}}
	hostObj = &object{path: []string{"Device", "Hosts", "Host", "{i}"}, params: []param{
		{name: "PhysAddress", typ: str}, {name: "IPAddress", typ: str}, {name: "Active", typ: boolT},
		{name: "IPv4AddressNumberOfEntries", typ: uintT},
	}, keys: [][]string{{"PhysAddress"}}}
	hostIPv4Obj = &object{path: []string{"Device", "Hosts", "Host", "{i}", "IPv4Address", "{i}"}, params: []param{
		{name: "IPAddress", typ: str},
	}, keys: [][]string{{"IPAddress"}}}
)

// followOf is the MAC of the LAN device chute c follows (its manifest's
// follow), "" for none: a fleet controller moves the chute after it.
func followOf(c chute.Info) string {
	if m, _ := c.Manifest.(*manifest.Manifest); m != nil && m.Follow != nil {
		return m.Follow.MAC
	}
	return ""
}

// hostNumbers gives each LAN host its instance number: kept while the
// gateway sees it, never reused while the agent runs, so a ValueChange on
// Host.{i}.Active follows one device.
type hostNumbers struct {
	mu   sync.Mutex
	nums map[string]uint32
	next uint32
}

func (h *hostNumbers) of(hosts []chute.Host) map[string]uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[string]uint32, len(hosts))
	for _, host := range hosts {
		n, ok := h.nums[host.MAC]
		if !ok {
			h.next++
			n = h.next
		}
		seen[host.MAC] = n
	}
	h.nums = seen
	return seen
}

// hostInstances are Device.Hosts as ctl sees it: the household's devices
// are the operator's to see, so a developer's controller sees none.
func (a *Agent) hostInstances(ctl Controller) []instance {
	if ctl.Developer != "" || a.cfg.Hosts == nil {
		return nil
	}
	hosts := a.cfg.Hosts()
	nums := a.hostNums.of(hosts)
	out := []instance{at(hostsObj, map[string]string{"HostNumberOfEntries": strconv.Itoa(len(hosts))})}
	for _, h := range hosts {
		n := strconv.FormatUint(uint64(nums[h.MAC]), 10)
		ip := ""
		if len(h.IPs) > 0 {
			ip = h.IPs[len(h.IPs)-1]
		}
		out = append(out, at(hostObj, map[string]string{
			"PhysAddress": h.MAC, "IPAddress": ip, "Active": strconv.FormatBool(h.Active),
			"IPv4AddressNumberOfEntries": strconv.Itoa(len(h.IPs)),
		}, n))
		for i, a := range h.IPs {
			out = append(out, at(hostIPv4Obj, map[string]string{"IPAddress": a}, n, strconv.Itoa(i+1)))
		}
	}
	return out
}
