package follow

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// Between peers: the device on peer B alone past the hold moves the chute
// there, once, through B's Move; a peer that does not answer is where the
// device is not; with nothing bound no peer is asked.
func TestPeersRound(t *testing.T) {
	phone := "02:00:00:00:00:0a"
	var local, onB []string
	bindings := []Binding{{Chute: "cam", Owner: "acme", MAC: phone}}
	var moved []string
	asked := 0
	p := &Peers{Hold: 30 * time.Second, Poll: time.Second, Logf: t.Logf,
		Local: func() ([]Binding, []string) { return bindings, local },
		Peers: []Peer{
			{Name: "https://b", ActiveHosts: func(context.Context) ([]string, error) { asked++; return onB, nil },
				Move: func(_ context.Context, b Binding) error { moved = append(moved, b.Chute+"->b"); return nil }},
			{Name: "https://c", ActiveHosts: func(context.Context) ([]string, error) { return nil, errors.New("unreachable") },
				Move: func(_ context.Context, b Binding) error { moved = append(moved, b.Chute+"->c"); return nil }},
		}}
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	for _, s := range []struct {
		at          int
		local, onB  bool
		wantMovedTo string
	}{
		{0, true, false, ""},
		{10, true, true, ""}, // on both
		{20, false, true, ""},
		{45, true, false, ""}, // back home before the hold
		{50, false, true, ""},
		{79, false, true, ""},
		{80, false, true, "cam->b"},
	} {
		local, onB = nil, nil
		if s.local {
			local = []string{phone}
		}
		if s.onB {
			onB = []string{phone}
		}
		moved = nil
		p.Round(ctx, t0.Add(time.Duration(s.at)*time.Second))
		var want []string
		if s.wantMovedTo != "" {
			want = []string{s.wantMovedTo}
		}
		if !slices.Equal(moved, want) {
			t.Fatalf("at %ds: moved %v, want %v", s.at, moved, want)
		}
	}
	bindings = nil // moved away: this gateway holds it no more
	asked = 0
	p.Round(ctx, t0.Add(100*time.Second))
	if asked != 0 {
		t.Errorf("peers asked %d times with nothing bound", asked)
	}
}
