package main

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"paradrop/sdn"
)

// The API listens on loopback and the LAN side only, unless told otherwise.
func TestAPIAddrs(t *testing.T) {
	lan := &sdn.Config{LANAddr: netip.MustParsePrefix("192.168.1.1/24")}
	for _, tc := range []struct {
		listen  string
		network *sdn.Config
		want    []string
		wantLAN string
	}{
		{"", nil, []string{"127.0.0.1:8080"}, ""},
		{"", &sdn.Config{}, []string{"127.0.0.1:8080"}, ""},
		{"", lan, []string{"127.0.0.1:8080", "192.168.1.1:8080"}, "192.168.1.1:8080"},
		{":9000", lan, []string{":9000"}, ""},
		{"127.0.0.1:1, [::1]:2", nil, []string{"127.0.0.1:1", "[::1]:2"}, ""},
	} {
		got, gotLAN, err := apiAddrs(tc.listen, tc.network)
		if err != nil || !slices.Equal(got, tc.want) || gotLAN != tc.wantLAN {
			t.Errorf("apiAddrs(%q, %v) = %q %q %v, want %q %q", tc.listen, tc.network, got, gotLAN, err, tc.want, tc.wantLAN)
		}
	}
}

// The LAN address is not on any interface until the chute network puts it
// on its port, after the listeners are opened: it must bind anyway.
func TestListenLANBeforeItExists(t *testing.T) {
	const addr = "198.51.100.77:0" // TEST-NET-2, on no interface here; nothing is sent
	lns, err := listenAPI(context.Background(), []string{"127.0.0.1:0", addr}, addr)
	if err != nil {
		t.Fatalf("listen on a LAN address not yet assigned: %v", err)
	}
	for _, ln := range lns {
		ln.Close()
	}
	if _, err := listenAPI(context.Background(), []string{addr}, ""); err == nil {
		t.Error("an address on no interface was bound without IP_FREEBIND; the test proves nothing")
	}
}

func TestListenFlag(t *testing.T) {
	var v string
	f := listenFlag{&v}
	for _, s := range []string{"127.0.0.1:1", ":2,[::1]:3"} {
		if err := f.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if v != "127.0.0.1:1,:2,[::1]:3" {
		t.Errorf("--listen twice: %q", v)
	}
	for _, bad := range []string{"bogus", "127.0.0.1", ":1,nope"} {
		if err := f.Set(bad); err == nil {
			t.Errorf("--listen %q accepted", bad)
		}
	}
}
