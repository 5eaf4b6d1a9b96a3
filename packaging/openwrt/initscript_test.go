package main

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"paradrop/chute/sandbox/sandboxtest"
)

// rcCommon stands for OpenWrt's /etc/rc.common, procd part: it sources
// the init script and runs an action as rc.common does (rc_procd around
// start_service; service_triggers from procd_close_service), refusing
// scripts without USE_PROCD, which rc.common would run the legacy way.
const rcCommon = `#!/bin/sh
initscript=$1
action=$2
. /lib/functions/procd.sh
. "$initscript"
[ "$USE_PROCD" = 1 ] || { echo "not a procd script" >&2; exit 1; }
name=$(basename "$initscript")
rc_procd() { procd_open_service "$name" "$initscript"; "$@"; procd_close_service; }
record rc "$action"
case "$action" in
start|reload) rc_procd start_service ;;
stop) procd_kill "$name" ;;
restart) procd_kill "$name"; rc_procd start_service ;;
enable) record enable "S$START$name" "K$STOP$name" ;;
*) exit 1 ;;
esac
`

// procdSh stands for /lib/functions/procd.sh: each call is a line of the
// log, its words separated by tabs.
const procdSh = `record() { { printf '%s' "$1"; shift; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; } >> /tmp/procd.log; }
procd_open_service() { record open_service "$@"; }
procd_close_service() { type service_triggers >/dev/null 2>&1 && service_triggers; record close_service; }
procd_open_instance() { record open_instance "$@"; }
procd_set_param() { record set_param "$@"; }
procd_append_param() { record append_param "$@"; }
procd_close_instance() { record close_instance; }
procd_add_reload_trigger() { record reload_trigger "$@"; }
procd_add_interface_trigger() { record interface_trigger "$@"; }
procd_kill() { record kill "$@"; }
`

// installRoot unpacks a freshly built .ipk's data over a busybox root
// with the stand-ins of rc.common, procd.sh, uci, ubus and logger.
func installRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	bin := tinyBinary(t, "mipsle")
	out, args := testArgs(t, "mipsle", bin)
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "paradrop_0.42~abcdef12-r1_mipsel_24kc.ipk"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	sandboxtest.BusyboxRootfs(t, root)
	_, outer := untarGz(t, b)
	names, data := untarGz(t, outer["./data.tar.gz"].data)
	for _, n := range names {
		f := data[n]
		p := filepath.Join(root, n)
		if f.hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, os.FileMode(f.hdr.Mode)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, f.data, os.FileMode(f.hdr.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"etc/rc.common":          rcCommon,
		"lib/functions/procd.sh": procdSh,
		"usr/bin/uci":            "#!/bin/sh\n[ \"$*\" = '-q get paradrop.@paradrop[0].lan' ] && cat /tmp/uci-lan\n",
		"usr/bin/ubus":           "#!/bin/sh\n[ \"$*\" = 'call service list {\"name\":\"paradrop\"}' ] && cat /tmp/ubus-list\n",
		"usr/bin/logger":         "#!/bin/sh\n. /lib/functions/procd.sh\nrecord logger \"$@\"\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// inRoot runs a shell command chrooted in root and returns procd's log.
func inRoot(t *testing.T, root string, env []string, script string) [][]string {
	t.Helper()
	os.Remove(filepath.Join(root, "tmp/procd.log"))
	cmd := exec.Command("chroot", root, "/bin/sh", "-c", script)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
	b, err := os.ReadFile(filepath.Join(root, "tmp/procd.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var calls [][]string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l != "" {
			calls = append(calls, strings.Split(l, "\t"))
		}
	}
	return calls
}

var startCalls = [][]string{
	{"open_service", "paradrop", "/etc/init.d/paradrop"},
	{"open_instance"},
	{"set_param", "command", "/usr/bin/paradrop", "serve", "--uci", "/etc/config/paradrop"},
	{"set_param", "file", "/etc/config/paradrop"},
	{"set_param", "respawn", "3600", "5", "0"},
	{"set_param", "term_timeout", "30"},
	{"set_param", "stdout", "1"},
	{"set_param", "stderr", "1"},
	{"close_instance"},
	{"reload_trigger", "paradrop"},
	{"close_service"},
}

// The installed init script asks procd to run the installed binary on the
// installed configuration, respawned, restarted when the file changes,
// and to reload the service when UCI's paradrop config is committed.
func TestInitScript(t *testing.T) {
	root := installRoot(t)
	got := inRoot(t, root, nil, "/etc/init.d/paradrop start")
	if want := append([][]string{{"rc", "start"}}, startCalls...); !reflect.DeepEqual(got, want) {
		t.Errorf("start asked procd:\n%q\nwant\n%q", got, want)
	}
	// What it runs is what the package installed.
	cmd := startCalls[2][2:]
	if fi, err := os.Stat(filepath.Join(root, cmd[0])); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: %v %v", cmd[0], fi, err)
	}
	if _, err := os.Stat(filepath.Join(root, cmd[3])); err != nil {
		t.Errorf("--uci %s: %v", cmd[3], err)
	}
	if got := inRoot(t, root, nil, "/etc/init.d/paradrop enable"); !reflect.DeepEqual(got, [][]string{{"rc", "enable"}, {"enable", "S95paradrop", "K10paradrop"}}) {
		t.Errorf("enable: %q", got)
	}
}

// A LAN port of the bridge appearing restarts the running daemon, which
// re-attaches it; other devices, other events, or a service not running
// leave it alone.
func TestHotplug(t *testing.T) {
	root := installRoot(t)
	os.WriteFile(filepath.Join(root, "tmp/uci-lan"), []byte("lan1 lan2\n"), 0o644)
	hotplug := "( . /etc/hotplug.d/net/50-paradrop )" // as hotplug-call sources it
	for _, tc := range []struct {
		name, action, iface, services string
		restart                       bool
	}{
		{"a listed port added", "add", "lan2", `{ "paradrop": { "instances": { } } }`, true},
		{"another device", "add", "eth9", `{ "paradrop": { } }`, false},
		{"a prefix of a listed port", "add", "lan", `{ "paradrop": { } }`, false},
		{"a removal", "remove", "lan1", `{ "paradrop": { } }`, false},
		{"the WAN, matched by name", "add", "wan", `{ "paradrop": { } }`, false},
		{"service not running", "add", "lan1", "{ }", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(root, "tmp/ubus-list"), []byte(tc.services+"\n"), 0o644)
			got := inRoot(t, root, []string{"ACTION=" + tc.action, "INTERFACE=" + tc.iface}, hotplug)
			var want [][]string
			if tc.restart {
				want = append([][]string{
					{"logger", "-t", "paradrop", "LAN port " + tc.iface + " appeared: restarting to re-attach it"},
					{"rc", "restart"}, {"kill", "paradrop"},
				}, startCalls...)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%q\nwant\n%q", got, want)
			}
		})
	}
}
