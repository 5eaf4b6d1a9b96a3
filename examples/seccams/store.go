package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
)

// Event is one motion event, as stored in its directory's event.json and
// listed by GET /api/events.
type Event struct {
	ID     string    `json:"id"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`    // its last frame with motion (its last stored one while open)
	Frames int       `json:"frames"` // stored: 0.jpg, 1.jpg, ...
	Score  int       `json:"score"`  // the most grid cells a frame changed
	Alert  string    `json:"alert"`  // alertPending, alertSent or alertRefused
	Bytes  int64     `json:"bytes"`  // on disk, in whole blocks
}

// Alert states.
const (
	alertPending = "pending"
	alertSent    = "sent"
	alertRefused = "refused" // the cloud answered 4xx: retrying would not help
)

// errFull is a write that does not fit even with every other event gone.
var errFull = errors.New("store: no room for the frame within the quota")

// eventID is an event's name: when it began, UTC, to the millisecond,
// which sorts as time does; a suffix tells apart two of one millisecond.
var eventID = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z(-[0-9]{1,3})?$`)

// fileName is a file of an event: its frames and thumbnail.
var fileName = regexp.MustCompile(`^([0-9]{1,3}|thumb)\.jpg$`)

// newPrefix names an event's directory while it is being made.
const newPrefix = ".new-"

// block is the filesystem's allocation unit: what a file takes on disk.
const block = 4096

func onDisk(n int) int64 { return (int64(n) + block - 1) / block * block }

// Store keeps events in dir, one directory each, within quota bytes of
// their files, and keeps reserve bytes of the filesystem free: to make
// room it drops whole events, oldest first.
type Store struct {
	dir     string
	quota   int64
	reserve int64
	// free is what the filesystem has left for us (statfs's available).
	free func() (int64, error)

	mu      sync.Mutex
	events  []*Event // oldest first
	used    int64
	evicted int
}

// OpenStore loads the events under dir (made if missing) and drops what
// an interrupted write left.
func OpenStore(dir string, quota, reserve int64) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, quota: quota, reserve: reserve, free: func() (int64, error) {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return 0, fmt.Errorf("statfs %s: %w", dir, err)
		}
		return int64(st.Bavail) * int64(st.Bsize), nil
	}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), newPrefix) {
			os.RemoveAll(p) // an event a crash left half-made
			continue
		}
		if !e.IsDir() || !eventID.MatchString(e.Name()) {
			continue // not ours (lost+found, if dir is the volume's root)
		}
		var ev Event
		b, err := os.ReadFile(filepath.Join(p, "event.json"))
		if err == nil {
			err = json.Unmarshal(b, &ev)
		}
		if err != nil || ev.ID != e.Name() {
			os.RemoveAll(p)
			continue
		}
		s.events = append(s.events, &ev)
		s.used += ev.Bytes
	}
	sort.Slice(s.events, func(i, j int) bool { return s.events[i].ID < s.events[j].ID })
	return s, nil
}

// room drops the oldest events but keep until n more bytes fit; when
// they would not fit with all of them gone it drops none.
func (s *Store) room(n int64, keep string) error {
	free, err := s.free()
	if err != nil {
		return err
	}
	var droppable int64
	for _, ev := range s.events {
		if ev.ID != keep {
			droppable += ev.Bytes
		}
	}
	if s.used-droppable+n > s.quota || free+droppable-n < s.reserve {
		return errFull
	}
	for s.used+n > s.quota || free-n < s.reserve {
		i := 0
		for s.events[i].ID == keep {
			i++
		}
		ev := s.events[i]
		if err := os.RemoveAll(filepath.Join(s.dir, ev.ID)); err != nil {
			return fmt.Errorf("store: drop event %s: %w", ev.ID, err)
		}
		s.events = append(s.events[:i], s.events[i+1:]...)
		s.used -= ev.Bytes
		s.evicted++
		if free, err = s.free(); err != nil {
			return err
		}
	}
	return nil
}

// Create stores a new event beginning at start with its first frame and
// its thumbnail, whole or not at all.
func (s *Store) Create(start time.Time, score int, frame, thumb []byte) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := start.UTC().Format("20060102T150405.000Z")
	for n := 1; s.find(id) != nil; n++ {
		id = fmt.Sprintf("%s-%d", start.UTC().Format("20060102T150405.000Z"), n)
	}
	ev := &Event{ID: id, Start: start, End: start, Frames: 1, Score: score, Alert: alertPending,
		Bytes: onDisk(len(frame)) + onDisk(len(thumb)) + block}
	if err := s.room(ev.Bytes, ""); err != nil {
		return Event{}, err
	}
	tmp := filepath.Join(s.dir, newPrefix+id)
	err := os.Mkdir(tmp, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, "0.jpg"), frame, 0o644)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, "thumb.jpg"), thumb, 0o644)
	}
	if err == nil {
		err = writeJSON(filepath.Join(tmp, "event.json"), ev)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, id))
	}
	if err != nil {
		os.RemoveAll(tmp)
		return Event{}, fmt.Errorf("store: event %s: %w", id, err)
	}
	s.events = append(s.events, ev)
	s.used += ev.Bytes
	return *ev, nil
}

// AddFrame stores one more frame of event id, taken at t.
func (s *Store) AddFrame(id string, t time.Time, score int, frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.find(id)
	if ev == nil {
		return fmt.Errorf("store: no event %s", id)
	}
	n := onDisk(len(frame))
	if err := s.room(n, id); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, id, fmt.Sprintf("%d.jpg", ev.Frames)), frame, 0o644); err != nil {
		return fmt.Errorf("store: event %s: %w", id, err)
	}
	next := *ev
	next.Frames++
	next.End = t
	next.Score = max(next.Score, score)
	next.Bytes += n
	s.used += n
	return s.save(ev, next)
}

// Update sets what fn changes of event id's metadata (its end, its alert).
func (s *Store) Update(id string, fn func(*Event)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.find(id)
	if ev == nil {
		return fmt.Errorf("store: no event %s", id)
	}
	next := *ev
	fn(&next)
	return s.save(ev, next)
}

// save writes next as ev's event.json, replacing the old at once, and
// keeps it in memory.
func (s *Store) save(ev *Event, next Event) error {
	if err := writeJSON(filepath.Join(s.dir, ev.ID, "event.json"), &next); err != nil {
		return fmt.Errorf("store: event %s: %w", ev.ID, err)
	}
	*ev = next
	return nil
}

func (s *Store) find(id string) *Event {
	for _, ev := range s.events {
		if ev.ID == id {
			return ev
		}
	}
	return nil
}

// Events are the stored events, newest first.
func (s *Store) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.events))
	for i, ev := range s.events {
		out[len(out)-1-i] = *ev
	}
	return out
}

// Pending are the events whose alert is due, oldest first.
func (s *Store) Pending() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, ev := range s.events {
		if ev.Alert == alertPending {
			out = append(out, *ev)
		}
	}
	return out
}

// File is the path of an event's file name (see fileName), "" when the
// event or the file is not there.
func (s *Store) File(id, name string) string {
	if !eventID.MatchString(id) || !fileName.MatchString(name) {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.find(id)
	if ev == nil {
		return ""
	}
	if n, ok := strings.CutSuffix(name, ".jpg"); ok && n != "thumb" {
		var i int
		if _, err := fmt.Sscan(n, &i); err != nil || i >= ev.Frames {
			return ""
		}
	}
	return filepath.Join(s.dir, id, name)
}

// StoreUsage is what the store holds and may hold.
type StoreUsage struct {
	Events  int   `json:"events"`
	Bytes   int64 `json:"bytes"`
	Quota   int64 `json:"quota"`
	Free    int64 `json:"free"`    // left on the filesystem
	Evicted int   `json:"evicted"` // events dropped for room since start
}

// Usage reports the store's use.
func (s *Store) Usage() StoreUsage {
	s.mu.Lock()
	defer s.mu.Unlock()
	free, _ := s.free()
	return StoreUsage{Events: len(s.events), Bytes: s.used, Quota: s.quota, Free: free, Evicted: s.evicted}
}

// writeJSON replaces path with v's JSON, so that a crash leaves the old
// file or the new, never half of one.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return renameio.WriteFile(path, b, 0o644)
}
