package chute

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"paradrop/netconf/nettest"
)

// chuteLog waits for want in the chute's log and returns the log.
func chuteLog(t *testing.T, g *gateway, name, want string) string {
	t.Helper()
	var out string
	eventually(t, 20*time.Second, want+" in the log of "+name, func() bool {
		var b bytes.Buffer
		g.m.Logs(context.Background(), name, "", 0, false, &b)
		out = b.String()
		return strings.Contains(out, want)
	})
	return out
}

const etcScript = `cat /etc/resolv.conf /etc/hosts
ping -c1 -W1 gateway.paradrop 2>&1 | head -1
ping -c1 -W1 named 2>&1 | head -1
echo x >> /etc/resolv.conf && echo wrote resolv.conf
echo x >> /etc/hosts && echo wrote hosts
echo done; exec sleep 1000`

// TestChuteEtcOnTheNetwork: a chute on the chutes' network finds the
// gateway's resolver in its /etc/resolv.conf, resolves gateway.paradrop,
// its own name and its mutual peer's from /etc/hosts, where a chute it
// lists that does not list it is not, and cannot change either.
func TestChuteEtcOnTheNetwork(t *testing.T) {
	nettest.Require(t, "busybox")
	gw, lan := nettest.NewHost(t), nettest.NewHost(t)
	nettest.Veth(t, nettest.End{Host: lan, If: "eth0", Addr: testLANHost}, nettest.End{Host: gw, If: "lan0"})
	ng := newNetGateway(t, t.TempDir(), gw, lan)
	defer func() { ng.removeAll(); ng.net.Close(context.Background()) }()
	for _, other := range []string{"friend", "loner"} {
		peers := "[named]"
		if other == "loner" {
			peers = "[]"
		}
		ng.install(pkg(t, "name: "+other+"\nversion: 1.0.0\ncommand: [\"/bin/sleep\", \"1000\"]\nnet: {peers: "+peers+"}\n", nil))
	}
	ng.install(pkg(t, `
name: named
version: 1.0.0
net: {peers: [friend, loner]}
command: ["/bin/sh", "-c", "`+strings.ReplaceAll(etcScript, "\n", "; ")+`"]
`, map[string]string{"etc/resolv.conf": "nameserver 203.0.113.53\n", "etc/hosts": "203.0.113.9 gateway.paradrop\n"}))
	out := chuteLog(t, ng.gateway, "named", "stdout done")
	info, _ := ng.m.Get("named")
	friend, _ := ng.m.Get("friend")
	loner, _ := ng.m.Get("loner")
	if strings.Contains(out, "\tloner\n") || strings.Contains(out, loner.IP+"\t") {
		t.Errorf("a chute that does not list it as a peer is in its /etc/hosts:\n%s", out)
	}
	gwAddr := ng.net.Gateway().String()
	for _, want := range []string{
		"stdout nameserver " + gwAddr + "\n",
		"stdout " + gwAddr + "\tgateway.paradrop\n",
		"stdout " + info.IP + "\tnamed\n",
		"stdout " + friend.IP + "\tfriend\n",
		"stdout 127.0.0.1\tlocalhost\n",
		"stdout PING gateway.paradrop (" + gwAddr + ")",
		"stdout PING named (" + info.IP + ")",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("chute's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "203.0.113.") || strings.Contains(out, "wrote") {
		t.Errorf("the chute sees the image's files or changed the gateway's:\n%s", out)
	}
}

// TestChuteEtcWithoutNetwork: without the chutes' network a chute keeps
// its image's /etc/resolv.conf.
func TestChuteEtcWithoutNetwork(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, `
name: alone
version: 1.0.0
command: ["/bin/sh", "-c", "cat /etc/resolv.conf; echo done; exec sleep 1000"]
`, map[string]string{"etc/resolv.conf": "nameserver 203.0.113.53\n"}))
	if out := chuteLog(t, g, "alone", "stdout done"); !strings.Contains(out, "stdout nameserver 203.0.113.53\n") {
		t.Errorf("chute without network: %s", out)
	}
}
