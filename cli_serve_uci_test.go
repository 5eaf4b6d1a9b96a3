package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"paradrop/chute/signature/signaturetest"
	"paradrop/tlscert"
)

// A UCI file gives the daemon exactly the options the same flags give,
// for every flag serve has.
func TestServeUCIEqualsFlags(t *testing.T) {
	keys := writeTemp(t, "trusted.pub", []byte(signaturetest.NewKey(t).Pub))
	caDir := t.TempDir()
	if _, err := tlscert.EnsureSelfSigned(caDir, tlscert.Names{Hosts: []string{"broker.example"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(caDir, tlscert.Dir, "cert.pem")
	flags := []string{
		"--data", "/srv/pd", "--listen", "127.0.0.1:8081", "--listen", "192.0.2.1:8443,[::1]:8082",
		"--cgroup-parent", "/pd-uci", "--metrics-open", "--max-upload", "64Mi", "--max-unpacked", "512Mi",
		"--header-timeout", "7s", "--idle-timeout", "2m", "--stall-timeout", "11s", "--min-rate", "2048",
		"--max-conns", "50", "--max-conns-per-client", "5", "--max-uploads", "3", "--max-uploads-per-client", "1",
		"--tls-cert", "/etc/pd/c.pem", "--tls-key", "/etc/pd/k.pem", "--memory-overcommit", "1.5", "--gc-percent", "80",
		"--gateway-ports", "22/tcp,53/udp", "--allow-devices", "/dev/ttyUSB0", "--allow-caps", "NET_RAW",
		"--trusted-keys", keys, "--require-signed", "--network=true", "--ovsdb", "unix:/run/ovs.sock",
		"--bridge", "pdbrU", "--controller", "127.0.0.1:6654", "--wan", "wan0", "--subnet", "10.9.0.0/24",
		"--lan", "lan1", "--lan", "lan2", "--lan-addr", "192.0.2.1/24", "--lan-addr6", "2001:db8:1::1/64", "--chute-api-port", "9443",
		"--subnet6", "fd12:3456:789a::/64", "--prefix6", "2001:db8:6400::/56", "--lan-host", "02:00:00:00:00:0a=lan1", "--lan-host", "02:00:00:00:00:0b=lan2",
		"--dns", "198.51.100.53", "--dns", "198.51.100.54:5353",
		"--usp-broker", "ssl://127.0.0.1:1884", "--usp-endpoint-id", "os::012345-uci",
		"--usp-topic", "usp/agents/uci", "--usp-controller", "self::ctl1=usp/controllers/one",
		"--usp-controller", "self::ctl2=usp/controllers/two,developer=acme",
		"--usp-ca", ca, "--usp-username", "gw1", "--usp-password-file", keys,
		"--follow-peer", "http://127.0.0.1:8090," + keys, "--follow-peer", "https://198.51.100.7:8443," + keys + "," + tlscert.Of([]byte("peer")).String(),
		"--follow-hold", "45s",
	}
	file := writeTemp(t, "paradrop", []byte(`
config paradrop 'main'
	option data /srv/pd
	list listen '127.0.0.1:8081'
	list listen "192.0.2.1:8443,[::1]:8082"
	option cgroup_parent '/pd-uci'
	option metrics_open 'yes'
	option max_upload '64Mi'
	option max_unpacked '512Mi'
	option header_timeout '7s'
	option idle_timeout '2m'
	option stall_timeout '11s'
	option min_rate '2048'
	option max_conns '50'
	option max_conns_per_client '5'
	option max_uploads '3'
	option max_uploads_per_client '1'
	option tls_cert '/etc/pd/c.pem'
	option tls_key '/etc/pd/k.pem'
	option memory_overcommit '1.5'
	option gc_percent '80'
	option gateway_ports '22/tcp,53/udp'
	option allow_devices '/dev/ttyUSB0'
	option allow_caps 'NET_RAW'
	option trusted_keys '`+keys+`'
	option require_signed 'on'
	option network '1'
	option ovsdb 'unix:/run/ovs.sock'
	option bridge 'pdbrU'
	option controller '127.0.0.1:6654'
	option wan 'wan0'
	option subnet '10.9.0.0/24'
	list lan 'lan1'
	list lan 'lan2'
	option lan_addr '192.0.2.1/24'
	option lan_addr6 '2001:db8:1::1/64'
	option chute_api_port '9443'
	option subnet6 'fd12:3456:789a::/64'
	option prefix6 '2001:db8:6400::/56'
	list lan_host '02:00:00:00:00:0a=lan1'
	list lan_host '02:00:00:00:00:0B=lan2'
	list dns '198.51.100.53'
	list dns '198.51.100.54:5353'
	option usp_broker 'ssl://127.0.0.1:1884'
	option usp_endpoint_id 'os::012345-uci'
	option usp_topic 'usp/agents/uci'
	list usp_controller 'self::ctl1=usp/controllers/one'
	list usp_controller 'self::ctl2=usp/controllers/two,developer=acme'
	option usp_ca '`+ca+`'
	option usp_username 'gw1'
	option usp_password_file '`+keys+`'
	list follow_peer 'http://127.0.0.1:8090,`+keys+`'
	list follow_peer 'https://198.51.100.7:8443,`+keys+`,`+tlscert.Of([]byte("peer")).String()+`'
	option follow_hold '45s'
`))
	env := &cliEnv{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)}
	// The command line sets every flag but --uci: a flag added later
	// without a line above fails here.
	all := serveFlagNames(t)
	set := map[string]bool{}
	for _, a := range flags {
		if strings.HasPrefix(a, "--") {
			set[strings.SplitN(a[2:], "=", 2)[0]] = true
		}
	}
	for _, n := range all {
		if !set[n] && n != "uci" {
			t.Errorf("flag --%s is not covered", n)
		}
	}
	fromFlags, err := parseServe(env, flags)
	if err != nil {
		t.Fatal(err)
	}
	fromUCI, err := parseServe(env, []string{"--uci", file})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFlags, fromUCI) {
		t.Errorf("flags: %+v\nuci:   %+v", fromFlags, fromUCI)
	}
	if fromUCI.network == nil || len(fromUCI.network.LANPorts) != 2 || fromUCI.listen != "127.0.0.1:8081,192.0.2.1:8443,[::1]:8082" {
		t.Errorf("lists not collected: %+v %q", fromUCI.network, fromUCI.listen)
	}
	// An empty section is serve's defaults, and network '0' turns it off.
	def, err := parseServe(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := parseServe(env, []string{"--uci", writeTemp(t, "empty", []byte("config paradrop\n"))})
	if err != nil || !reflect.DeepEqual(def, empty) {
		t.Errorf("empty section: %+v, %v; want %+v", empty, err, def)
	}
	off, err := parseServe(env, []string{"--uci", writeTemp(t, "off", []byte("config paradrop\n\toption network 'disabled'\n"))})
	if err != nil || off.network != nil {
		t.Errorf("network disabled: %+v, %v", off.network, err)
	}
}

// serveFlagNames lists serve's flags as -h prints them.
func serveFlagNames(t *testing.T) []string {
	t.Helper()
	out := new(bytes.Buffer)
	if _, err := parseServe(&cliEnv{stdout: out, stderr: out}, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) < 20 {
		t.Fatalf("too few flags in -h: %q", out)
	}
	return names
}

// The configuration the package installs names every flag, so that an
// operator finds them all in the file, and parses as it is shipped.
func TestServeUCIShippedConfig(t *testing.T) {
	path := filepath.Join("packaging", "openwrt", "files", "paradrop.config")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range serveFlagNames(t) {
		if n == "uci" {
			continue
		}
		if !regexp.MustCompile(`(?m)^\s*#?(option|list) ` + strings.ReplaceAll(n, "-", "_") + ` `).Match(b) {
			t.Errorf("%s does not mention option %s", path, strings.ReplaceAll(n, "-", "_"))
		}
	}
	opts, err := parseServe(&cliEnv{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)}, []string{"--uci", path})
	if err != nil {
		t.Fatal(err)
	}
	if opts.dataDir != "/srv/paradrop" || opts.listen != "127.0.0.1:8080" || opts.network == nil {
		t.Errorf("shipped config: %+v", opts)
	}
}

func TestServeUCIErrors(t *testing.T) {
	env := &cliEnv{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)}
	for _, tc := range []struct {
		name, file string
		args       []string
		want       string
		usage      bool
	}{
		{"unknown option named with its line", "config paradrop\n\toption data /x\n\toption dta /y\n", nil, "line 3: option dta: unknown option", false},
		{"the uci flag itself", "config paradrop\n\toption uci /etc/config/other\n", nil, "option uci: unknown option", false},
		{"list of a one-value flag", "config paradrop\n\tlist data /x\n", nil, "option data: takes one value", false},
		{"bad boolean", "config paradrop\n\toption metrics_open maybe\n", nil, `"maybe" is not a boolean`, false},
		{"bad value, from the flag's own check", "config paradrop\n\toption subnet 'not a prefix'\n", nil, "option subnet:", false},
		{"limits checked as for flags", "config paradrop\n\toption max_conns '0'\n", nil, "--max-conns must be more than 0", true},
		{"another section type", "config paradrop\nconfig interface lan\n", nil, `line 2: unknown section type "interface"`, false},
		{"two sections", "config paradrop a\nconfig paradrop b\n", nil, "a second", false},
		{"no section", "# nothing\n", nil, "no \"config paradrop\" section", false},
		{"syntax", "config paradrop\n\toption data 'x\n", nil, "unterminated", false},
		{"flags with --uci are refused", "config paradrop\n", []string{"--data", "/x"}, "--uci takes no other flag: set --data in", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, "paradrop", []byte(tc.file))
			_, err := parseServe(env, append([]string{"--uci", path}, tc.args...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			var ue *usageError
			if errors.As(err, &ue) != tc.usage {
				t.Errorf("usage error: %v, want %v", errors.As(err, &ue), tc.usage)
			}
		})
	}
	if _, err := parseServe(env, []string{"--uci", "/nonexistent/paradrop"}); err == nil {
		t.Error("a missing file is accepted")
	}
}
