package chute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"paradrop/chute/archive"
	"paradrop/chute/manifest"
	"paradrop/chute/sandbox"
	"paradrop/store"
	"paradrop/usage"
)

// Config is what the manager needs from the daemon.
type Config struct {
	DataDir    string
	DB         *store.DB
	Executable string // binary re-executed as the chutes' monitor, shim and init
	MaxUpload  int64  // bytes of a package upload; 0 = 256 MiB
	// CgroupParent holds the chutes' cgroups; required, with no default
	// here (serve's flag has one), so that no caller, a test least of all,
	// ends up by omission under the gateway's. The daemon removes any
	// group under it that is not one of its chutes, so two daemons on one
	// host need two parents.
	CgroupParent string
	Logf         func(format string, args ...any)
	// Network connects chutes to the gateway's network; nil leaves them
	// with loopback only. Subnet is the chute subnet it was opened with.
	// Subnet6 is its IPv6 /64, where a chute's address is at its IPv4
	// host index (sdn.AddressFor6), and Global6 its global /64 from the
	// gateway's delegated prefix, likewise (invalid for none).
	Network Network
	Subnet  netip.Prefix
	Subnet6 netip.Prefix
	Global6 netip.Prefix
	// MemoryOvercommit is how many times the gateway's memory the chutes
	// may be promised together (admit.go); 0 is DefaultOvercommit.
	MemoryOvercommit float64
	// Memory is the gateway memory admission counts against, in bytes;
	// 0 is the machine's.
	Memory int64
	// GatewayPorts are the gateway's own ports, which no chute may expose.
	GatewayPorts []GatewayPort
	// Quota is the quota of a developer owning chutes (quota.go); nil
	// bounds no one.
	Quota func(Owner) (Quota, error)
	// Unpack is the room all package uploads being unpacked at once may
	// take on the data filesystem; nil: only each upload's own default.
	Unpack *archive.Space
	// Allow are the privileges the operator's own installs and updates
	// (Install, Update) may ask for; none when empty.
	Allow Privileges
	// ServeAPI serves the API to the running chute name on ln, the Unix
	// socket its /paradrop/api.sock; closing what it returns ends that.
	// Nil: chutes get no socket.
	ServeAPI func(name string, ln net.Listener) io.Closer
	// NetworkAPI is where chutes reach the API over the chute network;
	// nil: only on their socket.
	NetworkAPI *NetworkAPI
	// Reopen turns a migration's saved Destination back into one, for a
	// restart to ask the target how a migration it interrupted ended;
	// nil: such a migration is taken as not landed.
	Reopen func(saved json.RawMessage) (Destination, error)
	// ResolveFor is how long a restarted source asks an unreachable
	// target before it takes the migration as not landed and starts the
	// chute here again; 0 is 10 minutes.
	ResolveFor time.Duration
}

// record is a chute as persisted in the store.
type record struct {
	Name     string             `json:"name"`
	Owner    Owner              `json:"owner,omitempty"`
	Version  string             `json:"version"`
	Dir      string             `json:"dir"`               // active directory under versions/
	Pending  string             `json:"pending,omitempty"` // version being tried by an update
	Manifest *manifest.Manifest `json:"manifest"`
	Desired  State              `json:"desired"` // Running or Stopped
	State    State              `json:"state"`
	Slot     int                `json:"slot"` // selects the chute's host uid range
	IP       string             `json:"ip,omitempty"`
	MAC      string             `json:"mac,omitempty"`
	Restarts int                `json:"restarts"`
	LastExit string             `json:"last_exit,omitempty"`
	Error    string             `json:"error,omitempty"`
	Policy   *Policy            `json:"policy,omitempty"`    // the operator's, over Manifest.Resources
	SignedBy string             `json:"signed_by,omitempty"` // ID of the key that signed the installed version
	// Installed is when this chute of the name was installed: what was
	// measured of the name before is another chute's.
	Installed time.Time `json:"installed,omitempty"`
	// MigratedFrom is the gateway the chute was migrated from, given to
	// it in $PARADROP_MIGRATED_FROM (migrate.go).
	MigratedFrom string `json:"migrated_from,omitempty"`
	// Migration and Unconfirmed: the migration that brought the chute,
	// and whether its source has yet to be told it runs here.
	Migration   string `json:"migration,omitempty"`
	Unconfirmed bool   `json:"unconfirmed,omitempty"`
	// Outbound is the migration of the chute away from here under way
	// (migrate_phase.go).
	Outbound *outbound `json:"outbound,omitempty"`
}

// entry is a chute as the manager holds it in memory.
type entry struct {
	rec     record
	sb      *sandbox.Chute
	stopSup context.CancelFunc // ends the supervisor of sb
	backoff time.Duration
}

// Manager runs the chutes.
type Manager struct {
	cfg    Config
	db     *store.DB
	paths  layout
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	changeCond *sync.Cond
	chutes     map[string]*entry
	reserved   map[string]Owner // names whose install is queued, with the owner-to-be
	changes    map[uint64]*Change
	watchers   []func(Change) // called as changes end (OnChangeEnd)
	queues     map[string][]job
	claims     map[*claim]bool    // admitted changes not yet ended (admit.go)
	keptSlots  map[string]int     // uid slots reserved for kept data, by name (kept.go)
	keptOwners map[string]Owner   // whose chute kept the data, by name
	heldSlots  map[int]bool       // uid slots of installs not yet committed
	resumed    map[string]*Change // installs a previous daemon left, finished by Run's recovery

	// The running chutes' identities (identity.go): by their token's
	// hash, and the API served on each one's socket.
	tokens  map[string]string
	sockets map[string]io.Closer
	// The resources changes waiting for their chute to comply (ack.go).
	asks map[string]*policyAsk
	// The chutes being told they move, until they say they are ready
	// (migrate.go).
	handovers map[string]chan struct{}

	admitMu sync.Mutex // one admission at a time

	usage    *usage.Sampler
	restarts atomic.Uint64 // by restart policies since the daemon started (metrics.go)

	// launcher starts the chutes under one monitor process; Run closes
	// it.
	launcher *sandbox.Launcher
}

// NewManager opens the manager over the daemon's data directory and loads
// the chutes it knows. Run brings them to their desired state.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.DB == nil || cfg.DataDir == "" || cfg.CgroupParent == "" {
		return nil, errors.New("chute manager: DB, DataDir and CgroupParent are required")
	}
	if cfg.MaxUpload == 0 {
		cfg.MaxUpload = 256 << 20
	}
	if cfg.ResolveFor == 0 {
		cfg.ResolveFor = 10 * time.Minute
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	if cfg.MemoryOvercommit == 0 {
		cfg.MemoryOvercommit = DefaultOvercommit
	}
	if !(cfg.MemoryOvercommit > 0) || cfg.Memory < 0 {
		return nil, fmt.Errorf("chute manager: memory overcommit %v and memory %d must be more than 0", cfg.MemoryOvercommit, cfg.Memory)
	}
	m := &Manager{
		cfg:        cfg,
		db:         cfg.DB,
		paths:      layout{root: cfg.DataDir, cgroupParent: cfg.CgroupParent},
		chutes:     map[string]*entry{},
		reserved:   map[string]Owner{},
		changes:    map[uint64]*Change{},
		queues:     map[string][]job{},
		claims:     map[*claim]bool{},
		keptSlots:  map[string]int{},
		keptOwners: map[string]Owner{},
		tokens:     map[string]string{},
		sockets:    map[string]io.Closer{},
		asks:       map[string]*policyAsk{},
		handovers:  map[string]chan struct{}{},
		heldSlots:  map[int]bool{},
	}
	m.changeCond = sync.NewCond(&m.mu)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.usage = m.newSampler()
	// Private to root: a chute's shim hands its init the chute's rootfs
	// and /data as mount trees (see package sandbox), so no chute's host
	// ids need to search anything here.
	for _, d := range []string{cfg.DataDir, m.paths.chutes()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("chute manager: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("chute manager: %w", err)
		}
	}
	// Uploads staged by an earlier daemon are left over. They go here, not
	// in Run, which the API may already be serving uploads beside. The
	// /data of a migration cut short may still be mounted there.
	unmountStaged(m.paths.staging())
	if err := os.RemoveAll(m.paths.staging()); err != nil {
		return nil, fmt.Errorf("chute manager: %w", err)
	}
	if err := sandbox.CheckHost(m.paths.chutes()); err != nil {
		return nil, fmt.Errorf("chute manager: %w", err)
	}
	if err := os.MkdirAll(m.paths.staging(), 0o700); err != nil {
		return nil, fmt.Errorf("chute manager: %w", err)
	}
	err := m.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Chutes, func(k string, _ []byte) error {
			var r record
			if err := tx.Get(store.Chutes, k, &r); err != nil {
				return err
			}
			m.chutes[r.Name] = &entry{rec: r}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("chute manager: load chutes: %w", err)
	}
	if err := m.loadKept(); err != nil {
		return nil, fmt.Errorf("chute manager: %w", err)
	}
	// Before anyone can read the changes: none is left looking under way.
	if m.resumed, err = m.settleInterrupted(); err != nil {
		return nil, fmt.Errorf("chute manager: %w", err)
	}
	m.launcher = sandbox.NewLauncher(cfg.Executable, m.paths.monitors(), m.logf)
	return m, nil
}

func (m *Manager) logf(format string, args ...any) { m.cfg.Logf(format, args...) }

// Run recovers from whatever a previous daemon left, re-adopts running
// chutes, starts those that should run, and supervises them until ctx
// ends. Chutes keep running after Run returns: stopping the daemon is not
// stopping the gateway's services.
func (m *Manager) Run(ctx context.Context) error {
	// At return, after the jobs have ended: no start is under way.
	defer m.launcher.Close()
	m.removeLeftovers()
	m.startSampler()
	m.mu.Lock()
	names := make([]string, 0, len(m.chutes))
	for n := range m.chutes {
		names = append(names, n)
	}
	m.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		m.enqueue(n, job{change: m.resumed[n], run: func(ctx context.Context, p *progress) error { return m.recover(ctx, p, n) }})
	}
	<-ctx.Done()
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	for _, e := range m.chutes {
		if e.stopSup != nil {
			e.stopSup()
		}
	}
	m.mu.Unlock()
	return nil
}

// info renders a record for the API.
func (e *entry) info() Info {
	in := Info{
		Name: e.rec.Name, Owner: e.rec.Owner, Version: e.rec.Version, State: e.rec.State, Desired: e.rec.Desired,
		Restarts: e.rec.Restarts, LastExit: e.rec.LastExit, Error: e.rec.Error, Manifest: e.rec.Manifest,
		IP: e.rec.IP, MAC: e.rec.MAC, SignedBy: e.rec.SignedBy,
		Migration: e.rec.Migration, Unconfirmed: e.rec.Unconfirmed,
	}
	if !e.rec.Installed.IsZero() {
		t := e.rec.Installed
		in.Installed = &t
	}
	if e.sb != nil && e.rec.State == Running {
		in.Pid = e.sb.Pid()
		t := e.sb.StartedAt()
		in.StartedAt = &t
	}
	return in
}

// List returns every chute, by name.
func (m *Manager) List() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Info, 0, len(m.chutes))
	for _, e := range m.chutes {
		out = append(out, m.withIPv6(e.info()))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns one chute.
func (m *Manager) Get(name string) (Info, error) {
	m.mu.Lock()
	e, ok := m.chutes[name]
	if !ok {
		m.mu.Unlock()
		return Info{}, fmt.Errorf("chute %q: %w", name, ErrNotFound)
	}
	in := m.withIPv6(e.info())
	m.mu.Unlock()
	if m.cfg.Network != nil && in.State == Running {
		// Bounded: a switch that does not answer must not hold up the API.
		ctx, cancel := context.WithTimeout(m.ctx, 2*time.Second)
		defer cancel()
		if c, err := m.cfg.Network.Counters(ctx, name); err == nil {
			in.Traffic = &c
		}
	}
	return in, nil
}

// OwnerOf returns who a chute belongs to. Unlike Get it asks nothing of
// the switch, so it takes as long for any chute as for none.
func (m *Manager) OwnerOf(name string) (Owner, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.chutes[name]
	if !ok {
		return "", fmt.Errorf("chute %q: %w", name, ErrNotFound)
	}
	return e.rec.Owner, nil
}

// save persists e's record; callers hold no lock.
func (m *Manager) save(name string, fn func(r *record)) error {
	m.mu.Lock()
	e, ok := m.chutes[name]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("chute %q: %w", name, ErrNotFound)
	}
	fn(&e.rec)
	r := e.rec
	m.mu.Unlock()
	if err := m.db.Put(store.Chutes, name, r); err != nil {
		return fmt.Errorf("save chute %q: %w", name, err)
	}
	return nil
}

// acting returns the chute name if actor may act on it, and as a chute
// that does not exist if not: a developer learns nothing of others'.
func (m *Manager) acting(name string, actor Actor) (*entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.chutes[name]
	if !ok || !actor.MayAct(name, e.rec.Owner) {
		return nil, fmt.Errorf("chute %q: %w", name, ErrNotFound)
	}
	return e, nil
}

// guarded is run, checked again when it runs: the chute on the queue then
// must still be one actor may act on.
func (m *Manager) guarded(name string, actor Actor, run func(context.Context, *progress) error) func(context.Context, *progress) error {
	return func(ctx context.Context, p *progress) error {
		if _, err := m.acting(name, actor); err != nil {
			return err
		}
		return run(ctx, p)
	}
}

func (m *Manager) entry(name string) (*entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.chutes[name]
	if !ok {
		return nil, fmt.Errorf("chute %q: %w", name, ErrNotFound)
	}
	return e, nil
}
