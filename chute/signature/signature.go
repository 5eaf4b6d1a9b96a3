// Package signature owns the trust placed in chute packages: minisign public
// keys, detached minisign signatures (.minisig files) and the check that a
// package was signed by one of a set of trusted keys. The cryptography is
// aead.dev/minisign's; this package parses outside input with bounds and
// says, with a typed error, why a package is refused.
package signature

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"aead.dev/minisign"
)

// Errors callers branch on (the API maps them to HTTP statuses).
var (
	// ErrMissing: a signature was required and none came.
	ErrMissing = errors.New("package is not signed")
	// ErrMalformed: the signature or key is not minisign's format.
	ErrMalformed = errors.New("malformed signature")
	// ErrUnknownKey: the signature was made by a key not in the trusted set.
	ErrUnknownKey = errors.New("signed by a key that is not trusted")
	// ErrBadSignature: the signature does not match the package (the package
	// or the signature's trusted comment was changed after signing).
	ErrBadSignature = errors.New("signature does not match the package")
)

// MaxSize bounds a .minisig file: minisign's own are under 400 bytes; the
// rest leaves room for long comments.
const MaxSize = 4096

// maxKeyFile bounds a trusted-keys file.
const maxKeyFile = 1 << 20

// Key is a minisign public key.
type Key struct {
	pub minisign.PublicKey
}

// ID is the key's minisign ID as minisign prints it.
func (k Key) ID() string { return formatID(k.pub.ID()) }

// String is the key's base64 line, as in a minisign .pub file.
func (k Key) String() string { return k.pub.String() }

// formatID prints a key ID as minisign does: upper-case hex without
// leading zeros.
func formatID(id uint64) string { return fmt.Sprintf("%X", id) }

// ParseKey parses one minisign public key: its base64 line, or a .pub
// file's content (an untrusted comment line, then the base64 line).
func ParseKey(text string) (Key, error) {
	keys, err := ParseKeys([]byte(text))
	if err != nil {
		return Key{}, err
	}
	if len(keys) != 1 {
		return Key{}, fmt.Errorf("%w: want one public key, got %d", ErrMalformed, len(keys))
	}
	return keys[0], nil
}

// ParseKeys parses a list of minisign public keys, one base64 line each;
// blank lines, "#" lines and "untrusted comment:" lines are skipped, so
// .pub files can be concatenated.
func ParseKeys(text []byte) ([]Key, error) {
	if len(text) > maxKeyFile {
		return nil, fmt.Errorf("%w: key list longer than %d bytes", ErrMalformed, maxKeyFile)
	}
	var keys []Key
	for i, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' || bytes.HasPrefix(line, []byte("untrusted comment:")) {
			continue
		}
		var k Key
		if err := k.pub.UnmarshalText(line); err != nil {
			return nil, fmt.Errorf("%w: public key on line %d: %v", ErrMalformed, i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Signature is a parsed detached minisign signature.
type Signature struct {
	raw []byte
	sig minisign.Signature
}

// KeyID is the ID of the key the signature claims to be made by (not yet
// verified).
func (s Signature) KeyID() string { return formatID(s.sig.KeyID) }

// TrustedComment is the signed comment (authentic only once verified).
func (s Signature) TrustedComment() string { return s.sig.TrustedComment }

// ParseSignature parses a .minisig file's content. Only prehashed
// signatures (minisign's default since 0.8) are accepted: they are
// verified as the package streams, the legacy kind needs it whole in memory.
func ParseSignature(b []byte) (Signature, error) {
	if len(b) == 0 {
		return Signature{}, ErrMissing
	}
	if len(b) > MaxSize {
		return Signature{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxSize)
	}
	var s Signature
	if err := s.sig.UnmarshalText(b); err != nil {
		return Signature{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if s.sig.Algorithm != minisign.HashEdDSA {
		return Signature{}, fmt.Errorf("%w: legacy (not prehashed) minisign signature; sign without -l", ErrMalformed)
	}
	if strings.ContainsAny(s.sig.TrustedComment, "\r\n") {
		return Signature{}, fmt.Errorf("%w: trusted comment spans lines", ErrMalformed)
	}
	s.raw = bytes.Clone(b)
	return s, nil
}

// KeyFor returns the key of keys that sig names, or ErrUnknownKey. It lets
// a caller refuse a package before reading it.
func KeyFor(sig Signature, keys []Key) (Key, error) {
	for _, k := range keys {
		if k.pub.ID() == sig.sig.KeyID {
			return k, nil
		}
	}
	return Key{}, fmt.Errorf("%w: key ID %s", ErrUnknownKey, sig.KeyID())
}

// Verify reads pkg to its end and checks that sig, made by one of keys,
// signs it. It returns the key that signed.
func Verify(pkg io.Reader, sig Signature, keys []Key) (Key, error) {
	k, err := KeyFor(sig, keys)
	if err != nil {
		return Key{}, err
	}
	r := minisign.NewReader(pkg)
	if _, err := io.Copy(io.Discard, r); err != nil {
		return Key{}, fmt.Errorf("read package: %w", err)
	}
	if !r.Verify(k.pub, sig.raw) {
		return Key{}, fmt.Errorf("%w (key ID %s)", ErrBadSignature, k.ID())
	}
	return k, nil
}
