// Package transfer owns the format a chute moves between gateways in: a
// tar stream of parts, closed by a manifest that lists every part with its
// size and SHA-256. The reader checks each part against its limit as it
// comes and the whole against the manifest at the end, so a truncated,
// altered or oversized stream is refused.
//
// Parts, in the order a writer sends them:
//
//	signature         the package's .minisig as it was installed (optional)
//	package           the package as it was installed, or
//	package-held      JSON (PackageHeld): the package the target said it
//	                  holds, by its SHA-256, instead
//	data/PATH         the chute's /data, entry by entry; owners are the
//	                  chute's own ids (0..65535), not the host's; sent
//	                  while the chute runs (pre-copy), or once stopped
//	deleted/PATH      after a pre-copy: paths gone since, or changed in
//	                  kind (empty entries)
//	delta/PATH        then what is new or changed since, as data/; the
//	                  last round of deleted and delta entries is sent once
//	                  the chute is stopped, rounds before it (after its
//	                  handover, say) while it runs
//	handover          JSON: where the chute comes from (Handover)
//	manifest.json     Manifest; the last entry
//
// After the package, a writer waiting on the chute (its handover grace,
// its stop) sends wait entries, zeros a reader skips: a gateway drops a
// request body that stalls.
//
// A part kind this reader does not know is refused: a later kind (a
// process image, say) comes with a new Format.
package transfer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// Format is the version of the stream this package writes and reads.
const Format = 1

// Part kinds.
const (
	KindSignature = "signature"
	KindPackage   = "package"
	KindHeld      = "package-held"
	KindData      = "data"
	KindDeleted   = "deleted"
	KindDelta     = "delta"
	KindHandover  = "handover"
)

const manifestName = "manifest.json"

// The wait entries: each of waitSize bytes, at most maxWait in a stream.
const (
	waitName = "wait"
	waitSize = 32 << 10
	maxWait  = 16 << 20
)

// maxSmall bounds the parts a gateway holds in memory: the manifest, the
// signature and the handover.
const maxSmall = 64 << 10

// ErrInvalid is a stream that is malformed, over a limit, or does not
// match its manifest.
var ErrInvalid = errors.New("invalid transfer")

// Manifest closes a stream: what the parts before it were.
type Manifest struct {
	Format  int    `json:"format"`
	Chute   string `json:"chute"`
	Version string `json:"version"`
	Parts   []Part `json:"parts"`
}

// Part is one kind of part: its entries, their content bytes and the
// SHA-256 of their headers and contents in order.
type Part struct {
	Kind    string `json:"kind"`
	Entries int    `json:"entries"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
}

// PackageHeld is the package-held part: the package of the chute is the
// one of that SHA-256 (hex) the target holds.
type PackageHeld struct {
	SHA256 string `json:"sha256"`
}

// Handover is the handover part.
type Handover struct {
	From string `json:"from"` // the source gateway, as the chute is told in $PARADROP_MIGRATED_FROM
	// Migration names the migration, for the source to ask the target
	// whether it kept the chute when its answer was lost.
	Migration string    `json:"migration,omitempty"`
	At        time.Time `json:"at"`
}

// digests sums the parts of a stream as written or read.
type digests struct {
	parts map[string]*sum
}

// partOrder is the order of the manifest's parts, whichever of deleted and
// delta came first.
var partOrder = []string{KindSignature, KindPackage, KindHeld, KindData, KindDeleted, KindDelta, KindHandover}

type sum struct {
	h       hash.Hash
	entries int
	bytes   int64
}

func (d *digests) of(kind string) *sum {
	if d.parts == nil {
		d.parts = map[string]*sum{}
	}
	s, ok := d.parts[kind]
	if !ok {
		s = &sum{h: sha256.New()}
		d.parts[kind] = s
	}
	return s
}

// header adds an entry's header to its part's digest: what of it the
// reader acts on.
func (s *sum) header(h *tar.Header) {
	fmt.Fprintf(s.h, "%s\x00%c\x00%o\x00%d\x00%d\x00%d\x00%s\x00", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.Linkname)
	s.entries++
}

func (d *digests) manifest(chute, version string) Manifest {
	m := Manifest{Format: Format, Chute: chute, Version: version}
	for _, k := range partOrder {
		s := d.parts[k]
		if s == nil || s.entries == 0 {
			continue // asked for, never written: a Delta with nothing deleted
		}
		m.Parts = append(m.Parts, Part{Kind: k, Entries: s.entries, Bytes: s.bytes, SHA256: hex.EncodeToString(s.h.Sum(nil))})
	}
	return m
}

// kindOf is the part an entry name belongs to.
func kindOf(name string) (string, bool) {
	switch {
	case name == KindSignature, name == KindPackage, name == KindHeld, name == KindHandover, name == manifestName:
		return name, true
	}
	for _, k := range []string{KindData, KindDeleted, KindDelta} {
		if strings.HasPrefix(name, k+"/") && len(name) > len(k)+1 {
			return k, true
		}
	}
	return "", false
}

// hashWriter feeds what is written to a part's sum.
type hashWriter struct {
	w io.Writer
	s *sum
}

func (h hashWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.s.h.Write(p[:n])
	h.s.bytes += int64(n)
	return n, err
}

func decodeSmall(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, maxSmall+1))
	if err != nil {
		return err
	}
	if len(b) > maxSmall {
		return fmt.Errorf("%w: part longer than %d bytes", ErrInvalid, maxSmall)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}
