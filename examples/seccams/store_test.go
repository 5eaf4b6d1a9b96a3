package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func testStore(t *testing.T, dir string, quota int64) *Store {
	t.Helper()
	s, err := OpenStore(dir, quota, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.free = func() (int64, error) { return 1 << 40, nil }
	return s
}

func ids(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// Events beyond the quota drop the oldest first, whole, and the store
// never holds more than its quota, on disk as in its count.
func TestStoreEvictsOldestFirst(t *testing.T) {
	dir := t.TempDir()
	frame := bytes.Repeat([]byte{0xab}, 3*block) // 3 blocks; an event takes 5
	s := testStore(t, dir, 22*block)             // room for 4 events
	start := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	var made []string
	for i := range 10 {
		ev, err := s.Create(start.Add(time.Duration(i)*time.Second), 20, frame, []byte("thumb"))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, ev.ID)
		if u := s.Usage(); u.Bytes > u.Quota {
			t.Fatalf("after %d events: %d bytes held, quota %d", i+1, u.Bytes, u.Quota)
		}
	}
	got := ids(s.Events())
	want := []string{made[9], made[8], made[7], made[6]}
	if len(got) != 4 || got[0] != want[0] || got[3] != want[3] {
		t.Fatalf("events %v, want the newest four %v", got, want)
	}
	if u := s.Usage(); u.Evicted != 6 {
		t.Errorf("evicted %d, want 6", u.Evicted)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Errorf("%d event directories on disk, want 4", len(ents))
	}
	// A frame added to the open event drops others, never the event itself.
	for range 5 {
		if err := s.AddFrame(made[9], start.Add(time.Minute), 30, frame); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(s.Events()); len(got) != 1 || got[0] != made[9] {
		t.Errorf("after the open event grew: %v, want it alone", got)
	}
	// What cannot fit even alone is refused, and nothing is half-written.
	if err := s.AddFrame(made[9], start.Add(time.Minute), 30, bytes.Repeat([]byte{1}, 30*block)); !errors.Is(err, errFull) {
		t.Errorf("a frame over the quota: %v, want errFull", err)
	}
	if _, err := s.Create(start.Add(time.Hour), 1, bytes.Repeat([]byte{1}, 30*block), nil); !errors.Is(err, errFull) {
		t.Errorf("an event over the quota: %v, want errFull", err)
	}

	// Reopened, the store has the same events, with their frames; what an
	// interrupted write left is gone.
	os.Mkdir(filepath.Join(dir, ".new-20261206T190000.000Z"), 0o755)
	os.Mkdir(filepath.Join(dir, "lost+found"), 0o700)
	s2 := testStore(t, dir, 22*block)
	if got := s2.Events(); len(got) != 1 || got[0].ID != made[9] || got[0].Frames != 6 {
		t.Errorf("reopened: %+v", got)
	}
	if s2.Usage().Bytes != s.Usage().Bytes {
		t.Errorf("reopened: %d bytes, was %d", s2.Usage().Bytes, s.Usage().Bytes)
	}
	if _, err := os.Stat(filepath.Join(dir, ".new-20261206T190000.000Z")); !os.IsNotExist(err) {
		t.Errorf("a half-made event survived reopening: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lost+found")); err != nil {
		t.Errorf("what is not the store's was removed: %v", err)
	}
}

// The filesystem running short evicts too, well within the quota: the
// quota is not all the disk the chute has (its other files share it).
func TestStoreEvictsForFreeSpace(t *testing.T) {
	s := testStore(t, t.TempDir(), 1<<30)
	s.reserve = 10 * block
	// As the filesystem would say: 40 blocks, less what the events hold.
	s.free = func() (int64, error) { return 40*block - s.used, nil }
	frame := bytes.Repeat([]byte{7}, 3*block)
	start := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	for i := range 8 {
		ev, err := s.Create(start.Add(time.Duration(i)*time.Second), 20, frame, nil)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if free := 40*block - s.Usage().Bytes; free < s.reserve {
			t.Fatalf("event %s left %d bytes free, reserve %d", ev.ID, 40*block-s.Usage().Bytes, s.reserve)
		}
	}
	if n := len(s.Events()); n != 7 {
		t.Errorf("%d events kept, want the 7 that fit above the reserve", n)
	}
}

// Event files are named by the store, never by the request.
func TestStoreFile(t *testing.T) {
	s := testStore(t, t.TempDir(), 1<<20)
	ev, err := s.Create(time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC), 1, []byte("f"), []byte("t"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, name string
		ok       bool
	}{
		{ev.ID, "0.jpg", true},
		{ev.ID, "thumb.jpg", true},
		{ev.ID, "1.jpg", false}, // not stored (yet)
		{ev.ID, "event.json", false},
		{ev.ID, "../0.jpg", false},
		{"..", "0.jpg", false},
		{"20261206T190000.000Z/..", "0.jpg", false},
		{"20991206T190000.000Z", "0.jpg", false},
	} {
		if got := s.File(c.id, c.name); (got != "") != c.ok {
			t.Errorf("File(%q, %q) = %q, want found %v", c.id, c.name, got, c.ok)
		}
	}
}
