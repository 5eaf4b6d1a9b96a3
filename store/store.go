// Package store owns the daemon's persistent state: one bbolt file holding
// the chutes' records, the change history and the daemon's own metadata,
// versioned so later releases can migrate it.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// SchemaVersion is the layout this build reads and writes. Open refuses a
// file written by a newer build rather than guess at its layout.
const SchemaVersion = 1

// Bucket names a keyspace of the store.
type Bucket string

// The keyspaces. Values are JSON documents, so records stay readable with
// bbolt's own tools.
const (
	Meta    Bucket = "meta"
	Chutes  Bucket = "chutes"
	Changes Bucket = "changes"
	Usage   Bucket = "usage"
	// Developers holds the tenants' records and Tokens their tokens'
	// hashes (package tenant).
	Developers Bucket = "developers"
	Tokens     Bucket = "tokens"
	// USP holds what the TR-369 agent keeps across restarts (package
	// usp): its answers to the requests that changed something, the
	// commands it was running, its persistent subscriptions.
	USP Bucket = "usp"
)

var buckets = []Bucket{Meta, Chutes, Changes, Usage, Developers, Tokens, USP}

// ErrNotFound is returned when a key is absent.
var ErrNotFound = errors.New("not found")

// ErrLocked is returned by Open when another process has the file open.
var ErrLocked = errors.New("held by another process")

const schemaKey = "schema_version"

// DB is the open state file.
type DB struct {
	bolt    *bolt.DB
	commits atomic.Uint64
}

// Open opens (creating if needed) the state file at path. It fails fast if
// another daemon holds the file, instead of waiting forever on its lock,
// with ErrLocked naming the holder's pid.
func Open(path string) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open state %s: %w%s", path, ErrLocked, holder(path))
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	d := &DB{bolt: b}
	if err := d.bolt.Update(d.migrate); err != nil {
		b.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return d, nil
}

// holder names the process holding bbolt's lock (a flock) on path, as the
// kernel lists it in /proc/locks: "1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE
// 0 EOF", the device numbers in hex.
func holder(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	dev := uint64(st.Dev) // narrower on some architectures
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), st.Ino)
	raw, err := os.ReadFile("/proc/locks")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == file {
			return fmt.Sprintf(" (pid %s; is another paradrop daemon running on this data directory?)", f[4])
		}
	}
	return ""
}

func (d *DB) migrate(tx *bolt.Tx) error {
	for _, name := range buckets {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return err
		}
	}
	meta := tx.Bucket([]byte(Meta))
	var v int
	if raw := meta.Get([]byte(schemaKey)); raw != nil {
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("schema version: %w", err)
		}
	}
	if v > SchemaVersion {
		return fmt.Errorf("state written by a newer paradrop (schema %d, this build reads %d)", v, SchemaVersion)
	}
	raw, _ := json.Marshal(SchemaVersion)
	return meta.Put([]byte(schemaKey), raw)
}

// Close closes the file.
func (d *DB) Close() error { return d.bolt.Close() }

// Tx is a read or read-write transaction. Several writes inside one Update
// land together or not at all.
type Tx struct {
	tx *bolt.Tx
}

// View runs fn in a read-only transaction.
func (d *DB) View(fn func(*Tx) error) error {
	return d.bolt.View(func(tx *bolt.Tx) error { return fn(&Tx{tx}) })
}

// Update runs fn in a read-write transaction, committed if fn returns nil.
func (d *DB) Update(fn func(*Tx) error) error {
	err := d.bolt.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx}) })
	if err == nil {
		d.commits.Add(1)
	}
	return err
}

// Commits is how many write transactions were committed since Open. Each
// waits for the disk (two fdatasyncs), so a path that must be quick, such
// as a chute's start, is judged by how many it makes.
func (d *DB) Commits() uint64 { return d.commits.Load() }

// Get decodes the value at key into v, or returns ErrNotFound.
func (t *Tx) Get(b Bucket, key string, v any) error {
	raw := t.tx.Bucket([]byte(b)).Get([]byte(key))
	if raw == nil {
		return fmt.Errorf("%s/%s: %w", b, key, ErrNotFound)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", b, key, err)
	}
	return nil
}

// Put stores v, JSON-encoded, at key.
func (t *Tx) Put(b Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", b, key, err)
	}
	return t.tx.Bucket([]byte(b)).Put([]byte(key), raw)
}

// Delete removes key; removing an absent key is not an error.
func (t *Tx) Delete(b Bucket, key string) error {
	return t.tx.Bucket([]byte(b)).Delete([]byte(key))
}

// ForEach calls fn for every key in order, with the raw JSON value. The
// value is only valid during the call.
func (t *Tx) ForEach(b Bucket, fn func(key string, raw []byte) error) error {
	return t.tx.Bucket([]byte(b)).ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

// NextID returns the next value of the bucket's sequence, for keys that
// must never be reused (change ids).
func (t *Tx) NextID(b Bucket) (uint64, error) {
	return t.tx.Bucket([]byte(b)).NextSequence()
}

// Prune deletes keys in order from the first while keep returns false, and
// stops at the first key it keeps. Keys written with IDKey or time-ordered
// keys therefore prune oldest first.
func (t *Tx) Prune(b Bucket, keep func(key string) bool) (int, error) {
	c := t.tx.Bucket([]byte(b)).Cursor()
	n := 0
	for k, _ := c.First(); k != nil && !keep(string(k)); k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// IDKey encodes a sequence number so that byte order is numeric order.
func IDKey(id uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	return string(b[:])
}

// Get is View+Get for a single key.
func (d *DB) Get(b Bucket, key string, v any) error {
	return d.View(func(t *Tx) error { return t.Get(b, key, v) })
}

// Put is Update+Put for a single key.
func (d *DB) Put(b Bucket, key string, v any) error {
	return d.Update(func(t *Tx) error { return t.Put(b, key, v) })
}
