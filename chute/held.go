package chute

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// A gateway a chute left by migration holds its package a while, by its
// owner and SHA-256, so that the chute coming back (its user going back
// and forth between two homes) need not bring it again: the source names
// the package's hash as the import begins, the target says it holds it,
// and the stream then names it (transfer.KindHeld) instead of carrying it.
// The held package is admitted as an upload of it would be. Only the
// owner's own migrations may name it: a developer learns nothing of what
// another's chutes were.

// maxHeld is how many packages a gateway holds, the most recent, and
// no more than the upload limit's bytes in all.
const maxHeld = 8

// heldPath is where the package of sum (hex SHA-256) owner's chute left is
// held.
func (l layout) heldPath(owner Owner, sum string) string {
	return filepath.Join(l.heldDir(owner), sum)
}

// heldDir holds the packages owner's chutes left.
func (l layout) heldDir(owner Owner) string {
	dir := string(owner)
	if dir == "" {
		dir = "_" // the operator's: no developer's name begins so
	}
	return filepath.Join(l.root, "held", dir)
}

// validSum is a hex SHA-256.
func validSum(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size && hex.EncodeToString(b) == s
}

// fileSum is the hex SHA-256 of the file at path.
func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HoldsPackage is whether the gateway holds the package of sum that a
// chute of owner left here.
func (m *Manager) HoldsPackage(owner Owner, sum string) bool {
	if !validSum(sum) {
		return false
	}
	_, err := os.Stat(m.paths.heldPath(owner, sum))
	return err == nil
}

// holdPackage moves the package at path, of sum, of owner's chute that is
// leaving, to be held, and lets go of the oldest beyond maxHeld.
func (m *Manager) holdPackage(owner Owner, sum, path string) error {
	dst := m.paths.heldPath(owner, sum)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if err := os.Rename(path, dst); err != nil {
		return err
	}
	now := time.Now()
	os.Chtimes(dst, now, now)
	all, _ := filepath.Glob(filepath.Join(m.paths.root, "held", "*", "*"))
	infos := map[string]os.FileInfo{}
	for _, p := range all {
		if fi, err := os.Stat(p); err == nil {
			infos[p] = fi
		}
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := infos[all[i]], infos[all[j]]
		return a != nil && (b == nil || a.ModTime().After(b.ModTime()))
	})
	var total int64
	for i, p := range all {
		if fi := infos[p]; fi != nil {
			total += fi.Size()
		}
		if i >= maxHeld || total > m.cfg.MaxUpload {
			os.Remove(p)
		}
	}
	return nil
}

// heldReader reads the held package of sum of owner, checking at its end
// that it still is that package.
type heldReader struct {
	f   *os.File
	h   hash.Hash
	sum string
}

func (m *Manager) openHeld(owner Owner, sum string) (*heldReader, error) {
	if !validSum(sum) {
		return nil, fmt.Errorf("%w: held package %q", ErrInvalid, sum)
	}
	f, err := os.Open(m.paths.heldPath(owner, sum))
	if err != nil {
		return nil, fmt.Errorf("%w: the package %s is not held here", ErrInvalid, sum)
	}
	return &heldReader{f: f, h: sha256.New(), sum: sum}, nil
}

func (r *heldReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF && hex.EncodeToString(r.h.Sum(nil)) != r.sum {
		return n, fmt.Errorf("held package %s: altered", r.sum)
	}
	return n, err
}

func (r *heldReader) Close() error { return r.f.Close() }
