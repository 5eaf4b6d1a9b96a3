package manifest

import (
	"bytes"
	"encoding/json"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// validates again and survives a round trip through JSON (the API) and YAML.
func FuzzParse(f *testing.F) {
	for _, s := range []string{minimal, full, "", "a: b\n", minimal + "health: {}\n",
		minimal + "resources: {memory: 64Mx}\n", minimal + "net: {lan: [{cidr: 10.0.0.0/8}]}\n",
		minimal + "devices: [{path: /dev/ttyUSB0, inside: /dev/serial/a, access: r}]\ncapabilities: [cap_net_raw]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed manifest does not validate: %v", err)
		}
		j, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON Manifest
		if err := json.Unmarshal(j, &fromJSON); err != nil {
			t.Fatalf("JSON %s: %v", j, err)
		}
		if j2, _ := json.Marshal(&fromJSON); !bytes.Equal(j, j2) {
			t.Fatalf("JSON round trip:\n%s\n%s", j, j2)
		}
		y, err := yaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Parse(y)
		if err != nil {
			t.Fatalf("re-parse of\n%s: %v", y, err)
		}
		if j2, _ := json.Marshal(m2); !bytes.Equal(j, j2) {
			t.Fatalf("YAML round trip:\n%s\n%s", j, j2)
		}
	})
}
