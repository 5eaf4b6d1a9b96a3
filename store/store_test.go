package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

type rec struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func TestPutGetPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(Chutes, "web", rec{"web", 1}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var r rec
	if err := d.Get(Chutes, "web", &r); err != nil || r != (rec{"web", 1}) {
		t.Fatalf("got %+v, %v", r, err)
	}
	if err := d.Get(Chutes, "nope", &r); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v, want ErrNotFound", err)
	}
}

func TestUpdateIsAtomic(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	boom := errors.New("boom")
	err = d.Update(func(tx *Tx) error {
		if err := tx.Put(Chutes, "a", rec{"a", 1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	var r rec
	if err := d.Get(Chutes, "a", &r); !errors.Is(err, ErrNotFound) {
		t.Fatalf("write of a failed transaction is visible: %+v %v", r, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Update(func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucketIfNotExists([]byte(Meta))
		return m.Put([]byte(schemaKey), []byte("99"))
	})
	b.Close()
	if d, err := Open(path); err == nil {
		d.Close()
		t.Fatal("opened a state file from a newer schema")
	}
}

func TestPruneOldestFirst(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.Update(func(tx *Tx) error {
		for i := 0; i < 10; i++ {
			id, _ := tx.NextID(Changes)
			if err := tx.Put(Changes, IDKey(id), rec{N: int(id)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var pruned int
	d.Update(func(tx *Tx) error {
		pruned, err = tx.Prune(Changes, func(k string) bool { return k >= IDKey(8) })
		return err
	})
	var left []int
	d.View(func(tx *Tx) error {
		return tx.ForEach(Changes, func(k string, raw []byte) error {
			var r rec
			tx.Get(Changes, k, &r)
			left = append(left, r.N)
			return nil
		})
	})
	if pruned != 7 || len(left) != 3 || left[0] != 8 {
		t.Fatalf("pruned %d, left %v", pruned, left)
	}
}

// A second daemon on the same data directory is told who holds the state,
// not just "timeout".
func TestSecondOpenNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	want := fmt.Sprintf("held by another process (pid %d;", os.Getpid())
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) {
		t.Errorf("second open: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	d.Close()
	d, err = Open(path)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	d.Close()
}

// Commits counts what reached the disk: committed writes, not reads nor
// rolled-back writes.
func TestCommitsCounted(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	before := d.Commits()
	if err := d.Put(Chutes, "a", rec{"a", 1}); err != nil {
		t.Fatal(err)
	}
	var r rec
	if err := d.Get(Chutes, "a", &r); err != nil {
		t.Fatal(err)
	}
	d.Update(func(tx *Tx) error { return errors.New("rolled back") })
	if got := d.Commits() - before; got != 1 {
		t.Fatalf("commits = %d after one put, one get and one rolled-back update, want 1", got)
	}
}
