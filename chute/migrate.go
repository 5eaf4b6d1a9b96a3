package chute

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/chute/archive"
	"paradrop/chute/manifest"
	"paradrop/chute/signature"
	"paradrop/chute/transfer"
	"paradrop/chute/volume"
)

// Migration: the manager offers the two halves, and whoever talks to the
// other gateway (package migrate) joins them. The source's Migrate tells
// the chute (handover), stops it, and writes it as a transfer stream
// (package chute/transfer) to a Sender; the target's Import reads such a
// stream and installs the chute it carries, with its /data, through the
// same admission as any install. The source removes its copy only once
// the Destination reports the chute running on the target; any failure
// before that starts it here again, its /data untouched, and a failure
// that leaves it unknown is resolved by asking the target
// (migrate_phase.go).

// migratedFromEnv tells a migrated chute where it comes from.
const migratedFromEnv = "PARADROP_MIGRATED_FROM"

// handoverFile is what a chute without a hook is told of its migration,
// in /paradrop, with SIGUSR1.
const handoverFile = "migrate.json"

// The files an install keeps beside its rootfs, for a migration to send.
const (
	keptPackage   = "package"
	keptSignature = "package.minisig"
)

// maxDataFiles bounds the entries of a /data a migration brings.
const maxDataFiles = 1 << 20

// keepPackage moves the spooled package, and the signature it was
// verified with, into the staged directory dir.
func keepPackage(spooled string, sig []byte, dir string) error {
	if err := os.Rename(spooled, filepath.Join(dir, keptPackage)); err != nil {
		return fmt.Errorf("stage package: %w", err)
	}
	if sig == nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, keptSignature), sig, 0o600); err != nil {
		return fmt.Errorf("stage package: %w", err)
	}
	return nil
}

func (m *Manager) migratedFrom(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.chutes[name]; ok {
		return e.rec.MigratedFrom
	}
	return ""
}

// Migrate queues the migration of name to another gateway, to; from is
// this gateway as the chute will be told on the target.
func (m *Manager) Migrate(name string, actor Actor, from string, to Destination) (Change, error) {
	return m.queueOp(name, actor, "migrate", func(ctx context.Context, p *progress) error {
		return m.migrate(ctx, p, name, from, to)
	})
}

func (m *Manager) migrate(ctx context.Context, p *progress, name, from string, dest Destination) error {
	to := dest.URL
	e, err := m.entry(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	rec, sb := e.rec, e.sb
	m.mu.Unlock()
	dir := m.paths.version(name, rec.Dir)
	if _, err := os.Stat(filepath.Join(dir, keptPackage)); err != nil {
		return fmt.Errorf("migrate %q: %w: its package was installed before gateways kept packages; update it first", name, ErrConflict)
	}
	running := sb != nil
	kept := filepath.Join(dir, keptPackage)
	sum, err := fileSum(kept)
	if err != nil {
		return fmt.Errorf("migrate %q: %w", name, err)
	}
	o := &outbound{ID: newMigrationID(), To: to, Dest: dest.Saved}
	if err := m.setPhase(name, o, phasePrecopy); err != nil {
		return err
	}
	// The chute runs on while the target admits its package: refused
	// there, it is as it was here.
	sendCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	admitted := make(chan struct{})
	var once sync.Once
	var told bool
	admit := func() error {
		select {
		case <-admitted:
		case <-sendCtx.Done():
			return sendCtx.Err()
		}
		p.step("%s admitted the package", to)
		return nil
	}
	tell := func() error {
		// A chute told is stopped, and started again if the move
		// fails: it may have stopped serving once it saved its state.
		// The grace ends early if the target fails meanwhile.
		if err := sendCtx.Err(); err != nil {
			return err // the target failed already: the chute is not told
		}
		if err := m.setPhase(name, o, phaseStopping); err != nil {
			return err
		}
		told = true
		m.handover(sendCtx, p, name, sb, to, time.Duration(rec.Manifest.StopGrace))
		return nil
	}
	halt := func() error {
		t := time.Now()
		if err := m.stopChute(ctx, p, name); err != nil {
			return err
		}
		p.step("stopped %s in %s", name, time.Since(t).Round(time.Millisecond))
		return nil
	}
	if !running {
		tell, halt = nil, nil
	}
	// Whether the target holds the package is known once it first reads
	// the stream: it says so before.
	var held atomic.Bool
	pr, pw := io.Pipe()
	stream := &firstRead{r: pr, read: make(chan struct{})}
	pkg := func() (transfer.PackageHeld, bool, error) {
		select {
		case <-stream.read:
		case <-sendCtx.Done():
			return transfer.PackageHeld{}, false, sendCtx.Err()
		}
		return transfer.PackageHeld{SHA256: sum}, held.Load(), nil
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		sent := func() error { return m.setPhase(name, o, phaseSent) }
		err := m.export(sendCtx, p, rec, transfer.Handover{From: from, Migration: o.ID}, pw, pkg, admit, tell, halt, sent)
		pw.CloseWithError(err)
		done <- err
	}()
	err = dest.Send(sendCtx, stream, Exchange{Package: sum, Held: func() { held.Store(true) },
		Admitted: func() { once.Do(func() { close(admitted) }) }})
	cancel()
	pr.CloseWithError(errors.New("migration stream abandoned"))
	if werr := <-done; err == nil && werr != nil {
		err = werr
	}
	landed := err == nil
	if err != nil && o.Phase == phaseSent && !errors.Is(err, ErrRefused) {
		// All was sent, the answer lost: the target may run it.
		p.step("no answer from %s after %s (%v): asking it whether %s runs there", to, time.Since(start).Round(time.Millisecond), err, name)
		var rerr error
		if landed, rerr = m.resolve(ctx, p, name, *o, dest); rerr != nil {
			return fmt.Errorf("migrate %q: %w (asked again once the daemon restarts)", name, rerr)
		}
	}
	if !landed {
		p.step("not running on %s after %s: %v", to, time.Since(start).Round(time.Millisecond), err)
		if eerr := m.endOutbound(name); eerr != nil {
			return fmt.Errorf("migrate %q: %w (and %v)", name, err, eerr)
		}
		if told {
			// Told, it may have stopped serving: it starts afresh.
			serr := m.stopChute(ctx, p, name)
			if serr == nil {
				serr = m.startChute(ctx, p, name, rec.Dir, rec.Manifest)
			}
			if serr != nil {
				return fmt.Errorf("migrate %q: %w (and starting it here again failed: %v)", name, err, serr)
			}
			p.step("%s runs here again, its /data as it was", name)
		}
		return fmt.Errorf("migrate %q: %w", name, err)
	}
	p.step("running on %s after %s; removing it here", to, time.Since(start).Round(time.Millisecond))
	if err := m.setPhase(name, o, phaseLanded); err != nil {
		return fmt.Errorf("migrate %q: running on %s, but: %w", name, to, err)
	}
	if err := m.holdPackage(rec.Owner, sum, kept); err != nil {
		m.logf("chute %s: hold its package: %v", name, err)
	}
	if err := m.forget(name, false); err != nil {
		return fmt.Errorf("migrate %q: running on %s, but removing it here: %w", name, to, err)
	}
	p.step("removed %s", name)
	return nil
}

// handover tells the running chute it is about to move, with
// /paradrop/migrate.json and SIGUSR1, and gives it grace to write to /data
// what it wants to keep; the grace ends as soon as it says it has
// (AckHandover).
func (m *Manager) handover(ctx context.Context, p *progress, name string, sb interface{ Signal(syscall.Signal) error }, to string, grace time.Duration) {
	ready := make(chan struct{})
	m.mu.Lock()
	m.handovers[name] = ready
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.handovers[name] == ready {
			delete(m.handovers, name)
		}
		m.mu.Unlock()
	}()
	doc, _ := json.Marshal(map[string]any{"to": to, "deadline": time.Now().Add(grace).UTC()})
	if err := os.WriteFile(filepath.Join(m.paths.policy(name), handoverFile), doc, 0o644); err != nil {
		p.step("handover: %v", err)
		return
	}
	if err := sb.Signal(syscall.SIGUSR1); err != nil {
		p.step("handover: %v", err)
		return
	}
	p.step("told %s it moves to %s; grace %s to save its state to /data", name, to, grace)
	start := time.Now()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ready:
		p.step("%s said it is ready after %s", name, time.Since(start).Round(time.Millisecond))
	case <-ctx.Done():
	}
}

// ErrNoHandover answers a chute's handover ack when it is not being told
// it moves; it is an ErrConflict.
var ErrNoHandover error = &kindError{msg: "no migration is waiting for the chute's handover", kind: ErrConflict}

// AckHandover is the chute's word, while it is told it moves, that it has
// saved what it wants kept: its grace ends at once. It changes nothing the
// end of the grace would not: a chute gains nothing by saying so early.
func (m *Manager) AckHandover(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ready, ok := m.handovers[name]
	if !ok {
		return fmt.Errorf("chute %s: %w", name, ErrNoHandover)
	}
	delete(m.handovers, name)
	close(ready)
	return nil
}

// export writes the chute rec as a transfer stream to w: its package;
// once admit returns, its /data. If the chute runs (tell and halt are not
// nil), /data is sent while it does (pre-copy); then tell tells it it
// moves, what changed since is sent while it still runs (what it saved
// for the move, mostly), halt stops it and what changed after is sent.
// Last come the handover h and, once allSent returns, the manifest, after
// which the target may keep the chute.
// pkg tells, once the target has asked for the stream, whether it holds
// the package.
func (m *Manager) export(ctx context.Context, p *progress, rec record, h transfer.Handover, w io.Writer,
	pkg func() (transfer.PackageHeld, bool, error), admit, tell, halt, allSent func() error) error {
	tw := transfer.NewWriter(w)
	dir := m.paths.version(rec.Name, rec.Dir)
	ref, held, err := pkg()
	if err != nil {
		return err
	}
	start := time.Now()
	if sig, err := os.ReadFile(filepath.Join(dir, keptSignature)); err == nil {
		if err := tw.Blob(transfer.KindSignature, bytes.NewReader(sig), int64(len(sig))); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if held {
		if err := tw.Held(ref); err != nil {
			return err
		}
		p.step("the target holds the package (sha256 %s): not sent", ref.SHA256[:16])
	} else {
		f, err := os.Open(filepath.Join(dir, keptPackage))
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.Blob(transfer.KindPackage, f, fi.Size()); err != nil {
			return err
		}
		p.step("sent the package: %d bytes in %s", fi.Size(), time.Since(start).Round(time.Millisecond))
	}
	if err := admit(); err != nil {
		return err
	}
	start = time.Now()
	data, id := m.paths.data(rec.Name), hostID(rec.Slot)
	live := halt != nil
	snap, sent, err := tw.Data(ctx, data, id, live)
	if err != nil {
		return err
	}
	if !live {
		p.step("sent /data: %d entries, %d bytes in %s", sent.Entries, sent.Bytes, time.Since(start).Round(time.Millisecond))
	} else {
		p.step("sent /data while it runs: %d entries, %d bytes in %s", sent.Entries, sent.Bytes, time.Since(start).Round(time.Millisecond))
		if err := keepAlive(tw, tell); err != nil {
			return err
		}
		start = time.Now()
		if snap, sent, err = tw.Delta(ctx, data, id, snap, true); err != nil {
			return err
		}
		p.step("sent what changed in /data while it was told: %d entries, %d deleted, %d bytes in %s", sent.Entries, sent.Deleted, sent.Bytes, time.Since(start).Round(time.Millisecond))
		if err := keepAlive(tw, halt); err != nil {
			return err
		}
		start = time.Now()
		if _, sent, err = tw.Delta(ctx, data, id, snap, false); err != nil {
			return err
		}
		p.step("sent what changed in /data since: %d entries, %d deleted, %d bytes in %s", sent.Entries, sent.Deleted, sent.Bytes, time.Since(start).Round(time.Millisecond))
	}
	h.At = time.Now().UTC()
	if err := tw.Handover(h); err != nil {
		return err
	}
	if err := allSent(); err != nil {
		return err
	}
	return tw.Close(rec.Name, rec.Version)
}

// firstRead is a stream that tells when it is first read.
type firstRead struct {
	r    io.Reader
	once sync.Once
	read chan struct{}
}

func (f *firstRead) Read(p []byte) (int, error) {
	f.once.Do(func() { close(f.read) })
	return f.r.Read(p)
}

// keepAliveEvery is how often a stream waiting on its chute's handover
// and stop sends a wait entry: well within a target's stall rule (the
// API's default: 30 KiB in 30 s of waiting).
var keepAliveEvery = 5 * time.Second

// keepAlive runs fn, sending wait entries on tw until it returns.
func keepAlive(tw *transfer.Writer, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTicker(keepAliveEvery)
	defer t.Stop()
	var werr error
	for {
		select {
		case err := <-done:
			if err == nil {
				err = werr
			}
			return err
		case <-t.C:
			if werr == nil {
				werr = tw.Wait() // a stream cut short: fn still ends first
			}
		}
	}
}

// immigrant is the /data and origin a migrated chute brings, staged as a
// volume image owned by the chute's own ids, until its install places it.
type immigrant struct {
	image string
	mnt   string // where image is mounted, kept so for settle
	from  string
	id    string // of the migration, confirmed to the source by ConfirmImport
}

// discard removes what was staged, for an install that does not happen.
func (in *immigrant) discard() {
	if in != nil {
		volume.Unmount(in.mnt)
		os.Remove(in.mnt)
		os.Remove(in.image)
	}
}

// settle makes in's image the /data of the chute name, given slot's ids.
// It moves its mount rather than mounting it again: an unmount would write
// back all the stream brought, which would delay the chute's start.
func (m *Manager) settle(ctx context.Context, in *immigrant, name string, slot int, man *manifest.Manifest) error {
	if err := os.Rename(in.image, m.paths.dataImage(name)); err != nil {
		in.discard()
		return fmt.Errorf("place /data: %w", err)
	}
	in.image = m.paths.dataImage(name)
	if err := volume.Move(in.mnt, m.paths.data(name)); err != nil {
		in.discard()
		return fmt.Errorf("place /data: %w", err)
	}
	os.Remove(in.mnt)
	if err := volume.Ensure(ctx, m.paths.dataImage(name), m.paths.data(name), int64(man.Resources.Disk), 0, 0); err != nil {
		return err
	}
	id := int(hostID(slot))
	if err := archive.Shift(m.paths.data(name), id, id); err != nil {
		return fmt.Errorf("give /data to the chute's user range: %w", err)
	}
	return nil
}

// unmountStaged unmounts the /data volumes of imports an earlier daemon
// left under staging.
func unmountStaged(staging string) {
	mnts, _ := filepath.Glob(filepath.Join(staging, "*.data"))
	for _, mnt := range mnts {
		volume.Unmount(mnt)
	}
}

// Import reads a migration stream and installs the chute it carries, with
// its /data, as Install would install its package for o: the same
// admission refuses it, before its /data is read. The change returned
// ends once the chute runs here, or has been taken back.
// onAdmit is called once the package has passed, before /data is read.
func (m *Manager) Import(ctx context.Context, stream io.Reader, o Origin, onAdmit func()) (Change, error) {
	rd := transfer.NewReader(stream, transfer.Limits{Package: m.cfg.MaxUpload})
	var (
		a   *admitted
		in  = &immigrant{}
		mnt string
		fd  = -1
	)
	fail := func(err error) (Change, error) {
		if fd >= 0 {
			unix.Close(fd)
		}
		if mnt != "" {
			volume.Unmount(mnt)
			os.Remove(mnt)
		}
		in.discard()
		if a != nil {
			m.abandon(a)
		}
		if errors.Is(err, transfer.ErrInvalid) {
			err = fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return Change{}, fmt.Errorf("import: %w", err)
	}
	o.Seal.Signature, o.Seal.Trailer = nil, nil
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		switch e.Kind {
		case transfer.KindSignature:
			if o.Seal.Signature, err = io.ReadAll(io.LimitReader(e.Body, signature.MaxSize+1)); err != nil {
				return fail(err)
			}
		case transfer.KindPackage, transfer.KindHeld:
			pkg := e.Body
			if e.Kind == transfer.KindHeld {
				var h transfer.PackageHeld
				if err := json.NewDecoder(io.LimitReader(e.Body, 64<<10)).Decode(&h); err != nil {
					return fail(fmt.Errorf("%w: package held: %v", ErrInvalid, err))
				}
				hr, err := m.openHeld(o.Owner, h.SHA256)
				if err != nil {
					return fail(err)
				}
				defer hr.Close()
				pkg = hr
			}
			if a, err = m.admitInstall(ctx, pkg, o); err != nil {
				return fail(err)
			}
			if hr, ok := pkg.(*heldReader); ok {
				// The chute keeps a copy of its own: not held twice.
				os.Remove(hr.f.Name())
			}
			disk := int64(a.s.manifest.Resources.Disk)
			rd.LimitData(disk, maxDataFiles)
			in.image, mnt = a.s.dir+".data.img", a.s.dir+".data"
			if err := volume.Ensure(ctx, in.image, mnt, disk, 0, 0); err != nil {
				mnt = ""
				return fail(err)
			}
			if fd, err = unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return fail(err)
			}
			onAdmit()
		case transfer.KindData, transfer.KindDeleted, transfer.KindDelta:
			if err := e.Extract(fd, 0); err != nil {
				return fail(err)
			}
		case transfer.KindHandover:
			var h transfer.Handover
			if err := json.NewDecoder(io.LimitReader(e.Body, 64<<10)).Decode(&h); err != nil {
				return fail(fmt.Errorf("%w: handover: %v", ErrInvalid, err))
			}
			in.from, in.id = h.From, h.Migration
		}
	}
	if a == nil {
		return fail(fmt.Errorf("%w: no package", ErrInvalid))
	}
	if man := rd.Manifest(); man.Chute != a.s.manifest.Name || man.Version != a.s.manifest.Version {
		return fail(fmt.Errorf("%w: stream of %s %s carries %s %s", ErrInvalid, man.Chute, man.Version, a.s.manifest.Name, a.s.manifest.Version))
	}
	unix.Close(fd)
	fd = -1
	in.mnt, mnt = mnt, "" // in's now: settle moves it, discard unmounts it
	return m.queueInstall(a, o.Actor, in)
}
