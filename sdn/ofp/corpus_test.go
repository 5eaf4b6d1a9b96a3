package ofp

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// jsonNotCompared lists corpus files whose messages we decode and re-encode
// byte for byte, but whose expected JSON we do not reproduce, and why.
var jsonNotCompared = map[string]string{
	// Table features bodies (property lists of instruction/action/OXM ids)
	// are kept raw: a controller of OVS never needs to set them.
	"4-55-ofp_table_features_request.packet": "table features body kept raw",
	"4-56-ofp_table_features_reply.packet":   "table features body kept raw",
	// ONF flow monitor is an ONF experimenter multipart; its body is kept raw.
	"4-63-onf_flow_monitor_request.packet": "ONF flow monitor body kept raw",
	// NXAST_LEARN is kept raw as NXActionUnknown; we do not generate learn flows.
	"libofproto-OFP13-flow_mod.packet": "NXAST_LEARN kept raw",
	// The expected decode parses the packet_out payload as Ethernet/IPv4/ICMP
	// with Ryu's packet library; we keep payloads as bytes.
	"libofproto-OFP13-ofp_packet_out_packet_library.packet": "payload parsed by a packet library",
}

// mustReject lists corpus files that must fail to decode, with the cause.
// The truncated64 file as shipped is empty; TestTruncated64 also checks
// the cut it stands for.
var mustReject = map[string]error{
	"libofproto-OFP13-flow_mod.truncated64": ErrTruncated,
}

// TestTruncated64 rejects the libofproto flow_mod cut to 64 bytes, which is
// what the corpus's truncated64 case describes: the match announces 70
// bytes but the message ends first.
func TestTruncated64(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(corpusDir(t), "packets", "libofproto-OFP13-flow_mod.packet"))
	if err != nil {
		t.Fatal(err)
	}
	cut := append([]byte{}, raw[:64]...)
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"header length intact", cut, ErrTruncated},
		{"header length says 64", append(append([]byte{}, cut[:2]...), append([]byte{0, 64}, cut[4:]...)...), ErrTruncated},
	} {
		_, err := Decode(tc.b)
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode = %v, want *DecodeError for %v", tc.name, err, tc.want)
		}
	}
}

func corpusDir(t testing.TB) string {
	dir := os.Getenv("PARADROP_OF13_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "testdata", "of13-peer-corpus")
	}
	if _, err := os.Stat(filepath.Join(dir, "packets")); err != nil {
		t.Fatalf("OpenFlow 1.3 peer corpus not found (set PARADROP_OF13_CORPUS): %v", err)
	}
	return dir
}

func corpusFiles(t testing.TB) (string, []string) {
	dir := corpusDir(t)
	ents, err := os.ReadDir(filepath.Join(dir, "packets"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) < 80 {
		t.Fatalf("corpus has %d packet files, expected 82", len(names))
	}
	return dir, names
}

// normJSON parses JSON keeping numbers exact and drops length fields,
// which an encoder computes rather than copies.
func normJSON(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, b)
	}
	return dropLengths(v)
}

func dropLengths(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "len" || k == "length" {
				delete(v, k)
				continue
			}
			v[k] = dropLengths(x)
		}
	case []any:
		for i := range v {
			v[i] = dropLengths(v[i])
		}
	}
	return v
}

func TestCorpus(t *testing.T) {
	dir, names := corpusFiles(t)
	seen := map[string]bool{}
	for _, name := range names {
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "packets", name))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(raw)
			if want, ok := mustReject[name]; ok {
				var de *DecodeError
				if err == nil || !errors.As(err, &de) || !errors.Is(err, want) {
					t.Fatalf("Decode = %v, want a *DecodeError for %v", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			out, err := m.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			if !bytes.Equal(out, raw) {
				t.Errorf("re-encoding differs\n got %x\nwant %x", out, raw)
			}
			if why, skip := jsonNotCompared[name]; skip {
				t.Logf("JSON not compared: %s", why)
				return
			}
			want, err := os.ReadFile(filepath.Join(dir, "expected", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if g, w := normJSON(t, got), normJSON(t, want); !reflect.DeepEqual(g, w) {
				gi, _ := json.MarshalIndent(g, "", " ")
				wi, _ := json.MarshalIndent(w, "", " ")
				t.Errorf("JSON differs\n got %s\nwant %s", gi, wi)
			}
		})
	}
	// The exception lists must name real files, or they hide nothing.
	for name := range jsonNotCompared {
		if !seen[name] {
			t.Errorf("jsonNotCompared names missing file %s", name)
		}
	}
	for name := range mustReject {
		if !seen[name] {
			t.Errorf("mustReject names missing file %s", name)
		}
	}
}

// TestCorpusTruncations checks that every proper prefix of every corpus
// message is rejected with a typed error rather than a panic or a
// half-decoded message.
func TestCorpusTruncations(t *testing.T) {
	dir, names := corpusFiles(t)
	for _, name := range names {
		if strings.Contains(name, "truncated") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, "packets", name))
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(raw); n++ {
			_, err := Decode(raw[:n])
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("%s cut to %d bytes: Decode = %v, want *DecodeError", name, n, err)
			}
		}
	}
}
