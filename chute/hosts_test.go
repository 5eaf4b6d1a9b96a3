package chute

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"paradrop/sdn"
)

// The network's hosts become text once, times in UTC, a host without an
// address with an empty list rather than none.
func TestHostsOf(t *testing.T) {
	at := time.Date(2026, 12, 6, 20, 0, 0, 0, time.FixedZone("CET", 3600))
	got := hostsOf([]sdn.Host{
		{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, IPs: []netip.Addr{netip.MustParseAddr("198.51.100.20")}, Port: "lan1",
			FirstSeen: at, LastSeen: at.Add(time.Minute), Active: true},
		{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, Port: "lan2", FirstSeen: at, LastSeen: at},
	})
	want := []Host{
		{MAC: "02:00:00:00:00:0a", IPs: []string{"198.51.100.20"}, Port: "lan1", FirstSeen: at.UTC(), LastSeen: at.Add(time.Minute).UTC(), Active: true},
		{MAC: "02:00:00:00:00:0b", IPs: []string{}, Port: "lan2", FirstSeen: at.UTC(), LastSeen: at.UTC()},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hostsOf = %+v\nwant %+v", got, want)
	}
	if hs := (&Manager{}).Hosts(); hs == nil || len(hs) != 0 {
		t.Errorf("without a network: %v, want an empty list", hs)
	}
}
