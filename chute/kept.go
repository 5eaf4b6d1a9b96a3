package chute

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kept data: `remove --keep-data` sets a chute's /data image aside under
// its name. The files in it belong to the host ids of the chute's uid slot,
// so the slot stays reserved for the kept volume (no other chute is given
// those ids, or its address) and a later install of the same name takes it
// back: the chute finds its files its own. The slot is written next to the
// image, with the chute's owner, so a daemon restart keeps the reservation.
// Only an install by the same owner takes kept data back: a developer
// installing a chute of another's old name starts empty.

// loadKept reads the slots of the kept volumes; a slot file whose image is
// gone (a crash between the two renames) is dropped. One it cannot read
// leaves its volume kept but not reserved a slot: the daemon still starts.
func (m *Manager) loadKept() error {
	files, err := filepath.Glob(m.paths.keptSlot("*"))
	if err != nil {
		return err
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".slot")
		if _, err := os.Stat(m.paths.keptImage(name)); errors.Is(err, os.ErrNotExist) {
			os.Remove(f)
			continue
		}
		raw, err := os.ReadFile(f)
		// "SLOT\n", then "OWNER\n" if a developer's.
		slotLine, owner, _ := strings.Cut(string(raw), "\n")
		slot, perr := strconv.Atoi(strings.TrimSpace(slotLine))
		if err != nil || perr != nil || slot < 1 {
			m.logf("kept data of %q: cannot read its uid slot (%v %q); it is not reserved", name, err, raw)
			continue
		}
		m.keptSlots[name] = slot
		m.keptOwners[name] = Owner(strings.TrimSpace(owner))
	}
	return nil
}

// keep sets the chute's /data image aside for a later install of name by
// owner, with slot reserved for it. The volume is unmounted.
func (m *Manager) keep(name string, slot int, owner Owner) error {
	if err := os.MkdirAll(m.paths.kept(), 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(m.paths.dataImage(name)); errors.Is(err, os.ErrNotExist) {
		return nil // never started: no data
	}
	if _, err := os.Stat(m.paths.keptImage(name)); err == nil {
		return fmt.Errorf("%w: data of an earlier %q is kept already", ErrConflict, name)
	}
	tmp := m.paths.keptSlot(name) + ".new"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(slot)+"\n"+string(owner)+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, m.paths.keptSlot(name)); err != nil {
		os.Remove(tmp)
		return err
	}
	m.mu.Lock()
	m.keptSlots[name] = slot
	m.keptOwners[name] = owner
	m.mu.Unlock()
	return os.Rename(m.paths.dataImage(name), m.paths.keptImage(name))
}

// takeSlot picks the uid slot of an installing chute of owner and holds it
// until untake: the slot its kept data is owned by, if any and kept by the
// same owner, else the lowest free one (and reuseKept then leaves the kept
// data aside).
func (m *Manager) takeSlot(name string, owner Owner) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	slot, ok := m.keptSlots[name]
	if !ok || m.keptOwners[name] != owner || m.slotTaken(slot, name) {
		slot = 1
		for m.slotTaken(slot, "") {
			slot++
		}
	}
	m.heldSlots[slot] = true
	return slot
}

// slotTaken reports whether a chute, an install under way or a kept volume
// of another name than kept has slot. Callers hold m.mu.
func (m *Manager) slotTaken(slot int, kept string) bool {
	if m.heldSlots[slot] {
		return true
	}
	for name, s := range m.keptSlots {
		if s == slot && name != kept {
			return true
		}
	}
	for _, e := range m.chutes {
		if e.rec.Slot == slot {
			return true
		}
	}
	return false
}

// untake ends the hold of takeSlot: the chute's record holds the slot now,
// or the install failed.
func (m *Manager) untake(slot int) {
	m.mu.Lock()
	delete(m.heldSlots, slot)
	m.mu.Unlock()
}

// reuseKept moves the kept /data of name into the chute, if it has the
// kept slot; the reservation ends. A chute given another slot (kept before
// slots were recorded, or its slot taken meanwhile) starts with an empty
// /data and the kept one stays aside: files owned by other ids would be
// unreadable to it, or readable by the wrong chute.
func (m *Manager) reuseKept(name string, slot int) bool {
	m.mu.Lock()
	s, ok := m.keptSlots[name]
	m.mu.Unlock()
	if !ok || s != slot {
		return false
	}
	if err := os.Rename(m.paths.keptImage(name), m.paths.dataImage(name)); err != nil {
		return false
	}
	os.Remove(m.paths.keptSlot(name))
	m.mu.Lock()
	delete(m.keptSlots, name)
	delete(m.keptOwners, name)
	m.mu.Unlock()
	return true
}

// DropKept deletes the data kept by removed chutes of owner, and frees
// their uid slots: owner is a developer being deleted, which no one may
// take its data back for any more (a new developer given its name would).
// It returns the names whose data it dropped. The operator's kept data
// ("") is not dropped this way.
func (m *Manager) DropKept(owner Owner) ([]string, error) {
	if owner == "" {
		return nil, nil
	}
	m.mu.Lock()
	var names []string
	for n, o := range m.keptOwners {
		if o == owner {
			names = append(names, n)
		}
	}
	m.mu.Unlock()
	sort.Strings(names)
	var dropped []string
	var errs []error
	// The packages its chutes left: a developer of the name added later
	// must not name them.
	if err := os.RemoveAll(m.paths.heldDir(owner)); err != nil {
		errs = append(errs, fmt.Errorf("drop held packages: %w", err))
	}
	for _, n := range names {
		// The image first: a slot file left without its image is dropped
		// by the next start (loadKept).
		if err := os.Remove(m.paths.keptImage(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("drop kept data of %q: %w", n, err))
			continue
		}
		if err := os.Remove(m.paths.keptSlot(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.logf("drop kept data of %q: %v", n, err)
		}
		m.mu.Lock()
		if m.keptOwners[n] == owner {
			delete(m.keptSlots, n)
			delete(m.keptOwners, n)
		}
		m.mu.Unlock()
		dropped = append(dropped, n)
	}
	return dropped, errors.Join(errs...)
}
