package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ofpCorpusFile(t *testing.T, name string) []byte {
	t.Helper()
	dir := os.Getenv("PARADROP_OF13_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "shared", "testdata", "of13-peer-corpus")
	}
	b, err := os.ReadFile(filepath.Join(dir, "packets", name))
	if err != nil {
		t.Fatalf("OpenFlow corpus file (set PARADROP_OF13_CORPUS): %v", err)
	}
	return b
}

func TestOfpDecode(t *testing.T) {
	flowMod := ofpCorpusFile(t, "4-2-ofp_flow_mod.packet")
	hello := ofpCorpusFile(t, "libofproto-OFP13-hello.packet")
	stream := append(append(append([]byte{}, hello...), flowMod...), hello...)
	truncated := flowMod[:64]
	dir := t.TempDir()
	file := filepath.Join(dir, "stream.bin")
	if err := os.WriteFile(file, stream, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		stdin      []byte
		code       int
		wantOut    []string // class names, one per output line
		wantStderr string
	}{
		{"stream from stdin", []string{"decode", "--roundtrip", "-"}, stream, 0, []string{"OFPHello", "OFPFlowMod", "OFPHello"}, ""},
		{"stream from file", []string{"decode", file}, nil, 0, []string{"OFPHello", "OFPFlowMod", "OFPHello"}, ""},
		{"empty input", []string{"decode", "-"}, nil, 0, nil, ""},
		{"truncated", []string{"decode", "-"}, truncated, 1, nil, "truncated"},
		{"trailing garbage", []string{"decode", "-"}, append(append([]byte{}, hello...), 4, 0), 1, []string{"OFPHello"}, "message 1 at byte 16"},
		{"missing file", []string{"decode", filepath.Join(dir, "nope")}, nil, 1, nil, "no such file"},
		{"usage", []string{"encode"}, nil, 2, nil, "usage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := ofpDecode(tc.args, bytes.NewReader(tc.stdin), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.wantStderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), tc.wantStderr)
			}
			if n := strings.Count(errb.String(), "\n"); n > 1 {
				t.Errorf("stderr has %d lines, want at most one: %s", n, errb.String())
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if out.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tc.wantOut) {
				t.Fatalf("%d output lines, want %d:\n%s", len(lines), len(tc.wantOut), out.String())
			}
			for i, l := range lines {
				var obj map[string]json.RawMessage
				if err := json.Unmarshal([]byte(l), &obj); err != nil {
					t.Fatalf("line %d is not JSON: %v", i, err)
				}
				if _, ok := obj[tc.wantOut[i]]; !ok || len(obj) != 1 {
					t.Errorf("line %d = %s, want an %s object", i, l, tc.wantOut[i])
				}
			}
		})
	}
}

// TestOfpRoundtripDetectsDrift checks that --roundtrip fails on a message
// that decodes but does not re-encode to the same bytes: a port name with
// bytes after its terminating NUL.
func TestOfpRoundtripDetectsDrift(t *testing.T) {
	b := ofpCorpusFile(t, "4-39-ofp_port_status.packet")
	b = append([]byte{}, b...)
	// ofp_port_status: header 8, reason+pad 8, port_no+pad 8, hw_addr+pad 8,
	// then the 16-byte name; its last byte is past any NUL.
	b[8+8+8+8+15] = 'x'
	var out, errb bytes.Buffer
	if code := ofpDecode([]string{"decode", "--roundtrip", "-"}, bytes.NewReader(b), &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "does not re-encode") {
		t.Errorf("stderr: %s", errb.String())
	}
	if code := ofpDecode([]string{"decode", "-"}, bytes.NewReader(b), &out, &errb); code != 0 {
		t.Fatalf("without --roundtrip: exit %d, want 0", code)
	}
}
