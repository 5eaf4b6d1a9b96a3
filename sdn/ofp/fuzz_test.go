package ofp

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode checks that Decode never panics and that whatever it accepts
// re-encodes to bytes that decode to the same encoding again.
func FuzzDecode(f *testing.F) {
	dir, names := corpusFiles(f)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, "packets", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if _, err := m.MarshalJSON(); err != nil {
			t.Fatalf("MarshalJSON of a decoded message: %v", err)
		}
		enc, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a decoded message: %v", err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("our own encoding does not decode: %v\n%x", err, enc)
		}
		enc2, err := m2.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
	})
}
