package chute

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"paradrop/chute/manifest"
)

// Admission: what chutes are promised never exceeds what the gateway has.
//
// A chute's /data is a sparse image whose size is its quota: the blocks are
// taken from the data filesystem only as the chute writes. So the quota is
// a promise, and admission counts promises, not current use: the part of
// every volume's quota not yet allocated (kept volumes included) must fit
// in the data filesystem's free space, less a headroom the gateway keeps
// for its own writes (rootfs of updates, logs, the state file). Were the
// promises to exceed it, one chute filling its /data could fill the
// filesystem under every other chute and the gateway (the journal aborts,
// chutes cannot restart).
//
// Memory: a chute's memory limit bounds all the RAM it can hold, /tmp
// included (tmpfs pages are charged to its memory cgroup), so a chute is
// promised the larger of memory and tmp (a tmp no memory could back is not
// promised). The promises together may reach the gateway's memory times an
// overcommit ratio the operator sets.
//
// A change that would raise the promises beyond what there is is refused
// at once with ErrNoRoom. One that does not raise them (an update keeping
// its quota) is admitted even on a gateway already overcommitted.

// ErrNoRoom is a request that does not fit in what the gateway has; it is
// an ErrConflict (the gateway's state, not the request, is in the way).
var ErrNoRoom error = &kindError{msg: "not enough room on the gateway", kind: ErrConflict}

// kindError is a sentinel of its own that is also one of the broader kinds
// callers map (the API's statuses), so those need not know it.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// DefaultOvercommit is the memory overcommit ratio when none is set: the
// limits of all chutes together may reach the gateway's memory, and no
// more. A limit is a ceiling most chutes stay far below, so a higher ratio
// can be safe, but only the operator knows its chutes; at 1.0 a promise is
// never one the hardware could not keep, which on a gateway whose first
// job is routing is the default to have (serve --memory-overcommit).
const DefaultOvercommit = 1.0

// diskHeadroom is the part of the data filesystem no chute is promised:
// a twentieth of it, at least 8 MiB.
func diskHeadroom(size int64) int64 { return max(size/20, 8<<20) }

// claim is what an admitted install, update or policy change will hold
// once committed; it counts from admission until its job has ended, when
// the chute's record (or its absence) says what is held.
type claim struct {
	name   string
	disk   int64 // quota of /data; 0 leaves it as it is
	memory int64 // memory promised
	// For the owner's quota (quota.go): the chute's owner, cpu_max and
	// egress limit.
	owner  Owner
	cpu    float64
	egress uint64
}

// holding is what one chute name is promised and has.
type holding struct {
	disk      int64 // quota of /data: the largest of record, image and claims
	diskAlloc int64 // blocks its image has taken on the data filesystem
	memory    int64
	owner     Owner
	cpu       float64
	egress    uint64
}

// promise is the part of the quota not yet taken from the filesystem.
func (h holding) promise() int64 { return max(0, h.disk-h.diskAlloc) }

// room is what the gateway has to promise.
type room struct {
	diskFree     int64 // free on the data filesystem, less the headroom
	diskSize     int64 // the data filesystem's size, for messages
	diskHeadroom int64
	memory       int64 // the gateway's memory times the overcommit ratio
	memTotal     int64
	overcommit   float64
}

// memoryOf is the memory a chute with resources r is promised.
func memoryOf(r manifest.Resources) int64 { return int64(max(r.Memory, r.Tmp)) }

// fit reports whether c can be added to the holdings within r, as an
// error wrapping ErrNoRoom that names what was asked and what is free.
func fit(r room, hs map[string]holding, c claim) error {
	var disk, mem int64
	for _, h := range hs {
		disk += h.promise()
		mem += h.memory
	}
	cur := hs[c.name]
	next := cur
	next.disk = max(cur.disk, c.disk)
	next.memory = max(cur.memory, c.memory)
	var why []string
	if d := next.promise() - cur.promise(); d > 0 && disk+d > r.diskFree {
		// The most this chute's quota can be: what it has taken plus
		// what no other chute is promised.
		most := max(0, r.diskFree-(disk-cur.promise())) + cur.diskAlloc
		why = append(why, fmt.Sprintf("disk: %q asks %s for /data, at most %s fits (data filesystem of %s: %s free, %s kept for the gateway, %s promised to other chutes)",
			c.name, manifest.Bytes(c.disk), mib(most), mib(r.diskSize), mib(r.diskFree+r.diskHeadroom), mib(r.diskHeadroom), mib(disk-cur.promise())))
	}
	if d := next.memory - cur.memory; d > 0 && mem+d > r.memory {
		most := max(0, r.memory-(mem-cur.memory))
		why = append(why, fmt.Sprintf("memory: %q asks %s (the larger of memory and tmp), at most %s fits (gateway memory %s × overcommit %g, %s promised to other chutes)",
			c.name, manifest.Bytes(c.memory), mib(most), mib(r.memTotal), r.overcommit, mib(mem-cur.memory)))
	}
	if len(why) > 0 {
		return fmt.Errorf("%w: %s", ErrNoRoom, strings.Join(why, "; "))
	}
	return nil
}

// mib formats n rounded down to a whole MiB: free space is never overstated.
func mib(n int64) manifest.Bytes { return manifest.Bytes(n &^ (1<<20 - 1)) }

// admit checks c against the gateway and, if it fits, holds it until
// release. Admissions are serialized, so two racing for the last space
// cannot both win.
func (m *Manager) admit(c claim) (*claim, error) {
	m.admitMu.Lock()
	defer m.admitMu.Unlock()
	r, err := m.room()
	if err != nil {
		return nil, fmt.Errorf("admission: %w", err)
	}
	hs := m.holdings()
	if err := fit(r, hs, c); err != nil {
		return nil, err
	}
	if c.owner != "" {
		q, err := m.quotaOf(c.owner)
		if err != nil {
			return nil, fmt.Errorf("admission: %w", err)
		}
		if err := fitQuota(c.owner, q, hs, c); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	m.claims[&c] = true
	m.mu.Unlock()
	return &c, nil
}

// release ends a claim; the chute's record now says what it holds.
func (m *Manager) release(c *claim) {
	m.mu.Lock()
	delete(m.claims, c)
	m.mu.Unlock()
}

// room measures the data filesystem and the gateway's memory.
func (m *Manager) room() (room, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(m.paths.chutes(), &st); err != nil {
		return room{}, fmt.Errorf("data filesystem: %w", err)
	}
	// Field widths differ between architectures (int32 Bsize on 386 and arm).
	size := int64(st.Blocks) * int64(st.Bsize)
	head := diskHeadroom(size)
	r := room{
		diskSize: size, diskHeadroom: head, diskFree: int64(st.Bavail)*int64(st.Bsize) - head,
		memTotal: m.cfg.Memory, overcommit: m.cfg.MemoryOvercommit,
	}
	if r.memTotal == 0 {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return room{}, fmt.Errorf("gateway memory: %w", err)
		}
		r.memTotal = int64(si.Totalram) * int64(si.Unit)
	}
	r.memory = int64(float64(r.memTotal) * r.overcommit)
	return r, nil
}

// holdings is what every chute name holds: installed chutes by their
// records and volumes, removed ones by their kept volumes, and admitted
// changes by their claims.
func (m *Manager) holdings() map[string]holding {
	hs := map[string]holding{}
	images := map[string]string{}
	m.mu.Lock()
	for name, e := range m.chutes {
		res := e.rec.Policy.apply(e.rec.Manifest.Resources)
		hs[name] = holding{disk: int64(res.Disk), memory: memoryOf(res), owner: e.rec.Owner, cpu: res.CPUMax, egress: uint64(res.Bandwidth.Egress)}
		images[name] = m.paths.dataImage(name)
	}
	for c := range m.claims {
		h := hs[c.name]
		h.disk, h.memory = max(h.disk, c.disk), max(h.memory, c.memory)
		h.owner, h.cpu, h.egress = c.owner, max(h.cpu, c.cpu), max(h.egress, c.egress)
		hs[c.name] = h
	}
	m.mu.Unlock()
	if kept, err := filepath.Glob(m.paths.keptImage("*")); err == nil {
		for _, img := range kept {
			name := strings.TrimSuffix(filepath.Base(img), ".img")
			if _, ok := images[name]; !ok {
				images[name] = img
			}
		}
	}
	for name, img := range images {
		// A volume never shrinks: its image's size is its quota.
		fi, err := os.Stat(img)
		if err != nil {
			continue
		}
		h := hs[name]
		h.disk = max(h.disk, fi.Size())
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			h.diskAlloc = int64(st.Blocks) * 512
		}
		hs[name] = h
	}
	return hs
}
