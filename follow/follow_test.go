package follow

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// step is one observation: seconds since the start, the gateways where
// the device is active, and the move expected ("" none).
type step struct {
	at     int
	active string // comma-separated
	move   string
}

// The hysteresis, with a hold of 30 s, the chute on A (then where it
// moved): a flap shorter than the hold moves nothing, a stay past it one
// move, a device seen on both or on two others none, and a short flap
// back after a move does not move it back.
func TestHysteresis(t *testing.T) {
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"at home", []step{{0, "A", ""}, {30, "A", ""}, {90, "A", ""}}},
		{"flap shorter than the hold", []step{{0, "A", ""}, {10, "B", ""}, {35, "B", ""}, {39, "A", ""}, {45, "B", ""}, {70, "B", ""}}},
		{"stay past the hold", []step{{0, "A", ""}, {10, "B", ""}, {20, "B", ""}, {39, "B", ""}, {40, "B", "B"}, {50, "B", ""}, {100, "B", ""}}},
		{"seen on both", []step{{0, "A,B", ""}, {40, "A,B", ""}, {100, "A,B", ""}}},
		{"seen on two others", []step{{0, "B,C", ""}, {40, "B,C", ""}, {100, "B,C", ""}}},
		{"both, then the other alone", []step{{0, "A,B", ""}, {40, "B", ""}, {69, "B", ""}, {70, "B", "B"}}},
		{"a gap without the device", []step{{0, "B", ""}, {20, "", ""}, {35, "", ""}, {36, "B", "B"}}},
		{"from one other to another", []step{{0, "B", ""}, {20, "C", ""}, {49, "C", ""}, {50, "C", "C"}}},
		{"moved, then a short flap back", []step{{0, "B", ""}, {30, "B", "B"}, {40, "A", ""}, {55, "A", ""}, {60, "B", ""}, {200, "B", ""}}},
		{"moved, then back for good", []step{{0, "B", ""}, {30, "B", "B"}, {40, "A", ""}, {69, "A", ""}, {70, "A", "A"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &Hysteresis{Hold: 30 * time.Second}
			t0 := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
			home := "A"
			for _, s := range tt.steps {
				var active []string
				if s.active != "" {
					active = strings.Split(s.active, ",")
				}
				got := h.Observe(t0.Add(time.Duration(s.at)*time.Second), home, active)
				if got != s.move {
					t.Fatalf("at %ds on %s with the device on [%s]: move to %q, want %q", s.at, home, s.active, got, s.move)
				}
				if got != "" {
					home = got
				}
			}
		})
	}
}

// The tracker keeps one hysteresis per chute and gateway, finds the
// device among the gateways' active hosts, and forgets bindings that are
// gone (a chute bound again starts its wait afresh).
func TestTracker(t *testing.T) {
	tr := NewTracker(30 * time.Second)
	t0 := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	phone, laptop := "02:00:00:00:00:0a", "02:00:00:00:00:0b"
	bs := []Binding{{Chute: "cam", Owner: "acme", MAC: phone, Gateway: "A"}, {Chute: "web", MAC: laptop, Gateway: "A"}}
	active := map[string][]string{"A": {laptop}, "B": {phone, laptop}}
	if m := tr.Observe(t0, bs, active); len(m) != 0 {
		t.Fatalf("moves at once: %v", m)
	}
	if m := tr.Observe(t0.Add(10*time.Second), bs[1:], active); len(m) != 0 {
		t.Fatalf("moves: %v", m)
	}
	// cam was unbound: its wait starts again.
	if m := tr.Observe(t0.Add(35*time.Second), bs, active); len(m) != 0 {
		t.Fatalf("moves after a rebinding: %v", m)
	}
	m := tr.Observe(t0.Add(65*time.Second), bs, active)
	if want := []Move{{Binding: bs[0], To: "B"}}; !slices.Equal(m, want) {
		t.Fatalf("moves %v, want %v (web's device is also at home: it stays)", m, want)
	}
}
