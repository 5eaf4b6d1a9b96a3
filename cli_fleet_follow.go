//go:build !router

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"paradrop/fleet"
	followme "paradrop/follow"
)

// fleetFollowOptions are the fleet's follow-me: the gateways chutes may
// follow devices among, with their APIs. The controller holds each one's
// operator token (it is the operator's fleet): with the source's it asks
// the source to migrate the chute; with the target's it has the target
// make a token of the chute's developer for that one move (or, for the
// operator's chute, passes the target's operator token to the source).
type fleetFollowOptions struct {
	gateways    map[string]followPeer
	hold, every time.Duration
}

func fleetFollowFlags(fs *flag.FlagSet, o *fleetFollowOptions) {
	o.gateways = map[string]followPeer{}
	fs.Func("follow-gateway", "ENDPOINT_ID=URL,TOKEN_FILE[,FINGERPRINT]: a gateway chutes may follow devices to and from: its agent's endpoint ID, its API, a file holding its operator's token, its certificate's fingerprint for https (repeatable)", func(s string) error {
		id, rest, ok := strings.Cut(s, "=")
		if !ok || fleet.CheckName(id) != nil {
			return errors.New("want ENDPOINT_ID=URL,TOKEN_FILE[,FINGERPRINT]")
		}
		p, err := parseFollowPeer(rest)
		if err != nil {
			return err
		}
		o.gateways[id] = p
		return nil
	})
	fs.DurationVar(&o.hold, "follow-hold", defaultFollowHold, "how long a followed device must stay on another gateway before its chute moves there")
	fs.DurationVar(&o.every, "follow-every", followPoll, "how often the --follow-gateway gateways are read")
}

// config is the fleet server's follow-me, nil without gateways.
func (o fleetFollowOptions) config(logf func(string, ...any)) (*fleet.FollowConfig, error) {
	if len(o.gateways) == 0 {
		return nil, nil
	}
	if o.hold <= 0 || o.every <= 0 {
		return nil, errors.New("--follow-hold and --follow-every: want positive durations")
	}
	cfg := &fleet.FollowConfig{Hold: o.hold, Every: o.every, Move: func(ctx context.Context, m followme.Move) error {
		return fleetFollowMove(ctx, o.gateways, m, logf)
	}}
	for id := range o.gateways {
		cfg.Gateways = append(cfg.Gateways, id)
	}
	return cfg, nil
}

// fleetFollowMove asks m's source gateway to migrate its chute to m.To.
func fleetFollowMove(ctx context.Context, gws map[string]followPeer, m followme.Move, logf func(string, ...any)) error {
	src, err := gws[m.Gateway].target()
	if err != nil {
		return fmt.Errorf("gateway %s: %w", m.Gateway, err)
	}
	dst, err := gws[m.To].target()
	if err != nil {
		return fmt.Errorf("gateway %s: %w", m.To, err)
	}
	to, revoke, err := targetFor(ctx, dst, m.Owner)
	if err != nil {
		return err
	}
	defer revokeLogged(ctx, revoke, m.Chute, logf)
	return src.Migrate(ctx, m.Chute, to)
}
