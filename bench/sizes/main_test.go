package main

import "testing"

func TestSymbolPackage(t *testing.T) {
	for _, c := range []struct{ sym, want string }{
		{"runtime.mallocgc", "runtime"},
		{"github.com/miekg/dns.(*Msg).Pack", "github.com/miekg/dns"},
		{"paradrop/sdn.(*chuteFlowSet).flows6", "paradrop/sdn"},
		{"type:*github.com/vishvananda/netlink.Route", "github.com/vishvananda/netlink"},
		{"type:.eq.github.com/godbus/dbus/v5.Object", "github.com/godbus/dbus/v5"},
		{"type:.eq.[7]github.com/containerd/cgroups/v3/cgroup1.Subsystem", "github.com/containerd/cgroups/v3/cgroup1"},
		{"go:itab.*net/http.conn,io.Reader", "net/http"},
		{"slices.SortFunc[go.shape.[]net/netip.Prefix,go.shape.struct {}]", "slices"},
		{"vendor/golang.org/x/net/idna.idnaValues", "vendor/golang.org/x/net/idna"},
		{"go:func.*", "go:func"},
		{"github.com/eclipse/paho%2emqtt%2egolang.NewClient", "github.com/eclipse/paho.mqtt.golang"},
	} {
		if got := symbolPackage(c.sym); got != c.want {
			t.Errorf("symbolPackage(%q) = %q, want %q", c.sym, got, c.want)
		}
	}
}

func TestModuleOf(t *testing.T) {
	mods := []string{"paradrop", "github.com/containerd/cgroups/v3", "github.com/cilium/ebpf", "google.golang.org/protobuf"}
	for _, c := range []struct{ pkg, want string }{
		{"paradrop/chute", "paradrop"},
		{"paradrop", "paradrop"},
		{"github.com/containerd/cgroups/v3/cgroup2/stats", "github.com/containerd/cgroups/v3"},
		{"github.com/cilium/ebpf", "github.com/cilium/ebpf"},
		{"crypto/internal/fips140/nistec", "std crypto"},
		{"vendor/golang.org/x/text/unicode/norm", "std vendor/golang.org/x/text"},
		{"go:func", "go:func"},
		{"runtime", "std runtime"},
	} {
		if got := moduleOf(c.pkg, mods); got != c.want {
			t.Errorf("moduleOf(%q) = %q, want %q", c.pkg, got, c.want)
		}
	}
}
