package usp

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		segs int
		obj  bool
		ok   bool
	}{
		{"Device.", 1, true, true},
		{"Device.DeviceInfo.Manufacturer", 3, false, true},
		{"Device.SoftwareModules.DeploymentUnit.1.Name", 5, false, true},
		{"Device.SoftwareModules.DeploymentUnit.*.", 4, true, true},
		{"Device.SoftwareModules.DeploymentUnit.{i}.", 4, true, true},
		{"Device.Local_Agent.X-1", 3, false, true},
		{"", 0, false, false},
		{".", 0, false, false},
		{"Device..Name", 0, false, false},
		{"Device.SoftwareModules.DeploymentUnit.1", 0, false, false}, // an instance is an object
		{"Device.SoftwareModules.DeploymentUnit.01.", 0, false, false},
		{"Device.SoftwareModules.DeploymentUnit.0.", 0, false, false},
		{"Device.SoftwareModules.DeploymentUnit.4294967296.", 0, false, false},
		{"Device.SoftwareModules.DeploymentUnit.+1.", 0, false, false},
		{"1.Device.", 0, false, false},
		{"Device.SoftwareModules.DeploymentUnit.[Name==\"a\"].", 4, true, true},
		{"Device.SoftwareModules.ExecutionUnit.[Name==\"a.b\"&&Status!=\"Idle\"].Version", 5, false, true},
		{"Device.SoftwareModules.ExecutionUnit.[Version>=1.5].", 4, true, true},
		{"Device.SoftwareModules.ExecutionUnit.[Name==\"[x]&&y\"].", 4, true, true},
		{"Device.SoftwareModules.ExecutionUnit.[Name==\"a].", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.[Name=\"a\"].", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.[Name==].", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.[==1].", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.[Name==1&&].", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.[Name==1]x.", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.x[Name==1].", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.[[Name==1]].", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.[Name==1].Status]", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.[Name==\"a\"\"b\"].", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.[Name==1]", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.1.Status+", 0, false, false},
		{"Device.SoftwareModules.ExecutionUnit.#.", 0, false, false},
		{"Device.DeviceInfo.1abc", 0, false, false},
		{"Device.Device Info.", 0, false, false},
		{"Device." + strings.Repeat("a.", 40), 0, false, false},
		{"Device." + strings.Repeat("a", MaxPath), 0, false, false},
	} {
		p, err := ParsePath(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParsePath(%q): %v", tc.in, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrPathSyntax) {
				t.Errorf("ParsePath(%q): %v is not ErrPathSyntax", tc.in, err)
			}
			continue
		}
		if len(p.Segs) != tc.segs || p.Object != tc.obj || p.String() != tc.in {
			t.Errorf("ParsePath(%q) = %+v", tc.in, p)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"Device.", "Device.DeviceInfo.UpTime", "Device.SoftwareModules.ExecutionUnit.*.Status", "Device.X.{i}.",
		`Device.SoftwareModules.ExecutionUnit.[Name=="a.b"&&Version>=1].Status`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		if p.String() != s || len(p.Segs) == 0 || len(p.Segs) > maxSegments {
			t.Fatalf("ParsePath(%q) = %+v", s, p)
		}
		for i, seg := range p.Segs {
			if _, search := p.search[i]; seg == "" || (!search && strings.ContainsAny(seg, ".[]\"")) {
				t.Fatalf("ParsePath(%q): segment %q", s, seg)
			}
		}
	})
}
