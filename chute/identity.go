package chute

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tokenFile is the chute's token in its policy dir, its /paradrop/token.
const tokenFile = "token"

// tokenEnv is the variable that carries the token into the chute.
const tokenEnv = "PARADROP_TOKEN"

func hashChuteToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// mintToken gives the chute a fresh token for the run about to start,
// replacing (and so revoking) any earlier one, and writes it to the policy
// dir readable by the chute's own user (host uid uid) alone. Only its hash
// stays in the daemon's memory.
func (m *Manager) mintToken(name string, uid uint32) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("chute token: %w", err)
	}
	token := hex.EncodeToString(raw)
	dir := m.paths.policy(name)
	f, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return "", fmt.Errorf("chute token: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	_, err = f.WriteString(token + "\n")
	if err == nil {
		err = f.Chmod(0o400)
	}
	if err == nil {
		err = f.Chown(int(uid), int(uid))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, tokenFile))
	}
	if err != nil {
		return "", fmt.Errorf("chute token: %w", err)
	}
	m.setToken(name, hashChuteToken(token))
	return token, nil
}

// adoptToken takes back the token of a chute re-adopted from a previous
// daemon, which left it in the chute's policy dir.
func (m *Manager) adoptToken(name string) error {
	raw, err := os.ReadFile(filepath.Join(m.paths.policy(name), tokenFile))
	if err != nil {
		return fmt.Errorf("chute token: %w", err)
	}
	m.setToken(name, hashChuteToken(strings.TrimSpace(string(raw))))
	return nil
}

func (m *Manager) setToken(name, hash string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, n := range m.tokens {
		if n == name {
			delete(m.tokens, h)
		}
	}
	m.tokens[hash] = name
}

// revokeToken forgets the chute's token and removes its file: a chute that
// is not running has no identity.
func (m *Manager) revokeToken(name string) {
	m.mu.Lock()
	for h, n := range m.tokens {
		if n == name {
			delete(m.tokens, h)
		}
	}
	m.mu.Unlock()
	if err := os.Remove(filepath.Join(m.paths.policy(name), tokenFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.logf("chute %s: revoke token: %v", name, err)
	}
}

// ChuteOfToken is the running chute whose token is token.
func (m *Manager) ChuteOfToken(token string) (string, bool) {
	h := hashChuteToken(token)
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.tokens[h]
	return name, ok
}
