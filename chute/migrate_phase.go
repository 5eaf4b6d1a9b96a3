package chute

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// A migration has one point after which the source cannot tell on its own
// whether the chute runs on the target: once the stream's last entry (its
// manifest) has gone out, the target may install, start and keep it, and
// the answer may be lost with the source, the target or the link between.
// So the source saves the migration's phase in the chute's record before
// each step it cannot take back, and resolves it after a restart:
//
//	phase     saved before                 after a crash of the source
//	precopy   sending anything             the chute ran on, untold: as it was
//	stopping  telling and stopping it      the target cannot have it: started here again
//	sent      sending the manifest         the target is asked
//	landed    removing the copy here       removed here
//
// The target keeps a migrated chute unconfirmed until it decides, for good,
// to keep it: just before it answers the source, and only if the source is
// still there to read the answer. A source gone before, a failed start or
// a target restarted before removes it (recover). Asked, a target says yes
// only of a confirmed import; of an unconfirmed one the source asks again,
// until ResolveFor has passed with no answer.

// Destination is the gateway a chute migrates to, as the manager needs it.
type Destination struct {
	URL string // as the chute is told
	// Send sends the migration stream and returns nil once the target
	// reports the chute running there; any error means it may not.
	Send Sender
	// Landed tells whether the chute name, brought by the migration id,
	// runs on the target for good (its import confirmed); an error when
	// the target cannot tell now.
	Landed func(ctx context.Context, name, id string) (bool, error)
	// Saved finds the target again after a restart, through
	// Config.Reopen; it is kept in the chute's record while the
	// migration is under way.
	Saved json.RawMessage
}

// Sender sends a migration stream to the target gateway and returns nil
// once the target reports the chute running there; any error means it
// may not, and an ErrRefused that it does not.
type Sender func(ctx context.Context, stream io.Reader, x Exchange) error

// Exchange is what the source and the target tell each other beside the
// stream.
type Exchange struct {
	// Package is the hex SHA-256 of the chute's package, for the target
	// to say whether it holds it (held.go).
	Package string
	// Held is called if the target holds it, before the stream is first
	// read: it then names the package instead of carrying it.
	Held func()
	// Admitted is called when the target has accepted the package, which
	// the stream holds back the chute's /data for.
	Admitted func()
}

type phase string

const (
	phasePrecopy  phase = "precopy"
	phaseStopping phase = "stopping"
	phaseSent     phase = "sent"
	phaseLanded   phase = "landed"
)

// outbound is a migration away from here under way.
type outbound struct {
	ID    string          `json:"id"`
	To    string          `json:"to"`
	Phase phase           `json:"phase"`
	Dest  json.RawMessage `json:"dest,omitempty"` // Destination.Saved
}

func newMigrationID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// setPhase saves the migration o of name at ph.
func (m *Manager) setPhase(name string, o *outbound, ph phase) error {
	o.Phase = ph
	c := *o
	if err := m.save(name, func(r *record) { r.Outbound = &c }); err != nil {
		return fmt.Errorf("migration phase %s: %w", ph, err)
	}
	return nil
}

// endOutbound forgets the migration of name: it did not happen.
func (m *Manager) endOutbound(name string) error {
	os.Remove(filepath.Join(m.paths.policy(name), handoverFile))
	return m.save(name, func(r *record) { r.Outbound = nil })
}

// errUndecided is a migration whose outcome the target has not told yet,
// left for the next start to ask again.
var errUndecided = errors.New("the target has not said whether the chute runs there")

// resolve asks to whether the migration o of name landed there, again
// and again while it cannot tell, for ResolveFor at most: past that, the
// migration is taken as not landed. It returns errUndecided only if ctx
// ends first.
func (m *Manager) resolve(ctx context.Context, p *progress, name string, o outbound, to Destination) (bool, error) {
	deadline := time.Now().Add(m.cfg.ResolveFor)
	wait := 250 * time.Millisecond
	for told := false; ; told = true {
		landed, err := to.Landed(ctx, name, o.ID)
		if err == nil {
			return landed, nil
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("%w: %v", errUndecided, err)
		}
		if time.Now().After(deadline) {
			p.step("%s has not said for %s whether %s runs there (%v): taken as not", o.To, m.cfg.ResolveFor, name, err)
			return false, nil
		}
		if !told {
			p.step("asking %s whether %s runs there: %v; asking again", o.To, name, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// recoverOutbound ends the migration of name a previous daemon left,
// before the chute is brought back to its desired state; gone is whether
// it landed on its target and was removed here.
func (m *Manager) recoverOutbound(ctx context.Context, p *progress, name string, o outbound) (gone bool, err error) {
	landed := o.Phase == phaseLanded
	switch o.Phase {
	case phaseStopping:
		// Told it moves, it may have stopped serving: it starts afresh.
		p.step("chute %s: a migration to %s was interrupted before it was sent whole: running it here again", name, o.To)
		m.killLeft(ctx, name)
	case phaseSent:
		p.step("chute %s: a migration to %s was interrupted after it was sent: asking the target", name, o.To)
		to := Destination{URL: o.To, Landed: func(context.Context, string, string) (bool, error) { return false, nil }}
		if m.cfg.Reopen != nil {
			if to, err = m.cfg.Reopen(o.Dest); err != nil {
				p.step("chute %s: %v: taken as not landed", name, err)
				to.Landed = func(context.Context, string, string) (bool, error) { return false, nil }
			}
		}
		if landed, err = m.resolve(ctx, p, name, o, to); err != nil {
			return false, fmt.Errorf("chute %q: %w", name, err)
		}
	}
	if landed {
		if err := m.setPhase(name, &o, phaseLanded); err != nil {
			return false, err
		}
		p.step("chute %s runs on %s: removing it here", name, o.To)
		return true, m.forget(name, false)
	}
	if o.Phase == phaseSent {
		p.step("chute %s does not run on %s: running it here again", name, o.To)
	}
	return false, m.endOutbound(name)
}

// recoverUnconfirmed removes the chute name, migrated here but not
// confirmed to its source before this daemon's predecessor stopped: the
// source runs it again, or asks, and hears it does not run here.
func (m *Manager) recoverUnconfirmed(ctx context.Context, p *progress, name string) error {
	p.step("chute %s: its migration here was not confirmed to its source: removing it", name)
	m.killLeft(ctx, name)
	if err := m.forget(name, false); err != nil {
		return err
	}
	return fmt.Errorf("chute %q: migrated here, but a daemon restart came before its source was told: removed", name)
}

// ConfirmImport keeps the chute name, which the migration id brought,
// for good: its source may now be told it runs here, and is, if it asks.
func (m *Manager) ConfirmImport(name, id string) error {
	var err error
	serr := m.save(name, func(r *record) {
		if r.Migration != id || !r.Unconfirmed {
			err = fmt.Errorf("chute %q: no unconfirmed migration %s: %w", name, id, ErrConflict)
			return
		}
		r.Unconfirmed = false
	})
	if serr != nil {
		return serr
	}
	return err
}
