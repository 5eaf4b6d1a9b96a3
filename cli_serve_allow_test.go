package main

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"

	"paradrop/chute"
)

func TestAllowFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want chute.Privileges
		err  string
	}{
		{nil, chute.Privileges{}, ""},
		{[]string{"--allow-devices", "/dev/ttyUSB0, /dev/video0", "--allow-caps", "net_raw,CAP_NET_ADMIN"},
			chute.Privileges{Devices: []string{"/dev/ttyUSB0", "/dev/video0"}, Capabilities: []string{"NET_RAW", "NET_ADMIN"}}, ""},
		{[]string{"--allow-caps", "SYS_ADMIN"}, chute.Privileges{}, "SYS_ADMIN is never granted"},
		{[]string{"--allow-caps", "NET_RAWW"}, chute.Privileges{}, "not a capability"},
		{[]string{"--allow-devices", "/etc/shadow"}, chute.Privileges{}, "not a clean path under /dev/"},
		{[]string{"--allow-devices", "/dev/../etc/shadow"}, chute.Privileges{}, "not a clean path under /dev/"},
	} {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var got chute.Privileges
		allowFlags(fs, &got)
		err := fs.Parse(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error saying %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}
