package manifest

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimal = "name: web\nversion: 1.2.0\ncommand: [/bin/httpd, -f]\n"

const full = `
name: web
version: 1.2.0
command: ["/bin/httpd", "-f", "-p", "80"]
env: {KEY: value, N: 1}
user: 1000
resources:
  cpu_weight: 200
  cpu_max: 0.5
  memory: 128Mi
  pids: 100
  disk: 1Gi
  tmp: 8388608
  bandwidth: {egress: 10Mbit, ingress: 500kbps}
restart:
  policy: always
  max_retries: 0
health:
  http: {port: 80}
  interval: 1s
  timeout: 500ms
  retries: 2
update:
  stable_for: 10s
  timeout: 1m
stop_grace: 0s
net:
  wan: true
  lan: [{ip: 192.0.2.10, ports: [80, 554]}, {mac: "02-00-00-00-00-0A"}, {cidr: 192.0.2.0/28}, {ip: "2001:DB8::1"}]
  expose: [{port: 80, gateway_port: 8001}, {port: 53, gateway_port: 8053, proto: udp}]
  redirect: [{to: "203.0.113.5:80", port: 80, proto: tcp}]
  peers: [other-chute]
policy:
  hook: {http: {port: 8080, path: /policy}}
  grace: 60s
follow: {mac: "02-00-00-00-00-0B"}
`

func TestParseDefaults(t *testing.T) {
	m, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := withDefaults()
	want.Name, want.Version, want.Command = "web", "1.2.0", []string{"/bin/httpd", "-f"}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	if m.Resources.Memory != 64<<20 || m.Resources.CPUMax != 1 || m.Restart.Policy != "on-failure" ||
		m.Health != nil || m.Net.WAN || time.Duration(m.StopGrace) != 5*time.Second {
		t.Fatalf("unsafe or undocumented default: %+v", m)
	}

	// Sections present but empty or null keep their defaults too.
	m, err = Parse([]byte(minimal + "resources: {}\nrestart:\nnet:\nhealth: {command: [/bin/true]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Resources != withDefaults().Resources || m.Restart.MaxRetries != 5 {
		t.Fatalf("defaults lost: %+v", m)
	}
	if h := m.Health; h == nil || time.Duration(h.Interval) != 5*time.Second ||
		time.Duration(h.Timeout) != 2*time.Second || h.Retries != 3 {
		t.Fatalf("health defaults: %+v", m.Health)
	}
}

func TestParseFull(t *testing.T) {
	m, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	r := m.Resources
	if r.CPUWeight != 200 || r.CPUMax != 0.5 || r.Memory != 128<<20 || r.Pids != 100 ||
		r.Disk != 1<<30 || r.Tmp != 8<<20 || r.Bandwidth.Egress != 10e6 || r.Bandwidth.Ingress != 500e3 {
		t.Errorf("resources: %+v", r)
	}
	if m.Env["N"] != "1" || m.User != 1000 {
		t.Errorf("env/user: %v %d", m.Env, m.User)
	}
	if m.Restart != (Restart{"always", 0}) {
		t.Errorf("restart: %+v", m.Restart)
	}
	if m.Health.HTTP.Path != "/" || time.Duration(m.Health.Timeout) != 500*time.Millisecond {
		t.Errorf("health: %+v", m.Health)
	}
	if m.StopGrace != 0 || time.Duration(m.Update.Timeout) != time.Minute {
		t.Errorf("durations: %v %v", m.StopGrace, m.Update)
	}
	if m.Follow == nil || m.Follow.MAC != "02:00:00:00:00:0b" {
		t.Errorf("follow not canonical: %+v", m.Follow)
	}
	lan := m.Net.LAN
	if lan[1].MAC != "02:00:00:00:00:0a" || lan[3].IP != "2001:db8::1" || !reflect.DeepEqual(lan[0].Ports, []int{80, 554}) {
		t.Errorf("lan not canonical: %+v", lan)
	}
	if m.Net.Expose[0].Proto != "tcp" || m.Net.Expose[1].Proto != "udp" {
		t.Errorf("expose: %+v", m.Net.Expose)
	}
	if m.Policy.Hook.HTTP.Path != "/policy" || !m.Net.WAN || m.Net.Peers[0] != "other-chute" {
		t.Errorf("policy/net: %+v %+v", m.Policy, m.Net)
	}
}

func TestJSON(t *testing.T) {
	m, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"memory":134217728`, `"egress":10000000`, `"interval":"1s"`, `"stop_grace":"0s"`, `"cpu_max":0.5`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("JSON lacks %s: %s", want, data)
		}
	}
	var back Manifest
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, m) {
		t.Fatalf("JSON round trip:\n%+v\n%+v", &back, m)
	}
	// The policy API may send quantities as strings.
	var res Resources
	if err := json.Unmarshal([]byte(`{"memory":"1Gi","bandwidth":{"egress":"1Mbit","ingress":5}}`), &res); err != nil {
		t.Fatal(err)
	}
	if res.Memory != 1<<30 || res.Bandwidth.Egress != 1e6 || res.Bandwidth.Ingress != 5 {
		t.Fatalf("%+v", res)
	}
	for _, bad := range []string{`{"memory":-1}`, `{"memory":1.5}`, `{"memory":true}`, `{"memory":"1x"}`} {
		if err := json.Unmarshal([]byte(bad), &res); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty"},
		{"not a map", "- a\n", "cannot unmarshal"},
		{"syntax", "name: [\n", "yaml:"},
		{"two docs", minimal + "---\nname: x\n", "more than one YAML document"},
		{"unknown key", minimal + "resources:\n  memroy: 1Mi\n", `line 5: resources.memroy: unknown key "memroy"`},
		{"unknown top key", minimal + "colour: red\n", `line 4: colour: unknown key`},
		{"duplicate key", minimal + "name: x\n", `already defined`},
		{"wrong type", minimal + "resources: {pids: many}\n", "line 4: resources.pids: cannot unmarshal"},
		{"bad quantity", minimal + "resources:\n  memory: 64Mx\n", `line 5: resources.memory: "64Mx" is not a quantity`},
		{"bad quantity flow", minimal + "resources: {disk: 1Mi, memory: 64Mx}\n", `line 4: resources.memory: "64Mx" is not a quantity`},
		{"float quantity", minimal + "resources: {memory: 1.5}\n", `resources.memory: "1.5" is not a quantity`},
		{"negative quantity", minimal + "resources: {memory: -1}\n", `must not be negative`},
		{"huge quantity", minimal + "resources: {memory: 99999999999Ti}\n", `too large`},
		{"bad rate", minimal + "resources: {bandwidth: {egress: 10MB}}\n", `resources.bandwidth.egress: "10MB" is not a rate`},
		{"bad duration", minimal + "stop_grace: 5\n", `line 4: stop_grace: "5" is not a duration`},
		{"bad duration syntax", minimal + "stop_grace: 5 sec\n", `stop_grace: "5 sec" is not a duration`},
		{"list element path", minimal + "net:\n  lan:\n  - {ip: 1.2.3.4, port: 1}\n", `line 6: net.lan[0].port: unknown key`},

		{"name missing", "version: 1.0.0\ncommand: [/a]\n", "name:"},
		{"name upper", "name: Web\nversion: 1.0.0\ncommand: [/a]\n", "name:"},
		{"name digit first", "name: 1web\nversion: 1.0.0\ncommand: [/a]\n", "name:"},
		{"name hyphen last", "name: web-\nversion: 1.0.0\ncommand: [/a]\n", "name:"},
		{"name too long", "name: " + strings.Repeat("a", 33) + "\nversion: 1.0.0\ncommand: [/a]\n", "name:"},
		{"name dot", "name: a.b\nversion: 1.0.0\ncommand: [/a]\n", "name:"},
		{"version missing", "name: web\ncommand: [/a]\n", "version:"},
		{"version partial", "name: web\nversion: 1.2\ncommand: [/a]\n", "version:"},
		{"version v", "name: web\nversion: v1.2.0\ncommand: [/a]\n", "version:"},
		{"command missing", "name: web\nversion: 1.0.0\n", "command: is required"},
		{"command empty", "name: web\nversion: 1.0.0\ncommand: []\n", "command: is required"},
		{"command relative", "name: web\nversion: 1.0.0\ncommand: [httpd]\n", "command: \"httpd\" is not an absolute path"},
		{"command NUL", "name: web\nversion: 1.0.0\ncommand: [/a, \"x\\0y\"]\n", "command[1]: contains a NUL"},
		{"env key =", minimal + "env: {\"A=B\": x}\n", `env: "A=B" is not a valid variable name`},
		{"env key digit", minimal + "env: {1A: x}\n", `is not a valid variable name`},
		{"env key empty", minimal + "env: {\"\": x}\n", `is not a valid variable name`},
		{"env value NUL", minimal + "env: {A: \"x\\0\"}\n", `env.A: value contains a NUL`},
		{"user negative", minimal + "user: -1\n", "user: -1 is out of range"},
		{"user large", minimal + "user: 65536\n", "user: 65536 is out of range"},
		{"cpu_weight 0", minimal + "resources: {cpu_weight: 0}\n", "resources.cpu_weight: 0 is out of range 1..10000"},
		{"cpu_weight big", minimal + "resources: {cpu_weight: 10001}\n", "resources.cpu_weight"},
		{"cpu_max 0", minimal + "resources: {cpu_max: 0}\n", "resources.cpu_max"},
		{"cpu_max big", minimal + "resources: {cpu_max: 65}\n", "resources.cpu_max"},
		{"cpu_max nan", minimal + "resources: {cpu_max: .nan}\n", "resources.cpu_max"},
		{"memory small", minimal + "resources: {memory: 1Mi}\n", "resources.memory: 1Mi is less than the minimum 4Mi"},
		{"pids 0", minimal + "resources: {pids: 0}\n", "resources.pids"},
		{"pids big", minimal + "resources: {pids: 32769}\n", "resources.pids"},
		{"disk small", minimal + "resources: {disk: 1000}\n", "resources.disk"},
		{"disk below a volume", minimal + "resources: {disk: 3Mi}\n", "resources.disk: 3Mi is less than the minimum 4Mi"},
		{"tmp small", minimal + "resources: {tmp: 0}\n", "resources.tmp"},
		{"restart policy", minimal + "restart: {policy: sometimes}\n", `restart.policy: "sometimes"`},
		{"restart retries", minimal + "restart: {max_retries: -1}\n", "restart.max_retries"},
		{"health neither", minimal + "health: {interval: 1s}\n", "health: needs exactly one of command or http"},
		{"health both", minimal + "health: {command: [/bin/true], http: {port: 80}}\n", "health: needs exactly one"},
		{"health relative", minimal + "health: {command: [true]}\n", "health.command"},
		{"health port", minimal + "health: {http: {port: 0}}\n", "health.http.port"},
		{"health path", minimal + "health: {http: {port: 80, path: index.html}}\n", "health.http.path"},
		{"health path space", minimal + "health: {http: {port: 80, path: \"/a b\"}}\n", "health.http.path"},
		{"health interval", minimal + "health: {command: [/bin/true], interval: 10ms}\n", "health.interval"},
		{"health timeout", minimal + "health: {command: [/bin/true], timeout: 0s}\n", "health.timeout"},
		{"health retries", minimal + "health: {command: [/bin/true], retries: 0}\n", "health.retries"},
		{"update timeout", minimal + "update: {timeout: 0s}\n", "update.timeout"},
		{"update timeout big", minimal + "update: {timeout: 11m}\n", "update.timeout"},
		{"stable_for over timeout", minimal + "update: {stable_for: 40s}\n", "update.stable_for"},
		{"stable_for negative", minimal + "update: {stable_for: -1s}\n", "update.stable_for"},
		{"stop_grace negative", minimal + "stop_grace: -1s\n", "stop_grace"},
		{"stop_grace big", minimal + "stop_grace: 6m\n", "stop_grace"},
		{"lan none", minimal + "net: {lan: [{ports: [80]}]}\n", "net.lan[0]: needs exactly one of ip, mac or cidr"},
		{"lan two", minimal + "net: {lan: [{ip: 192.0.2.1, cidr: 192.0.2.0/24}]}\n", "net.lan[0]: needs exactly one"},
		{"lan ip", minimal + "net: {lan: [{ip: 192.0.2.300}]}\n", "net.lan[0].ip"},
		{"lan ip zone", minimal + "net: {lan: [{ip: \"fe80::1%eth0\"}]}\n", "net.lan[0].ip"},
		{"lan mac", minimal + "net: {lan: [{mac: \"02:00:00:00:00\"}]}\n", "net.lan[0].mac"},
		{"lan mac long", minimal + "net: {lan: [{mac: \"02:00:00:00:00:00:00:01\"}]}\n", "net.lan[0].mac"},
		{"follow no mac", minimal + "follow: {}\n", "follow.mac"},
		{"follow short mac", minimal + "follow: {mac: \"02:00:00:00:00\"}\n", "follow.mac"},
		{"follow long mac", minimal + "follow: {mac: \"02:00:00:00:00:00:00:01\"}\n", "follow.mac"},
		{"follow group mac", minimal + "follow: {mac: \"ff:ff:ff:ff:ff:ff\"}\n", "follow.mac"},
		{"follow multicast mac", minimal + "follow: {mac: \"01:00:5e:00:00:01\"}\n", "follow.mac"},
		{"follow unknown field", minimal + "follow: {mac: \"02:00:00:00:00:01\", ip: 198.51.100.2}\n", `follow.ip: unknown key`},
		{"lan cidr", minimal + "net: {lan: [{cidr: 192.0.2.0/33}]}\n", "net.lan[0].cidr"},
		{"lan cidr host bits", minimal + "net: {lan: [{cidr: 192.0.2.5/28}]}\n", "did you mean 192.0.2.0/28"},
		{"lan port", minimal + "net: {lan: [{ip: 192.0.2.1, ports: [0]}]}\n", "net.lan[0].ports[0]"},
		{"expose port", minimal + "net: {expose: [{port: 70000, gateway_port: 80}]}\n", "net.expose[0].port"},
		{"expose gateway_port", minimal + "net: {expose: [{port: 80}]}\n", "net.expose[0].gateway_port"},
		{"expose proto", minimal + "net: {expose: [{port: 80, gateway_port: 80, proto: sctp}]}\n", "net.expose[0].proto"},
		{"expose twice", minimal + "net: {expose: [{port: 80, gateway_port: 80}, {port: 81, gateway_port: 80}]}\n", "net.expose[1].gateway_port: 80/tcp is exposed twice"},
		{"redirect to host name", minimal + "net: {redirect: [{to: \"example.com:80\", port: 80}]}\n", "net.redirect[0].to"},
		{"redirect to no port", minimal + "net: {redirect: [{to: 203.0.113.5, port: 80}]}\n", "net.redirect[0].to"},
		{"redirect to port 0", minimal + "net: {redirect: [{to: \"203.0.113.5:0\", port: 80}]}\n", "net.redirect[0].to"},
		{"redirect port", minimal + "net: {redirect: [{to: \"203.0.113.5:80\"}]}\n", "net.redirect[0].port"},
		{"redirect proto", minimal + "net: {redirect: [{to: \"203.0.113.5:80\", port: 80, proto: icmp}]}\n", "net.redirect[0].proto"},
		{"redirect twice", minimal + "net: {redirect: [{to: \"203.0.113.5:80\", port: 80}, {to: \"203.0.113.6:80\", port: 80}]}\n", "net.redirect[1].port"},
		{"peer name", minimal + "net: {peers: [Other]}\n", "net.peers[0]"},
		{"peer self", minimal + "net: {peers: [web]}\n", "not its own peer"},
		{"peer twice", minimal + "net: {peers: [a, a]}\n", "net.peers[1]: \"a\" is listed twice"},
		{"hook without http", minimal + "policy: {hook: {}}\n", "policy.hook: needs http"},
		{"hook port", minimal + "policy: {hook: {http: {port: 0}}}\n", "policy.hook.http.port"},
		{"grace big", minimal + "policy: {grace: 61s}\n", "policy.grace"},
		{"grace negative", minimal + "policy: {grace: -1s}\n", "policy.grace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; got %+v", m)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsAll(t *testing.T) {
	err := (&Manifest{}).Validate()
	if err == nil {
		t.Fatal("zero manifest is valid")
	}
	for _, f := range []string{"name:", "version:", "command:", "resources.cpu_weight:", "resources.memory:", "restart.policy:", "update.timeout:"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("%q missing from %v", f, err)
		}
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.2.0", "1.10.0", -1},
		{"1.2.0", "1.2.0", 0},
		{"2.0.0", "2.0.0-rc.1", 1},
		{"1.0.0+build.1", "1.0.0", 0},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.beta", "1.0.0-beta", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-rc.1", "1.0.0-beta.11", 1},
		{"1.0.0-x-y.7+b-1", "1.0.0-x-y.7", 0},
		{"0.9.99", "0.10.0", -1},
	} {
		got, err := Compare(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("Compare(%q, %q) = %d, %v; want %d", tc.a, tc.b, got, err, tc.want)
		}
	}
	// SemVer 2.0 as written: no "v", no shorthand, no leading zeros, no
	// empty identifiers.
	for _, bad := range []string{"1.2", "1", "v1.2.0", "01.2.0", "1.02.0", "1.2.03", "1.2.0-01",
		"1.2.0-", "1.2.0+", "1.2.0-a..b", "1.2.0+a+b", "1.2.3.4", " 1.2.0", "1.2.0-é", ""} {
		if _, err := Compare(bad, "1.2.0"); !errors.Is(err, errNotSemver) {
			t.Errorf("Compare accepted %q: %v", bad, err)
		}
	}
}
