// Package tlscert owns the daemon's TLS identity: the self-signed
// certificate it makes for itself on first start (or the operator's own),
// its SHA-256 fingerprint, and the CLI's file of gateways' pinned
// fingerprints (trust on first use, as ssh's known_hosts).
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"
)

// Validity is how long a self-signed certificate is valid: the longest a
// browser still accepted from a CA, and long enough that replacing it (which
// changes the fingerprint every client pinned) is rare.
const Validity = 825 * 24 * time.Hour

// Dir is where the self-signed certificate and its key live, under the data
// directory.
const Dir = "tls"

const (
	certFile = "cert.pem"
	keyFile  = "key.pem"
)

// Fingerprint is the SHA-256 of a certificate's DER encoding.
type Fingerprint [sha256.Size]byte

// Of returns the fingerprint of a DER-encoded certificate.
func Of(der []byte) Fingerprint { return sha256.Sum256(der) }

// String is OpenSSL's form (`openssl x509 -fingerprint -sha256`): upper-case
// hex bytes separated by colons.
func (f Fingerprint) String() string {
	var b strings.Builder
	for i, c := range f {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// ParseFingerprint reads a fingerprint in String's form, in either case,
// with or without colons, optionally after "sha256:", "SHA256:" or
// OpenSSL's "sha256 Fingerprint=".
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	t := strings.ToLower(strings.TrimSpace(s))
	for _, prefix := range []string{"sha256 fingerprint=", "sha256:", "sha-256:"} {
		t = strings.TrimPrefix(t, prefix)
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(t, ":", ""))
	if err != nil || len(raw) != len(f) {
		return f, fmt.Errorf("fingerprint %q: want 32 hex bytes, as AB:CD:...", s)
	}
	copy(f[:], raw)
	return f, nil
}

// Cert is the certificate the daemon serves.
type Cert struct {
	TLS         tls.Certificate
	Fingerprint Fingerprint // of the leaf
	Leaf        *x509.Certificate
	Path        string // of the certificate file
	Made        bool   // made by this call
}

// LoadFiles loads the operator's own certificate (with its chain) and key.
func LoadFiles(certPath, keyPath string) (*Cert, error) {
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s, key %s: %w", certPath, keyPath, err)
	}
	return newCert(c, certPath, false)
}

func newCert(c tls.Certificate, path string, made bool) (*Cert, error) {
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s: %w", path, err)
	}
	c.Leaf = leaf
	return &Cert{TLS: c, Fingerprint: Of(leaf.Raw), Leaf: leaf, Path: path, Made: made}, nil
}

// Names are what a self-signed certificate is made for: its subject
// alternative names.
type Names struct {
	IPs   []net.IP
	Hosts []string
}

// EnsureSelfSigned returns the self-signed certificate under dataDir, made
// for names if there is none yet, or if the one there has expired. One that
// does not name every one of names is kept: clients pin its fingerprint, and
// a new certificate whenever an address changes would have them all refuse
// the gateway; the caller may warn about Missing names instead.
func EnsureSelfSigned(dataDir string, names Names, now time.Time) (*Cert, error) {
	dir := filepath.Join(dataDir, Dir)
	certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	c, err := LoadFiles(certPath, keyPath)
	switch {
	case err == nil && now.Before(c.Leaf.NotAfter):
		return c, nil
	case err == nil:
		// Expired: browsers refuse it, and so should we keep it.
	case errors.Is(err, os.ErrNotExist) && !exists(certPath):
		// First start, or a start that died before writing the
		// certificate (written last): make one.
	default:
		return nil, fmt.Errorf("%w (remove %s to have a new self-signed one made)", err, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("TLS directory: %w", err)
	}
	certPEM, keyPEM, err := selfSigned(names, now)
	if err != nil {
		return nil, err
	}
	// The key first: a certificate file marks a finished pair.
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return newCert(pair, certPath, true)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// selfSigned makes an ECDSA P-256 key and a certificate for names.
func selfSigned(names Names, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate serial: %w", err)
	}
	cn := "paradrop gateway"
	if len(names.Hosts) > 0 {
		cn += " " + names.Hosts[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"paradrop"}},
		NotBefore:             now.Add(-time.Hour), // a client's clock a little behind
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           names.IPs,
		DNSNames:              names.Hosts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// Missing returns those of names that c's certificate does not name.
func (c *Cert) Missing(names Names) []string {
	var out []string
	for _, ip := range names.IPs {
		if c.Leaf.VerifyHostname(ip.String()) != nil {
			out = append(out, ip.String())
		}
	}
	for _, h := range names.Hosts {
		if c.Leaf.VerifyHostname(h) != nil {
			out = append(out, h)
		}
	}
	return out
}

// writeFile replaces path with data atomically, with mode from the start so
// that a key is never readable by others, even briefly.
func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := renameio.NewPendingFile(path, renameio.WithStaticPermissions(mode))
	if err != nil {
		return err
	}
	defer f.Cleanup() // a no-op once replaced
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.CloseAtomicallyReplace()
}
