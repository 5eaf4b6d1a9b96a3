package chute

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// tokenFile is the chute's token in its policy dir, its /paradrop/token.
const tokenFile = "token"

// socketFile is the Unix socket in the policy dir, its /paradrop/api.sock,
// on which the daemon serves the API to the chute.
const socketFile = "api.sock"

// tokenEnv is the variable that carries the token into the chute.
const tokenEnv = "PARADROP_TOKEN"

// NetworkAPI is the API served to chutes at the gateway's address on the
// chute network, over HTTPS.
type NetworkAPI struct {
	URL string // https://GATEWAY:PORT, in the chute's $PARADROP_API
	// URL6 is the same over IPv6, https://[GATEWAY6]:PORT, in its
	// $PARADROP_API6; "" for none.
	URL6 string
	// CertPEM is the certificate it is served with, given to the chute in
	// its /paradrop/api.crt to verify it by; Fingerprint its SHA-256, in
	// $PARADROP_API_FINGERPRINT, for a chute that pins it instead.
	CertPEM     []byte
	Fingerprint string
}

// Where the chute finds the network API: variables and the certificate
// in its policy dir.
const (
	apiEnv            = "PARADROP_API"
	apiEnv6           = "PARADROP_API6"
	apiFingerprintEnv = "PARADROP_API_FINGERPRINT"
	apiCertFile       = "api.crt"
)

// networkAPIEnv gives the chute what it needs to reach and verify the
// network API: its certificate in the policy dir and the variables
// returned. None without the network API.
func (m *Manager) networkAPIEnv(name string) ([]string, error) {
	api := m.cfg.NetworkAPI
	if api == nil || m.cfg.Network == nil {
		return nil, nil
	}
	// Public, readable by the chute's uid.
	if err := replaceFile(m.paths.policy(name), apiCertFile, api.CertPEM, 0o644, -1); err != nil {
		return nil, fmt.Errorf("chute API certificate: %w", err)
	}
	env := []string{apiEnv + "=" + api.URL, apiFingerprintEnv + "=" + api.Fingerprint}
	if api.URL6 != "" {
		env = append(env, apiEnv6+"="+api.URL6)
	}
	return env, nil
}

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
	if err := replaceFile(m.paths.policy(name), tokenFile, []byte(token+"\n"), 0o400, int(uid)); err != nil {
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

// revokeToken forgets the chute's token and removes its file, and closes
// its socket: a chute that is not running has no identity.
func (m *Manager) revokeToken(name string) {
	m.mu.Lock()
	for h, n := range m.tokens {
		if n == name {
			delete(m.tokens, h)
		}
	}
	sock := m.sockets[name]
	delete(m.sockets, name)
	m.mu.Unlock()
	if sock != nil {
		sock.Close()
	}
	for _, f := range []string{tokenFile, socketFile} {
		if err := os.Remove(filepath.Join(m.paths.policy(name), f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.logf("chute %s: revoke token: %v", name, err)
		}
	}
}

// openSocket makes the chute's api.sock, usable by its user (host uid uid)
// alone, and has the daemon serve the API on it.
func (m *Manager) openSocket(name string, uid uint32) error {
	if m.cfg.ServeAPI == nil {
		return nil
	}
	dir, err := os.Open(m.paths.policy(name))
	if err != nil {
		return fmt.Errorf("chute socket: %w", err)
	}
	defer dir.Close()
	path := filepath.Join(dir.Name(), socketFile)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("chute socket: %w", err)
	}
	// Bound through the directory's descriptor: the data dir's path may
	// be longer than a socket's address may be (108 bytes).
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), socketFile), Net: "unix"})
	if err != nil {
		return fmt.Errorf("chute socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // by that name, it would not be found
	// connect(2) needs write permission on the socket.
	if err := os.Chmod(path, 0o600); err == nil {
		err = os.Chown(path, int(uid), int(uid))
	}
	if err != nil {
		ln.Close()
		return fmt.Errorf("chute socket: %w", err)
	}
	srv := m.cfg.ServeAPI(name, ln)
	m.mu.Lock()
	old := m.sockets[name]
	m.sockets[name] = srv
	m.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// ChuteOfToken is the running chute whose token is token.
func (m *Manager) ChuteOfToken(token string) (string, bool) {
	h := hashChuteToken(token)
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.tokens[h]
	return name, ok
}

// replaceFile replaces dir/name with data at once: written aside and
// renamed, so that the chute never reads a half-written file. A uid other
// than -1 owns it (group too). No fsync, unlike renameio: these files are
// made anew at every start, on the start's path.
func replaceFile(dir, name string, data []byte, mode os.FileMode, uid int) error {
	f, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && uid != -1 {
		err = f.Chown(uid, uid)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	return err
}
