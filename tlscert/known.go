package tlscert

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// KnownGateways is the CLI's file of pinned gateways: one line per gateway,
// "HOST:PORT FINGERPRINT", as ssh's known_hosts. Lines starting with # and
// blank lines are comments.
type KnownGateways struct {
	Path string
}

// maxKnownSize bounds what is read of the file: it is ours, but a mistake
// must not make every command read gigabytes.
const maxKnownSize = 1 << 20

// ParseKnown reads a known-gateways file.
func ParseKnown(r io.Reader) (map[string]Fingerprint, error) {
	pins := map[string]Fingerprint{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want HOST:PORT FINGERPRINT", n)
		}
		fp, err := ParseFingerprint(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		pins[strings.ToLower(f[0])] = fp
	}
	return pins, sc.Err()
}

func (k KnownGateways) read() (map[string]Fingerprint, error) {
	f, err := os.Open(k.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Fingerprint{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pins, err := ParseKnown(io.LimitReader(f, maxKnownSize))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.Path, err)
	}
	return pins, nil
}

// Lookup returns the fingerprint pinned for addr (HOST:PORT).
func (k KnownGateways) Lookup(addr string) (Fingerprint, bool, error) {
	pins, err := k.read()
	if err != nil {
		return Fingerprint{}, false, err
	}
	fp, ok := pins[strings.ToLower(addr)]
	return fp, ok, nil
}

// Pin records fp for addr, replacing what was pinned for it.
func (k KnownGateways) Pin(addr string, fp Fingerprint) error {
	pins, err := k.read()
	if err != nil {
		return err
	}
	pins[strings.ToLower(addr)] = fp
	addrs := make([]string, 0, len(pins))
	for a := range pins {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	var b bytes.Buffer
	b.WriteString("# paradrop: gateways' TLS certificate fingerprints (SHA-256), pinned on first use\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s %s\n", a, pins[a])
	}
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return err
	}
	return writeFile(k.Path, b.Bytes(), 0o600)
}
