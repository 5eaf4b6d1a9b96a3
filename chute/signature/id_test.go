package signature

import "testing"

// An ID with a leading zero nibble prints as minisign prints it (one in
// sixteen keys has one, so the interop test with a fresh key rarely sees it).
func TestFormatIDLeadingZero(t *testing.T) {
	for id, want := range map[uint64]string{0x0C903BF7D50B46A2: "C903BF7D50B46A2", 0xC37D3142FE1DD93D: "C37D3142FE1DD93D"} {
		if got := formatID(id); got != want {
			t.Errorf("formatID(%#x) = %s, want %s", id, got, want)
		}
	}
}
