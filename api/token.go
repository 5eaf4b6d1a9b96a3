package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"paradrop/store"
	"paradrop/tenant"
)

// tokenHashKey is the store.Meta key of the operator token's SHA-256. Only
// the hash is stored, so a copy of the state file does not grant access.
const tokenHashKey = "operator_token_sha256"

// TokenFile is the name of the operator token's file in the data directory.
const TokenFile = "operator.token"

// EnsureOperatorToken makes sure the daemon has an operator token and
// returns the path of the file that holds it.
//
// On first start it generates a random token, writes it to DATA/TokenFile
// (mode 0600) and stores its hash; created is then true. Afterwards it
// leaves both alone. If the hash exists but the file was deleted, the token
// is not rotated behind the operator's back: whoever kept a copy still gets
// in, and to get a new one the operator removes the hash (or the state).
func EnsureOperatorToken(db *store.DB, dataDir string) (path string, created bool, err error) {
	path = filepath.Join(dataDir, TokenFile)
	var hash string
	switch err := db.Get(store.Meta, tokenHashKey, &hash); {
	case err == nil:
		return path, false, nil
	case !errors.Is(err, store.ErrNotFound):
		return "", false, fmt.Errorf("operator token: %w", err)
	}

	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, fmt.Errorf("operator token: %w", err)
	}
	token := hex.EncodeToString(raw[:])
	// The file first: a crash before the hash is stored just means a new
	// token next start, while the other order could lock the operator out.
	if err := renameio.WriteFile(path, []byte(token+"\n"), 0o600, renameio.WithStaticPermissions(0o600)); err != nil {
		return "", false, fmt.Errorf("operator token: %w", err)
	}
	if err := db.Put(store.Meta, tokenHashKey, hashToken(token)); err != nil {
		return "", false, fmt.Errorf("operator token: %w", err)
	}
	return path, true, nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// authorize finds who the request's bearer token is: the operator (its
// token, checked against the stored hash, or a password session) or a
// developer (package tenant). Hashes are read on each request so that a
// token replaced or revoked in the store takes effect at once; with no
// operator hash at all nobody gets in. It returns when the token expires
// too (nil: when revoked).
func (s *server) authorize(r *http.Request) (identity, *time.Time, error) {
	token, ok := bearerToken(r)
	if !ok {
		return identity{}, nil, errors.New("missing bearer token (see operator.token in the daemon's data directory)")
	}
	return s.identify(token)
}

// identify is who token is, and when it expires (nil: when revoked).
func (s *server) identify(token string) (identity, *time.Time, error) {
	invalid := errors.New("invalid token")
	if s.cfg.DB == nil {
		return identity{}, nil, invalid
	}
	var want string
	if err := s.cfg.DB.Get(store.Meta, tokenHashKey, &want); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.cfg.Logf("check operator token: %v", err)
		}
		return identity{}, nil, invalid
	}
	got := hashToken(token)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 || s.logins.valid(token) {
		return identity{}, nil, nil
	}
	name, expires, err := s.tenants.LookupExpiry(token)
	if err != nil {
		if !errors.Is(err, tenant.ErrDenied) {
			s.cfg.Logf("check developer token: %v", err)
			return identity{}, nil, invalid
		}
		if c, ok := s.cfg.Chutes.ChuteOfToken(token); ok {
			return identity{chute: c}, nil, nil
		}
		return identity{}, nil, invalid
	}
	return identity{developer: name}, expires, nil
}

// bearerToken is the request's bearer token, trimmed.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}
