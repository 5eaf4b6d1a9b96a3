package manifest

import (
	"reflect"
	"strings"
	"testing"
)

func TestPrivilegesParse(t *testing.T) {
	m, err := Parse([]byte(minimal + `devices:
- {path: /dev/ttyUSB0}
- {path: /dev/video0, inside: /dev/cam, access: r}
capabilities: [net_raw, CAP_NET_ADMIN]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{{Path: "/dev/ttyUSB0", Access: "rw"}, {Path: "/dev/video0", Inside: "/dev/cam", Access: "r"}}
	if !reflect.DeepEqual(m.Devices, want) {
		t.Errorf("devices %+v, want %+v", m.Devices, want)
	}
	if !reflect.DeepEqual(m.Capabilities, []string{"NET_RAW", "NET_ADMIN"}) {
		t.Errorf("capabilities %v", m.Capabilities)
	}
}

func TestPrivilegesRefused(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"not under dev", "devices: [{path: /etc/shadow}]\n", "not a clean path under /dev/"},
		{"dotdot", "devices: [{path: /dev/../etc/shadow}]\n", "not a clean path under /dev/"},
		{"dev itself", "devices: [{path: /dev/}]\n", "not a clean path under /dev/"},
		{"relative", "devices: [{path: dev/sda}]\n", "not a clean path under /dev/"},
		{"inside escapes", "devices: [{path: /dev/sda, inside: /etc/x}]\n", `inside "/etc/x"`},
		{"hides null", "devices: [{path: /dev/sda, inside: /dev/null}]\n", "sandbox's own"},
		{"over pts", "devices: [{path: /dev/pts/0}]\n", "sandbox's own"},
		{"bad access", "devices: [{path: /dev/sda, access: rx}]\n", `access "rx"`},
		{"twice", "devices: [{path: /dev/a, inside: /dev/c}, {path: /dev/b, inside: /dev/c}]\n", "listed twice"},
		{"too many", "devices: [" + strings.Repeat("{path: /dev/a},", 17) + "]\n", "at most 16"},
		{"unknown cap", "capabilities: [NET_RAWW]\n", `"NET_RAWW" is not a capability`},
		{"sys_admin", "capabilities: [SYS_ADMIN]\n", "SYS_ADMIN is never granted"},
		{"cap_sys_module", "capabilities: [cap_sys_module]\n", "SYS_MODULE is never granted"},
		{"dac_read_search", "capabilities: [DAC_READ_SEARCH]\n", "never granted"},
		{"bpf", "capabilities: [BPF]\n", "never granted"},
		{"cap twice", "capabilities: [NET_RAW, cap_net_raw]\n", "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal + tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Every capability of the never-list is known, so it is refused as never
// granted, not as a typo; and every requestable one is known.
func TestNeverListKnown(t *testing.T) {
	for _, c := range append([]string{"SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "SYS_BOOT", "SYS_TIME", "MAC_ADMIN", "MAC_OVERRIDE", "BPF", "PERFMON", "MKNOD", "SYS_RESOURCE"}, requestableCaps...) {
		v := &validator{}
		v.capabilities([]string{c})
		for _, err := range v.errs {
			if strings.Contains(err.Error(), "not a capability") {
				t.Errorf("%s: %v", c, err)
			}
		}
	}
}
