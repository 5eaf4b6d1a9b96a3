package manifest

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"64Mi", 64 << 20, true},
		{"4Ki", 4096, true},
		{"2Gi", 2 << 30, true},
		{"1Ti", 1 << 40, true},
		{"5k", 5000, true},
		{"500M", 500e6, true},
		{"1G", 1e9, true},
		{"1T", 1e12, true},
		{"8191Pi", 0, false},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"8388608Ti", 0, false},
		{"", 0, false},
		{"Mi", 0, false},
		{"64mi", 0, false},
		{"64MiB", 0, false},
		{"64 Mi", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5Gi", 0, false},
		{"1K", 0, false},
	} {
		got, err := ParseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"1000", 1000, true},
		{"100bit", 100, true},
		{"100bps", 100, true},
		{"10Mbit", 10e6, true},
		{"10Mbps", 10e6, true},
		{"500kbit", 500e3, true},
		{"500Kbit", 500e3, true},
		{"1Gbit", 1e9, true},
		{"18446744073709551615", 1<<64 - 1, true},
		{"18446744073Gbit", 18446744073e9, true},
		{"18446744074Gbit", 0, false},
		{"10M", 0, false},
		{"10MB", 0, false},
		{"10mbit", 0, false},
		{"10Tbit", 0, false},
		{"bit", 0, false},
		{"", 0, false},
		{"-5bit", 0, false},
	} {
		got, err := ParseRate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestQuantityStringRoundTrip(t *testing.T) {
	for _, b := range []Bytes{0, 1, 1023, 1024, 64 << 20, 3 << 30, 5 << 40, 1e9, 1<<63 - 1} {
		got, err := ParseBytes(b.String())
		if err != nil || Bytes(got) != b {
			t.Errorf("Bytes %d -> %q -> %d, %v", int64(b), b, got, err)
		}
	}
	for _, r := range []Rate{0, 1, 999, 1000, 10e6, 1e9, 1<<64 - 1} {
		got, err := ParseRate(r.String())
		if err != nil || Rate(got) != r {
			t.Errorf("Rate %d -> %q -> %d, %v", uint64(r), r, got, err)
		}
	}
	if s := Bytes(64 << 20).String(); s != "64Mi" {
		t.Errorf("got %q", s)
	}
	if s := Rate(10e6).String(); s != "10Mbit" {
		t.Errorf("got %q", s)
	}
}

func TestQuantityYAML(t *testing.T) {
	var v struct {
		A, B, C Bytes
		R       Rate
		D       Duration
	}
	if err := yaml.Unmarshal([]byte("a: 0x10\nb: 1_024\nc: \"2Mi\"\nr: 1000\nd: 1m30s\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 16 || v.B != 1024 || v.C != 2<<20 || v.R != 1000 || v.D.String() != "1m30s" {
		t.Fatalf("%+v", v)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a: 16\nb: 1Ki\nc: 2Mi\nr: 1kbit\nd: 1m30s\n"; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	for _, bad := range []string{"a: [1]\n", "a: {x: 1}\n", "a: true\n", "r: 1.5\n", "d: 5\n", "d: [5s]\n"} {
		if err := yaml.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
