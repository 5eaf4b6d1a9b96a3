package chute

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"paradrop/chute/archive"
	"paradrop/chute/manifest"
	"paradrop/store"
)

// mountpoints are the directories the sandbox mounts over in every rootfs;
// they are made at install time because the rootfs is read-only at run time.
// etc is the lower layer of the chute's /etc (see sandbox.Spec.Etc).
var mountpoints = []string{"proc", "dev", "sys", "tmp", "data", "paradrop", "etc"}

// staged is an uploaded package unpacked aside, not yet part of any chute.
type staged struct {
	dir      string
	manifest *manifest.Manifest
	signedBy string // ID of the key whose signature was verified; "" if none
}

// stage unpacks a package into a fresh staging directory and parses its
// manifest. The package is first copied aside whole and, if it has a
// signature or its seal requires one, verified: nothing of a refused
// package is unpacked. The copy and the signature stay in the staged
// directory (keptPackage, keptSignature). On error nothing is left behind.
func (m *Manager) stage(ctx context.Context, pkg io.Reader, seal Seal) (*staged, error) {
	sig, err := seal.check()
	if err != nil {
		return nil, err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	dir := filepath.Join(m.paths.staging(), hex.EncodeToString(rnd[:]))
	// Every package is spooled whole and kept beside its rootfs, as it
	// came with its signature: a migration sends it on as installed, for
	// the target to verify again (migrate.go).
	f, err := spool(pkg, dir+".pkg", m.cfg.MaxUpload)
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	signedBy, sigBytes, err := verifySpooled(f, seal, sig)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("stage package: %w", err)
	}
	s, err := m.unpack(ctx, f, dir)
	if err == nil {
		err = keepPackage(f.Name(), sigBytes, dir)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.signedBy = signedBy
	return s, nil
}

func (m *Manager) unpack(ctx context.Context, pkg io.Reader, dir string) (*staged, error) {
	yml, err := archive.Extract(ctx, pkg, dir, archive.Limits{MaxUpload: m.cfg.MaxUpload, Space: m.cfg.Unpack})
	switch {
	case errors.Is(err, archive.ErrTooLarge):
		return nil, fmt.Errorf("%w: %v", ErrTooLarge, err)
	case errors.Is(err, archive.ErrUnsafe), errors.Is(err, archive.ErrNoManifest), errors.Is(err, archive.ErrInvalid):
		return nil, fmt.Errorf("%w: package: %v", ErrInvalid, err)
	case err != nil:
		return nil, fmt.Errorf("unpack package: %w", err)
	}
	man, err := manifest.Parse(yml)
	if err != nil {
		return nil, fmt.Errorf("%w: chute.yaml: %v", ErrInvalid, err)
	}
	// The manifest's rules let through what the kernel refuses (cpu_max
	// below 0.01): found now, not when the chute starts.
	if err := resourcesOf(man).Validate(); err != nil {
		return nil, fmt.Errorf("%w: chute.yaml: %v", ErrInvalid, err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	for _, mp := range mountpoints {
		p := filepath.Join(rootfs, mp)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return nil, fmt.Errorf("stage package: %w", err)
			}
		case err != nil:
			return nil, fmt.Errorf("stage package: %w", err)
		case !fi.IsDir():
			return nil, fmt.Errorf("%w: rootfs/%s must be a directory (the gateway mounts over it)", ErrInvalid, mp)
		}
	}
	return &staged{dir: dir, manifest: man}, nil
}

// place gives a staged rootfs to the chute's uid range and moves it under
// the chute's versions, returning the version directory's name.
func (m *Manager) place(s *staged, name string, slot int, changeID uint64) (string, error) {
	id := int(hostID(slot))
	if err := archive.Shift(filepath.Join(s.dir, "rootfs"), id, id); err != nil {
		return "", fmt.Errorf("give rootfs to the chute's user range: %w", err)
	}
	dir := fmt.Sprintf("%s-%d", s.manifest.Version, changeID)
	if err := os.MkdirAll(m.paths.versions(name), 0o711); err != nil {
		return "", err
	}
	if err := os.Chmod(s.dir, 0o711); err != nil {
		return "", err
	}
	if err := os.Rename(s.dir, m.paths.version(name, dir)); err != nil {
		return "", fmt.Errorf("commit rootfs: %w", err)
	}
	return dir, nil
}

// Origin is where a package comes from: who sends it, its signature, and
// the privileges its sender may grant the chute.
type Origin struct {
	Owner Owner       // of a new chute ("" the operator); an update keeps the chute's
	Actor Actor       // recorded on the change
	Seal  Seal        // the package's signature and the keys it must verify against
	Allow *Privileges // what the chute may ask for; nil: Config.Allow, the operator's
}

func (m *Manager) allowed(o Origin) Privileges {
	if o.Allow != nil {
		return *o.Allow
	}
	return m.cfg.Allow
}

// Install reads a package and queues its installation, refusing a chute
// that asks for privileges o does not allow. The upload is unpacked and
// validated before it returns, so a bad package is an error here, not a
// failed change.
func (m *Manager) Install(ctx context.Context, pkg io.Reader, o Origin) (Change, error) {
	a, err := m.admitInstall(ctx, pkg, o)
	if err != nil {
		return Change{}, err
	}
	return m.queueInstall(a, o.Actor, nil)
}

// admitted is a package staged for a new chute whose name is reserved and
// whose resources are admitted, not yet queued.
type admitted struct {
	s     *staged
	cl    *claim
	owner Owner
}

// admitInstall stages pkg for a new chute and refuses it as an install
// must: privileges o does not allow, ports, a name taken, the gateway's
// room and the owner's quota.
func (m *Manager) admitInstall(ctx context.Context, pkg io.Reader, o Origin) (*admitted, error) {
	owner := o.Owner
	s, err := m.stage(ctx, pkg, o.Seal)
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	name := s.manifest.Name
	if err := errors.Join(m.allowed(o).Permits(s.manifest), m.checkNet(s.manifest)); err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("install: %w", err)
	}
	m.mu.Lock()
	holder, exists := m.reserved[name]
	if e, ok := m.chutes[name]; ok {
		holder, exists = e.rec.Owner, true
	}
	if exists {
		m.mu.Unlock()
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("install: %w", taken(name, holder, o.Actor))
	}
	m.reserved[name] = owner
	m.mu.Unlock()
	cl, err := m.admit(claimOf(s.manifest, nil, owner))
	if err != nil {
		m.unreserve(name)
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("install: %w", err)
	}
	return &admitted{s: s, cl: cl, owner: owner}, nil
}

// abandon gives back what admitInstall took.
func (m *Manager) abandon(a *admitted) {
	m.release(a.cl)
	m.unreserve(a.s.manifest.Name)
	os.RemoveAll(a.s.dir)
}

// queueInstall queues the installation of a; in, if set, is the /data
// and origin of a chute migrated here.
func (m *Manager) queueInstall(a *admitted, actor Actor, in *immigrant) (Change, error) {
	name, owner := a.s.manifest.Name, a.owner
	ch, err := m.newChange(name, owner, actor, "install")
	if err != nil {
		m.abandon(a)
		in.discard()
		return Change{}, err
	}
	m.enqueue(name, job{change: ch, run: func(ctx context.Context, p *progress) error {
		defer m.unreserve(name)
		defer m.release(a.cl)
		return m.install(ctx, p, a.s, owner, ch.ID, in)
	}})
	return m.Change(ch.ID)
}

// taken is the error of an install of name, which a chute of holder has:
// names are the gateway's, one chute each. Whoever may act on that chute
// is told it exists; anyone else only that the name is not available,
// nothing of whose it is or what it is.
func taken(name string, holder Owner, actor Actor) error {
	if actor.MayAct(name, holder) {
		return fmt.Errorf("chute %q: %w", name, ErrExists)
	}
	return fmt.Errorf("name %q: %w", name, ErrNameTaken)
}

func (m *Manager) unreserve(name string) {
	m.mu.Lock()
	delete(m.reserved, name)
	m.mu.Unlock()
}

func (m *Manager) install(ctx context.Context, p *progress, s *staged, owner Owner, changeID uint64, in *immigrant) error {
	name, man := s.manifest.Name, s.manifest
	p.step("unpacked %s %s", name, man.Version)
	// Held until the record below holds it, so that two installs cannot
	// take the same uid range.
	slot := m.takeSlot(name, owner)
	defer m.untake(slot)
	if err := os.MkdirAll(m.paths.chute(name), 0o711); err != nil {
		os.RemoveAll(s.dir)
		in.discard()
		return fmt.Errorf("install %q: %w", name, err)
	}
	dir, err := m.place(s, name, slot, changeID)
	if err != nil {
		os.RemoveAll(s.dir)
		in.discard()
		m.purge(name, false)
		return fmt.Errorf("install %q: %w", name, err)
	}
	ip, mac := m.address(slot, name)
	rec := record{Name: name, Owner: owner, Version: man.Version, Dir: dir, Manifest: man, Desired: Running, State: Stopped, Slot: slot, IP: ip, MAC: mac, SignedBy: s.signedBy,
		Installed: time.Now().UTC()}
	if in != nil {
		rec.MigratedFrom, rec.Migration, rec.Unconfirmed = in.from, in.id, in.id != ""
	}
	// The record is the commit point: a crash before it leaves only a
	// directory that start-up removes; after it, a whole chute.
	if err := m.db.Put(store.Chutes, name, rec); err != nil {
		in.discard()
		m.purge(name, false)
		return fmt.Errorf("install %q: %w", name, err)
	}
	m.mu.Lock()
	m.chutes[name] = &entry{rec: rec}
	m.mu.Unlock()
	var reused bool
	if in != nil {
		// A migrated chute's /data is the one it brought, never a kept one.
		if err := m.settle(ctx, in, name, slot, man); err != nil {
			m.forget(name, false)
			return fmt.Errorf("install %q: %w", name, err)
		}
		p.step("placed the /data %s brought", name)
	} else if reused = m.reuseKept(name, slot); reused {
		// Kept data is taken only now: a crash before the commit leaves
		// it kept. It is owned by the slot the chute was given back.
		p.step("reusing /data kept from an earlier %s", name)
	}
	p.step("installed %s %s", name, man.Version)
	if err := m.startChute(ctx, p, name, dir, man); err != nil {
		// A chute that cannot even start is not installed: take it all
		// back, and its kept data back aside.
		p.step("start failed, removing %s: %v", name, err)
		m.stopChute(ctx, p, name)
		m.forget(name, reused)
		return err
	}
	return nil
}

// forget removes the chute from the host and from the store.
func (m *Manager) forget(name string, keepData bool) error {
	if err := m.purge(name, keepData); err != nil {
		return err
	}
	if err := m.db.Update(func(tx *store.Tx) error { return tx.Delete(store.Chutes, name) }); err != nil {
		return fmt.Errorf("remove chute %q: %w", name, err)
	}
	m.mu.Lock()
	delete(m.chutes, name)
	m.mu.Unlock()
	return nil
}

// Update reads a new package for name and queues the update, refusing a
// version that asks for privileges o does not allow. A version that is not
// newer than the installed one needs force.
func (m *Manager) Update(ctx context.Context, name string, pkg io.Reader, force bool, o Origin) (Change, error) {
	actor := o.Actor
	if _, err := m.acting(name, actor); err != nil {
		return Change{}, fmt.Errorf("update: %w", err)
	}
	s, err := m.stage(ctx, pkg, o.Seal)
	if err != nil {
		return Change{}, fmt.Errorf("update %q: %w", name, err)
	}
	fail := func(err error) (Change, error) {
		os.RemoveAll(s.dir)
		return Change{}, fmt.Errorf("update %q: %w", name, err)
	}
	if s.manifest.Name != name {
		return fail(fmt.Errorf("%w: package is chute %q", ErrInvalid, s.manifest.Name))
	}
	if err := errors.Join(m.allowed(o).Permits(s.manifest), m.checkNet(s.manifest)); err != nil {
		return fail(err)
	}
	// Again: the package took time to come, and the chute by that name
	// may not be the one it was then.
	e, err := m.acting(name, actor)
	if err != nil {
		return fail(err)
	}
	m.mu.Lock()
	old, pol, owner := e.rec.Version, e.rec.Policy, e.rec.Owner
	m.mu.Unlock()
	// Checked here to refuse at once, and again when the update runs: an
	// update queued before this one may have installed a newer version.
	if err := checkNewer(s.manifest.Version, old, force); err != nil {
		return fail(err)
	}
	cl, err := m.admit(claimOf(s.manifest, pol, owner))
	if err != nil {
		return fail(err)
	}
	ch, err := m.newChange(name, owner, actor, "update")
	if err != nil {
		m.release(cl)
		return fail(err)
	}
	m.enqueue(name, job{change: ch, run: func(ctx context.Context, p *progress) error {
		defer m.release(cl)
		if _, err := m.acting(name, actor); err != nil {
			os.RemoveAll(s.dir)
			return err
		}
		return m.update(ctx, p, name, s, ch.ID, force)
	}})
	return m.Change(ch.ID)
}

// claimOf is what a chute of owner, of manifest man under the operator's
// policy pol, will hold.
func claimOf(man *manifest.Manifest, pol *Policy, owner Owner) claim {
	res := pol.apply(man.Resources)
	return claim{
		name: man.Name, disk: int64(res.Disk), memory: memoryOf(res),
		owner: owner, cpu: res.CPUMax, egress: uint64(res.Bandwidth.Egress),
	}
}

// checkNewer enforces the version rule of updates: a version that is not
// newer than the installed one needs force.
func checkNewer(version, installed string, force bool) error {
	cmp, err := manifest.Compare(version, installed)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	case cmp <= 0 && !force:
		return fmt.Errorf("%w: version %s is not newer than installed %s (force to override)", ErrConflict, version, installed)
	}
	return nil
}

func (m *Manager) update(ctx context.Context, p *progress, name string, s *staged, changeID uint64, force bool) error {
	e, err := m.entry(name)
	if err != nil {
		os.RemoveAll(s.dir)
		return err
	}
	m.mu.Lock()
	old := e.rec
	m.mu.Unlock()
	if err := checkNewer(s.manifest.Version, old.Version, force); err != nil {
		os.RemoveAll(s.dir)
		return fmt.Errorf("update %q: %w", name, err)
	}
	p.step("unpacked %s %s (installed: %s)", name, s.manifest.Version, old.Version)
	dir, err := m.place(s, name, old.Slot, changeID)
	if err != nil {
		os.RemoveAll(s.dir)
		return fmt.Errorf("update %q: %w", name, err)
	}
	commit := func() error {
		err := m.save(name, func(r *record) {
			r.Version, r.Dir, r.Manifest, r.Pending, r.Restarts = s.manifest.Version, dir, s.manifest, "", 0
			r.SignedBy = s.signedBy
		})
		if err == nil {
			os.RemoveAll(m.paths.version(name, old.Dir))
			p.step("updated %s to %s", name, s.manifest.Version)
		}
		return err
	}
	if old.Desired != Running {
		return commit()
	}
	if err := m.save(name, func(r *record) { r.Pending = dir; r.State = Updating }); err != nil {
		return err
	}
	if err := m.stopChute(ctx, p, name); err != nil {
		return m.rollback(ctx, p, name, old, dir, err)
	}
	m.mu.Lock()
	e.rec.Manifest = s.manifest // the supervisor and health checks follow the running version
	m.mu.Unlock()
	if err := m.startChute(ctx, p, name, dir, s.manifest); err != nil {
		return m.rollback(ctx, p, name, old, dir, err)
	}
	p.step("judging %s %s: healthy and up for %s", name, s.manifest.Version, s.manifest.Update.StableFor)
	m.mu.Lock()
	sb := e.sb
	m.mu.Unlock()
	if sb == nil {
		return m.rollback(ctx, p, name, old, dir, errNotStable)
	}
	if err := m.waitStable(ctx, p, name, sb, s.manifest); err != nil {
		return m.rollback(ctx, p, name, old, dir, err)
	}
	return commit()
}

// rollback puts the old version back after a failed update; /data was never
// touched by the swap, so it is as the new version left it.
func (m *Manager) rollback(ctx context.Context, p *progress, name string, old record, newDir string, cause error) error {
	p.step("new version failed: %v; rolling back to %s", cause, old.Version)
	m.stopChute(ctx, p, name)
	m.save(name, func(r *record) { r.Manifest, r.Pending = old.Manifest, "" })
	os.RemoveAll(m.paths.version(name, newDir))
	if err := m.startChute(ctx, p, name, old.Dir, old.Manifest); err != nil {
		return fmt.Errorf("update %q rolled back, but the old version did not start either: %v (update: %v)", name, err, cause)
	}
	return fmt.Errorf("update %q rolled back to %s: %v", name, old.Version, cause)
}

// Remove queues the removal of name; keepData sets its /data aside for a
// later install of the same name.
// A removal asked while the chute is being installed waits for the
// install, on the chute's queue, then removes what it installed.
func (m *Manager) Remove(name string, keepData bool, actor Actor) (Change, error) {
	m.mu.Lock()
	owner, installing := m.reserved[name]
	m.mu.Unlock()
	if installing {
		if !actor.MayAct(name, owner) {
			return Change{}, fmt.Errorf("remove: chute %q: %w", name, ErrNotFound)
		}
		ch, err := m.newChange(name, owner, actor, "remove")
		if err != nil {
			return Change{}, err
		}
		m.enqueue(name, job{change: ch, run: func(ctx context.Context, p *progress) error {
			if _, err := m.entry(name); errors.Is(err, ErrNotFound) {
				p.step("the install of %s did not complete: nothing to remove", name)
				return nil
			}
			if _, err := m.acting(name, actor); err != nil {
				return err
			}
			return m.remove(ctx, p, name, keepData)
		}})
		return m.Change(ch.ID)
	}
	return m.queueOp(name, actor, "remove", func(ctx context.Context, p *progress) error {
		return m.remove(ctx, p, name, keepData)
	})
}

func (m *Manager) remove(ctx context.Context, p *progress, name string, keepData bool) error {
	if err := m.stopChute(ctx, p, name); err != nil {
		return err
	}
	if err := m.forget(name, keepData); err != nil {
		return err
	}
	p.step("removed %s", name)
	return nil
}

// Start queues a start and makes running the desired state.
func (m *Manager) Start(name string, actor Actor) (Change, error) {
	return m.queueOp(name, actor, "start", func(ctx context.Context, p *progress) error {
		return m.startDesired(ctx, p, name)
	})
}

// Stop queues a stop and makes stopped the desired state.
func (m *Manager) Stop(name string, actor Actor) (Change, error) {
	return m.queueOp(name, actor, "stop", func(ctx context.Context, p *progress) error {
		m.save(name, func(r *record) { r.Desired = Stopped })
		return m.stopChute(ctx, p, name)
	})
}

// Restart queues a stop then a start.
func (m *Manager) Restart(name string, actor Actor) (Change, error) {
	return m.queueOp(name, actor, "restart", func(ctx context.Context, p *progress) error {
		if err := m.stopChute(ctx, p, name); err != nil {
			return err
		}
		return m.startDesired(ctx, p, name)
	})
}

// queueOp queues run as a change of name asked by actor, if actor may act
// on that chute, both now and when the change runs.
func (m *Manager) queueOp(name string, actor Actor, action string, run func(context.Context, *progress) error) (Change, error) {
	e, err := m.acting(name, actor)
	if err != nil {
		return Change{}, fmt.Errorf("%s: %w", action, err)
	}
	m.mu.Lock()
	owner := e.rec.Owner
	m.mu.Unlock()
	ch, err := m.newChange(name, owner, actor, action)
	if err != nil {
		return Change{}, err
	}
	m.enqueue(name, job{change: ch, run: m.guarded(name, actor, run)})
	return m.Change(ch.ID)
}
