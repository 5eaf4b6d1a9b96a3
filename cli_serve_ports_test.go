package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"paradrop/chute"
)

// A bad flag is refused before the data directory and the token are made.
func TestServeChecksFlagsFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	err := serve(context.Background(), serveOptions{dataDir: dir, listen: "bogus", logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), `--listen "bogus"`) {
		t.Errorf("serve --listen bogus: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory made before the flags were checked: %v", err)
	}
}

func TestGatewayPorts(t *testing.T) {
	def, err := parseGatewayPorts(defaultGatewayPorts)
	if err != nil {
		t.Fatal(err)
	}
	got := ownPorts(def[:2], []net.Addr{&net.TCPAddr{Port: 8080}, &net.TCPAddr{Port: 8080}}, "127.0.0.1:6653")
	want := []chute.GatewayPort{
		{Port: 22, Proto: "tcp", What: "SSH"}, {Port: 53, Proto: "tcp", What: "DNS"},
		{Port: 8080, Proto: "tcp", What: "the paradrop API and web UI"},
		{Port: 6653, Proto: "tcp", What: "the OpenFlow controller"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ports %v, want %v", got, want)
	}
	for _, bad := range []string{"22", "22/icmp", "0/tcp", "70000/udp", "x/tcp"} {
		if _, err := parseGatewayPorts(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if p, err := parseGatewayPorts(""); err != nil || len(p) != 0 {
		t.Errorf("empty list: %v %v", p, err)
	}
}
