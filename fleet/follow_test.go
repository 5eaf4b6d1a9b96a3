package fleet

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"paradrop/follow"
	"paradrop/usp/codec"
)

func resolved(path string, kv ...string) *codec.GetResp_ResolvedPathResult {
	p := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return &codec.GetResp_ResolvedPathResult{ResolvedPath: path, ResultParams: p}
}

// A gateway's Get answer gives its running chutes bound to a device and
// its active devices; a stopped chute, an unbound one, an inactive device
// give nothing.
func TestFollowView(t *testing.T) {
	r := &codec.GetResp{ReqPathResults: []*codec.GetResp_RequestedPathResult{
		{RequestedPath: hostsTable + "*.", ResolvedPathResults: []*codec.GetResp_ResolvedPathResult{
			resolved(hostsTable+"1.", "PhysAddress", "02:00:00:00:00:0A", "Active", "true"),
			resolved(hostsTable+"2.", "PhysAddress", "02:00:00:00:00:0b", "Active", "false"),
		}},
		{RequestedPath: duTable + "*.", ResolvedPathResults: []*codec.GetResp_ResolvedPathResult{
			resolved(duTable+"1.", "Name", "cam", "Vendor", "acme", followKey, "02:00:00:00:00:0a"),
			resolved(duTable+"2.", "Name", "web", "Vendor", "", followKey, ""),
			resolved(duTable+"3.", "Name", "idle", "Vendor", "", followKey, "02:00:00:00:00:0b"),
		}},
		{RequestedPath: euTable + "*.", ResolvedPathResults: []*codec.GetResp_ResolvedPathResult{
			resolved(euTable+"1.", "Name", "cam", "Status", "Active"),
			resolved(euTable+"2.", "Name", "web", "Status", "Active"),
			resolved(euTable+"3.", "Name", "idle", "Status", "Idle"),
		}},
	}}
	bs, active := followView("gw1", r)
	if want := []follow.Binding{{Chute: "cam", Owner: "acme", MAC: "02:00:00:00:00:0a", Gateway: "gw1"}}; !slices.Equal(bs, want) {
		t.Errorf("bindings %v, want %v", bs, want)
	}
	if want := []string{"02:00:00:00:00:0a"}; !slices.Equal(active, want) {
		t.Errorf("active %v, want %v", active, want)
	}
}

// The fleet moves a chute from its gateway to the one its device stayed
// on past the hold, once, and not on a flap; a gateway that does not
// answer has no device.
func TestFollowRound(t *testing.T) {
	phone := "02:00:00:00:00:0a"
	home := "gw1"
	where := map[string]bool{}
	down := map[string]bool{}
	view := func(_ context.Context, gw string) ([]follow.Binding, []string, error) {
		if down[gw] {
			return nil, nil, errors.New("timeout")
		}
		var bs []follow.Binding
		if gw == home {
			bs = []follow.Binding{{Chute: "cam", Owner: "acme", MAC: phone, Gateway: gw}}
		}
		var macs []string
		if where[gw] {
			macs = []string{phone}
		}
		return bs, macs, nil
	}
	var moved []string
	cfg := FollowConfig{Gateways: []string{"gw1", "gw2", "gw3"}, Hold: 30 * time.Second,
		Move: func(_ context.Context, m follow.Move) error {
			moved = append(moved, m.Chute+":"+m.Gateway+"->"+m.To)
			home = m.To
			return nil
		}}
	tr := follow.NewTracker(cfg.Hold)
	t0 := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	for _, s := range []struct {
		at    int
		on    string // the gateway the device is on
		down  string // a gateway that does not answer
		moved []string
	}{
		{0, "gw1", "", nil},
		{10, "gw2", "", nil},
		{35, "gw1", "", nil}, // a flap
		{40, "gw2", "", nil},
		{55, "gw2", "gw2", nil}, // gw2 does not answer: not seen there
		{69, "gw2", "", nil},
		{70, "gw2", "", []string{"cam:gw1->gw2"}},
		{80, "gw1", "", nil}, // a flap back
		{95, "gw2", "", nil},
		{200, "gw2", "", nil},
	} {
		where = map[string]bool{s.on: true}
		down = map[string]bool{s.down: true}
		moved = nil
		followRound(context.Background(), t0.Add(time.Duration(s.at)*time.Second), tr, cfg, view, t.Logf)
		if !slices.Equal(moved, s.moved) {
			t.Fatalf("at %ds, device on %s: moved %v, want %v", s.at, s.on, moved, s.moved)
		}
	}
}
