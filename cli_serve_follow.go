package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"strings"
	"time"

	"paradrop/chute"
	"paradrop/chute/manifest"
	followme "paradrop/follow"
	"paradrop/migrate"
)

// followOptions are follow-me between gateways that trust each other,
// without a fleet controller: the peers this gateway moves chutes to when
// their device goes there.
type followOptions struct {
	peers []followPeer
	hold  time.Duration
	poll  time.Duration // how often the peers are asked; 0 is followPoll
}

// followPeer is a trusted gateway: its API, the file holding its
// operator's token, and its certificate's fingerprint (for HTTPS).
type followPeer struct {
	url, tokenFile, fingerprint string
}

// defaultFollowHold is how long a device must stay on a peer.
const defaultFollowHold = 30 * time.Second

// followPoll is how often the peers are asked for their LAN devices.
const followPoll = 5 * time.Second

func followFlags(fs *flag.FlagSet, o *followOptions) {
	o.hold = defaultFollowHold
	fs.Func("follow-peer", "URL,TOKEN_FILE[,FINGERPRINT]: a gateway trusted with follow-me: its API, a file holding its operator's token, its certificate's fingerprint for https (repeatable; needs the network)", func(s string) error {
		p, err := parseFollowPeer(s)
		if err == nil {
			o.peers = append(o.peers, p)
		}
		return err
	})
	fs.DurationVar(&o.hold, "follow-hold", defaultFollowHold, "how long a followed device must stay on a peer before its chute moves there")
}

// parseFollowPeer reads --follow-peer's URL,TOKEN_FILE[,FINGERPRINT] and
// checks the target as a migration would (https pinned, http to loopback).
func parseFollowPeer(s string) (followPeer, error) {
	parts := strings.Split(s, ",")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return followPeer{}, errors.New("want URL,TOKEN_FILE[,FINGERPRINT]")
	}
	p := followPeer{url: parts[0], tokenFile: parts[1]}
	if len(parts) == 3 {
		p.fingerprint = parts[2]
	}
	if _, err := (migrate.Target{URL: p.url, Token: "-", Fingerprint: p.fingerprint}).Destination(); err != nil {
		return followPeer{}, err
	}
	return p, nil
}

func (o followOptions) check(withNetwork bool) error {
	switch {
	case o.hold <= 0:
		return errors.New("--follow-hold must be more than 0")
	case len(o.peers) > 0 && !withNetwork:
		return errors.New("--follow-peer needs the network (the LAN devices the gateway sees)")
	}
	return nil
}

// target is the peer with its operator's token, read from its file at
// each use: the operator may replace the file when the peer's token
// changes.
func (p followPeer) target() (migrate.Target, error) {
	tok, err := os.ReadFile(p.tokenFile)
	if err != nil {
		return migrate.Target{}, err
	}
	return migrate.Target{URL: p.url, Token: strings.TrimSpace(string(tok)), Fingerprint: p.fingerprint}, nil
}

// startFollow runs follow-me with the peers until stop is called.
func startFollow(o followOptions, mgr *chute.Manager, logf func(string, ...any)) (stop func()) {
	if len(o.peers) == 0 {
		return func() {}
	}
	from, _ := os.Hostname()
	poll := o.poll
	if poll <= 0 {
		poll = followPoll
	}
	p := &followme.Peers{Hold: o.hold, Poll: poll, Logf: logf, Local: func() ([]followme.Binding, []string) { return followLocal(mgr) }}
	for _, fp := range o.peers {
		p.Peers = append(p.Peers, followme.Peer{Name: fp.url,
			ActiveHosts: func(ctx context.Context) ([]string, error) {
				t, err := fp.target()
				if err != nil {
					return nil, err
				}
				return t.ActiveHosts(ctx)
			},
			Move: func(ctx context.Context, b followme.Binding) error {
				t, err := fp.target()
				if err != nil {
					return err
				}
				return followMove(ctx, mgr, t, from, b, logf)
			}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	logf("follow-me with %d peers, hold %v", len(o.peers), o.hold)
	return func() { cancel(); <-done }
}

// followLocal is this gateway's running chutes bound to a device, and the
// devices active on its LAN. A chute in any other state (moving, among
// others) is not moved.
func followLocal(mgr *chute.Manager) ([]followme.Binding, []string) {
	var bs []followme.Binding
	for _, c := range mgr.List() {
		m, _ := c.Manifest.(*manifest.Manifest)
		if m == nil || m.Follow == nil || c.State != chute.Running {
			continue
		}
		bs = append(bs, followme.Binding{Chute: c.Name, Owner: string(c.Owner), MAC: m.Follow.MAC})
	}
	var active []string
	for _, h := range mgr.Hosts() {
		if h.Active {
			active = append(active, h.MAC)
		}
	}
	return bs, active
}

// followMove migrates b's chute to peer t. The peer trusts this gateway
// with its operator's token, which moves the operator's chutes; a
// developer's chute moves with a token of that developer the peer makes
// for the move (so it lands as that developer's, within its quota and
// signing rule there), and not at all to a peer where it is no developer.
// That token is revoked once the move has ended.
func followMove(ctx context.Context, mgr *chute.Manager, t migrate.Target, from string, b followme.Binding, logf func(string, ...any)) error {
	t, revoke, err := targetFor(ctx, t, b.Owner)
	if err != nil {
		return err
	}
	to, err := t.Destination()
	if err == nil {
		var c chute.Change
		if c, err = mgr.Migrate(b.Chute, "", from, to); err == nil {
			go func() {
				wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), migrate.Timeout+time.Minute)
				defer cancel()
				mgr.WaitChange(wctx, c.ID)
				revokeLogged(wctx, revoke, b.Chute, logf)
			}()
			return nil
		}
	}
	revokeLogged(ctx, revoke, b.Chute, logf)
	return err
}

// targetFor is gateway t (with its operator's token) as a chute of owner
// moves to it: with the operator's token for the operator's chute, with a
// token t makes for developer owner otherwise (valid for one migration,
// and refused, migrate.ErrNotDeveloper, where owner is no developer),
// and the function that revokes that token.
func targetFor(ctx context.Context, t migrate.Target, owner string) (migrate.Target, func(context.Context) error, error) {
	if owner == "" {
		return t, func(context.Context) error { return nil }, nil
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a stuck gateway must not hold the loop
	defer cancel()
	return t.ForDeveloper(tctx, owner, migrate.Timeout+time.Minute)
}

// revokeLogged revokes a token made for moving chute, within 10 s.
func revokeLogged(ctx context.Context, revoke func(context.Context) error, chute string, logf func(string, ...any)) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := revoke(rctx); err != nil {
		logf("follow: revoking the token made for moving %s: %v", chute, err)
	}
}
