package fleet

import (
	"context"
	"strings"
	"time"

	"paradrop/follow"
	"paradrop/usp/codec"
)

// FollowConfig is follow-me across the fleet: the controller reads each
// gateway's LAN devices (Device.Hosts) and chutes bound to one
// (DeploymentUnit.{i}.X_ParaDrop_Follow), and when a bound device has
// stayed on another of these gateways for Hold, has Move carry the chute
// there (the gateways' own migration: the controller holds no chute).
type FollowConfig struct {
	// Gateways are the gateways chutes may follow devices among: those
	// the controller can move chutes between (Move knows their APIs).
	Gateways []string
	Hold     time.Duration
	// Every is how often the gateways are read (default 5 s).
	Every time.Duration
	// Move moves m.Chute from m.Gateway to m.To and returns once the move
	// has ended: one at a time, and none started again while one runs.
	Move func(ctx context.Context, m follow.Move) error
}

// Paths of what follow-me reads of a gateway.
const (
	hostsTable = "Device.Hosts.Host."
	euTable    = "Device.SoftwareModules.ExecutionUnit."
	followKey  = "X_ParaDrop_Follow"
)

// FollowView reads gateway gw's running chutes bound to a device and the
// MACs active on its LAN, in one Get.
func (c *Controller) FollowView(ctx context.Context, gw string) ([]follow.Binding, []string, error) {
	resp, err := c.Request(ctx, gw, codec.Header_GET, &codec.Request{ReqType: &codec.Request_Get{Get: &codec.Get{
		ParamPaths: []string{hostsTable + "*.", duTable + "*.", euTable + "*."},
	}}})
	if err != nil {
		return nil, nil, err
	}
	bs, active := followView(gw, resp.GetGetResp())
	return bs, active, nil
}

// followView reads a Get's answer: a DU with X_ParaDrop_Follow whose EU of
// the same name is Active is a binding; a Host whose Active is true is a
// device there. Paths the gateway does not know (an older agent) give
// nothing.
func followView(gw string, r *codec.GetResp) ([]follow.Binding, []string) {
	var bs []follow.Binding
	var active []string
	running := map[string]bool{}
	for _, p := range r.GetReqPathResults() {
		for _, res := range p.ResolvedPathResults {
			v := res.ResultParams
			switch {
			case strings.HasPrefix(res.ResolvedPath, hostsTable) && v["Active"] == "true" && v["PhysAddress"] != "":
				active = append(active, strings.ToLower(v["PhysAddress"]))
			case strings.HasPrefix(res.ResolvedPath, euTable) && v["Status"] == "Active":
				running[v["Name"]] = true
			case strings.HasPrefix(res.ResolvedPath, duTable) && v[followKey] != "":
				bs = append(bs, follow.Binding{Chute: v["Name"], Owner: v["Vendor"], MAC: strings.ToLower(v[followKey]), Gateway: gw})
			}
		}
	}
	out := bs[:0]
	for _, b := range bs {
		if running[b.Chute] {
			out = append(out, b)
		}
	}
	return out, active
}

// followLoop reads the gateways every cfg.Every until ctx ends and starts
// the moves due, one at a time. A gateway that does not answer is where
// no device is, and its chutes stay where they are.
func (s *Server) followLoop(ctx context.Context, cfg FollowConfig) {
	every := cfg.Every
	if every <= 0 {
		every = 5 * time.Second
	}
	view := func(ctx context.Context, gw string) ([]follow.Binding, []string, error) {
		rctx, cancel := context.WithTimeout(ctx, every)
		defer cancel()
		return s.ctl.FollowView(rctx, gw)
	}
	tr := follow.NewTracker(cfg.Hold)
	follow.Loop(ctx, every, func(ctx context.Context, now time.Time) []follow.Move {
		return followRound(ctx, now, tr, cfg, view, s.cfg.Logf)
	})
}

// followRound is one look at the gateways and the moves it starts.
func followRound(ctx context.Context, now time.Time, tr *follow.Tracker, cfg FollowConfig,
	view func(context.Context, string) ([]follow.Binding, []string, error), logf func(string, ...any)) []follow.Move {
	var bindings []follow.Binding
	active := map[string][]string{}
	for _, gw := range cfg.Gateways {
		bs, macs, err := view(ctx, gw)
		if err != nil {
			logf("fleet: follow: %s: %v", gw, err)
			continue
		}
		bindings = append(bindings, bs...)
		active[gw] = macs
	}
	moves := tr.Observe(now, bindings, active)
	for _, m := range moves {
		logf("fleet: follow: %s's device %s stayed on %s for %v: moving it from %s", m.Chute, m.MAC, m.To, cfg.Hold, m.Gateway)
		if err := cfg.Move(ctx, m); err != nil {
			logf("fleet: follow: moving %s from %s to %s: %v", m.Chute, m.Gateway, m.To, err)
		}
	}
	return moves
}
