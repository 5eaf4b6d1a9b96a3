// Package tenant owns the gateway's third-party developers: their records
// (signing keys, quota, privileges the operator allows them) and their
// bearer tokens, and answers who a token belongs to.
//
// A token is shown once, when it is made; the store keeps only its SHA-256,
// keyed by that hash, so that a copy of the state file grants nothing and
// finding a token's owner is one lookup of a hash the caller cannot steer.
package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"aead.dev/minisign"

	"paradrop/chute/manifest"
	"paradrop/store"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("no such developer")
	ErrExists   = errors.New("developer already exists")
	ErrInvalid  = errors.New("invalid developer")
	ErrNoToken  = errors.New("no such token")
	// ErrDenied is a token that is unknown, revoked or expired; the three
	// are not told apart to whoever holds it.
	ErrDenied = errors.New("invalid token")
)

// Limits on what one developer record may hold: it is read on every
// request the developer makes.
const (
	MaxKeys   = 16
	MaxTokens = 32
	maxKeyLen = 200
)

// nameRE is compiled when a developer is first added or changed, not at
// init: its {0,31} repeats into a 26 KB program a gateway would hold from
// start whether or not anyone registers.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`) })

// Quota bounds what a developer's chutes may hold together; a zero field is
// no bound.
type Quota struct {
	Chutes int            `json:"chutes"`
	CPU    float64        `json:"cpu"`
	Memory manifest.Bytes `json:"memory"`
	Disk   manifest.Bytes `json:"disk"`
	Egress manifest.Rate  `json:"egress"`
}

// Allow is what the operator lets a developer have beyond the default
// sandbox; enforced by the chute manager.
type Allow struct {
	Unsigned     bool     `json:"unsigned"`
	Devices      []string `json:"devices"`
	Capabilities []string `json:"capabilities"`
	// Follow lets its chutes follow a LAN device (manifest follow): the
	// gateways they move to tell the developer where the device is.
	Follow bool `json:"follow"`
}

// Spec is what the operator sets of a developer.
type Spec struct {
	Name  string   `json:"name"`
	Keys  []string `json:"keys"`
	Quota Quota    `json:"quota"`
	Allow Allow    `json:"allow"`
}

// Token is what is shown of a token: never the token itself.
type Token struct {
	ID      string     `json:"id"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
}

// Developer is a developer's record.
type Developer struct {
	Spec
	Created time.Time `json:"created"`
	Tokens  []Token   `json:"tokens"`
}

// tokenRecord is a token's entry in store.Tokens, keyed by its hash.
type tokenRecord struct {
	Developer string     `json:"developer"`
	ID        string     `json:"id"`
	Expires   *time.Time `json:"expires,omitempty"`
}

// Registry is the developers kept in the store.
type Registry struct {
	db  *store.DB
	now func() time.Time
}

// New returns the registry kept in db.
func New(db *store.DB) *Registry { return &Registry{db: db, now: time.Now} }

// Validate checks a spec and puts each key in the form of the key line of
// a minisign .pub file (the whole file is accepted too).
func (s *Spec) Validate() error {
	if !nameRE().MatchString(s.Name) {
		return fmt.Errorf("%w: name %q: want a lowercase letter, then up to 31 of a-z, 0-9 and -", ErrInvalid, s.Name)
	}
	if len(s.Keys) > MaxKeys {
		return fmt.Errorf("%w: %d keys, at most %d", ErrInvalid, len(s.Keys), MaxKeys)
	}
	for i, k := range s.Keys {
		var pk minisign.PublicKey
		if len(k) > maxKeyLen || pk.UnmarshalText([]byte(k)) != nil {
			return fmt.Errorf("%w: key %d is not a minisign public key (the base64 line of the .pub file)", ErrInvalid, i+1)
		}
		s.Keys[i] = pk.String()
	}
	q := s.Quota
	if q.Chutes < 0 || !(q.CPU >= 0) || q.CPU > 1024 || q.Memory < 0 || q.Disk < 0 {
		return fmt.Errorf("%w: quota fields must be 0 (no bound) or more", ErrInvalid)
	}
	if s.Keys == nil {
		s.Keys = []string{}
	}
	if s.Allow.Devices == nil {
		s.Allow.Devices = []string{}
	}
	if s.Allow.Capabilities == nil {
		s.Allow.Capabilities = []string{}
	}
	return nil
}

// newToken returns a random token and its hash.
func newToken() (token, hash, id string, err error) {
	var raw [32 + 8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", "", fmt.Errorf("token: %w", err)
	}
	token = "pdd_" + hex.EncodeToString(raw[:32])
	return token, Hash(token), hex.EncodeToString(raw[32:]), nil
}

// Hash is the SHA-256 under which a token is kept.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Create adds a developer with one token, which is returned: it is not kept.
func (r *Registry) Create(s Spec) (Developer, string, error) {
	if err := s.Validate(); err != nil {
		return Developer{}, "", err
	}
	d := Developer{Spec: s, Created: r.now().UTC()}
	var token string
	err := r.db.Update(func(tx *store.Tx) error {
		switch err := tx.Get(store.Developers, s.Name, new(Developer)); {
		case err == nil:
			return fmt.Errorf("developer %q: %w", s.Name, ErrExists)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		var err error
		token, err = r.addToken(tx, &d, nil)
		return err
	})
	if err != nil {
		return Developer{}, "", err
	}
	return d, token, nil
}

// addToken makes a token for d and saves d.
func (r *Registry) addToken(tx *store.Tx, d *Developer, expires *time.Time) (string, error) {
	if len(d.Tokens) >= MaxTokens {
		return "", fmt.Errorf("%w: developer %q has %d tokens, at most %d: revoke one", ErrInvalid, d.Name, len(d.Tokens), MaxTokens)
	}
	token, hash, id, err := newToken()
	if err != nil {
		return "", err
	}
	d.Tokens = append(d.Tokens, Token{ID: id, Created: r.now().UTC(), Expires: expires})
	if err := tx.Put(store.Tokens, hash, tokenRecord{Developer: d.Name, ID: id, Expires: expires}); err != nil {
		return "", err
	}
	return token, tx.Put(store.Developers, d.Name, d)
}

// List returns every developer, by name.
func (r *Registry) List() ([]Developer, error) {
	out := []Developer{}
	err := r.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Developers, func(k string, _ []byte) error {
			var d Developer
			if err := tx.Get(store.Developers, k, &d); err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Get returns one developer.
func (r *Registry) Get(name string) (Developer, error) {
	var d Developer
	err := r.db.View(func(tx *store.Tx) error { return get(tx, name, &d) })
	return d, err
}

func get(tx *store.Tx, name string, d *Developer) error {
	err := tx.Get(store.Developers, name, d)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("developer %q: %w", name, ErrNotFound)
	}
	return err
}

// Set replaces what the operator sets of a developer; its tokens stay.
func (r *Registry) Set(name string, s Spec) (Developer, error) {
	if s.Name == "" {
		s.Name = name
	}
	if s.Name != name {
		return Developer{}, fmt.Errorf("%w: the body names %q, the path %q (a developer cannot be renamed)", ErrInvalid, s.Name, name)
	}
	if err := s.Validate(); err != nil {
		return Developer{}, err
	}
	var d Developer
	err := r.db.Update(func(tx *store.Tx) error {
		if err := get(tx, name, &d); err != nil {
			return err
		}
		d.Spec = s
		return tx.Put(store.Developers, name, d)
	})
	return d, err
}

// Delete removes a developer and every token of it.
func (r *Registry) Delete(name string) error {
	return r.db.Update(func(tx *store.Tx) error {
		var d Developer
		if err := get(tx, name, &d); err != nil {
			return err
		}
		if err := r.dropTokens(tx, name, func(string) bool { return true }); err != nil {
			return err
		}
		return tx.Delete(store.Developers, name)
	})
}

// dropTokens deletes the developer's tokens whose id matches.
func (r *Registry) dropTokens(tx *store.Tx, name string, match func(id string) bool) error {
	var drop []string
	err := tx.ForEach(store.Tokens, func(k string, _ []byte) error {
		var t tokenRecord
		if err := tx.Get(store.Tokens, k, &t); err != nil {
			return err
		}
		if t.Developer == name && match(t.ID) {
			drop = append(drop, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := tx.Delete(store.Tokens, k); err != nil {
			return err
		}
	}
	return nil
}

// AddToken makes another token for a developer, expiring at expires if not
// nil, and returns it: it is not kept.
func (r *Registry) AddToken(name string, expires *time.Time) (Token, string, error) {
	if expires != nil && !expires.After(r.now()) {
		return Token{}, "", fmt.Errorf("%w: the token would expire at %s, which has passed", ErrInvalid, expires.UTC().Format(time.RFC3339))
	}
	var token string
	var d Developer
	err := r.db.Update(func(tx *store.Tx) error {
		if err := get(tx, name, &d); err != nil {
			return err
		}
		var err error
		token, err = r.addToken(tx, &d, expires)
		return err
	})
	if err != nil {
		return Token{}, "", err
	}
	return d.Tokens[len(d.Tokens)-1], token, nil
}

// RevokeToken deletes one of a developer's tokens; it no longer works from
// the moment this returns.
func (r *Registry) RevokeToken(name, id string) error {
	return r.db.Update(func(tx *store.Tx) error {
		var d Developer
		if err := get(tx, name, &d); err != nil {
			return err
		}
		i := -1
		for j, t := range d.Tokens {
			if t.ID == id {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("developer %q: token %q: %w", name, id, ErrNoToken)
		}
		d.Tokens = append(d.Tokens[:i], d.Tokens[i+1:]...)
		if err := r.dropTokens(tx, name, func(t string) bool { return t == id }); err != nil {
			return err
		}
		return tx.Put(store.Developers, name, d)
	})
}

// Lookup returns the name of the developer whose token this is, or
// ErrDenied. The token's record and its developer's are read in one
// transaction, so a token of a developer being deleted does not slip in.
func (r *Registry) Lookup(token string) (string, error) {
	name, _, err := r.LookupExpiry(token)
	return name, err
}

// LookupExpiry is Lookup, with when the token expires (nil: never), so
// that what runs on its strength can end then.
func (r *Registry) LookupExpiry(token string) (string, *time.Time, error) {
	var name string
	var expires *time.Time
	err := r.db.View(func(tx *store.Tx) error {
		var t tokenRecord
		if err := tx.Get(store.Tokens, Hash(token), &t); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return ErrDenied
			}
			return err
		}
		if t.Expires != nil && !r.now().Before(*t.Expires) {
			return ErrDenied
		}
		var d Developer
		if err := get(tx, t.Developer, &d); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrDenied
			}
			return err
		}
		name, expires = d.Name, t.Expires
		return nil
	})
	return name, expires, err
}
