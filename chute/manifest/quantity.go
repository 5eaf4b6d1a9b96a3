package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bytes is a size in bytes. It is written as described under Quantities in
// the package documentation, and encoded in JSON as a number of bytes.
type Bytes int64

// Rate is a bandwidth in bits per second; 0 means unlimited. It is written as
// described under Quantities in the package documentation, and encoded in
// JSON as a number of bits per second.
type Rate uint64

// Duration is a time.Duration written in Go's syntax ("5s") in both YAML and
// JSON, so that a manifest reads the same in both.
type Duration time.Duration

const (
	ki = 1 << 10
	mi = 1 << 20
	gi = 1 << 30
	ti = 1 << 40
)

var (
	bytesRE = lazyRE(`^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$`)
	rateRE  = lazyRE(`^([0-9]+)(?:([kKMG]?)(bit|bps))?$`)

	byteSuffixes = map[string]int64{
		"": 1, "Ki": ki, "Mi": mi, "Gi": gi, "Ti": ti,
		"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
	}
	ratePrefixes = map[string]uint64{"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
)

// ParseBytes parses a size such as "64Mi", "500M" or "1048576" into bytes.
func ParseBytes(s string) (int64, error) {
	m := bytesRE().FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a quantity (want e.g. 64Mi, 500M or a number of bytes)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	mult := byteSuffixes[m[2]]
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// ParseRate parses a rate such as "10Mbit", "500kbps" or "1000000" into bits
// per second.
func ParseRate(s string) (uint64, error) {
	m := rateRE().FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a rate (want e.g. 10Mbit, 500kbps or a number of bits per second)", s)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	mult := ratePrefixes[m[2]]
	if err != nil || n > math.MaxUint64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// String formats b with the largest binary suffix that divides it exactly, so
// that it parses back to the same value.
func (b Bytes) String() string {
	for _, u := range []struct {
		n   int64
		suf string
	}{{ti, "Ti"}, {gi, "Gi"}, {mi, "Mi"}, {ki, "Ki"}} {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.suf
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// String formats r with the largest decimal prefix that divides it exactly,
// so that it parses back to the same value.
func (r Rate) String() string {
	for _, u := range []struct {
		n   uint64
		pre string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if r != 0 && uint64(r)%u.n == 0 {
			return strconv.FormatUint(uint64(r)/u.n, 10) + u.pre + "bit"
		}
	}
	if r == 0 {
		return "0"
	}
	return strconv.FormatUint(uint64(r), 10) + "bit"
}

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// scalarError is returned by the YAML unmarshalers below; it stops decoding
// (yaml.v3 only continues after a *yaml.TypeError) and carries the position
// so that Parse can name the field.
type scalarError struct {
	line, col int
	msg       string
}

func (e *scalarError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// scalarText returns the text of a YAML integer or string scalar; other
// kinds (floats, sequences, maps, null) are not quantities.
func scalarText(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		return "", &scalarError{n.Line, n.Column, fmt.Sprintf("%q is not %s", n.Value, what)}
	}
	if n.ShortTag() == "!!int" {
		// Let yaml resolve 0x10, 1_000 and friends, then reformat in decimal.
		var i int64
		if err := n.Decode(&i); err != nil {
			return "", &scalarError{n.Line, n.Column, fmt.Sprintf("%q is not %s", n.Value, what)}
		}
		if i < 0 {
			return "", &scalarError{n.Line, n.Column, fmt.Sprintf("%q must not be negative", n.Value)}
		}
		return strconv.FormatInt(i, 10), nil
	}
	return n.Value, nil
}

// UnmarshalYAML accepts an integer (bytes) or a quantity string.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarText(n, "a quantity")
	if err != nil {
		return err
	}
	v, err := ParseBytes(s)
	if err != nil {
		return &scalarError{n.Line, n.Column, err.Error()}
	}
	*b = Bytes(v)
	return nil
}

// MarshalYAML writes b as a quantity string such as "64Mi", or as a plain
// integer when no suffix fits.
func (b Bytes) MarshalYAML() (any, error) {
	if b == 0 || b%ki != 0 {
		return int64(b), nil
	}
	return b.String(), nil
}

// UnmarshalJSON accepts a number of bytes or a quantity string.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	s, err := jsonScalar(data)
	if err != nil {
		return err
	}
	v, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*b = Bytes(v)
	return nil
}

// UnmarshalYAML accepts an integer (bits per second) or a rate string.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarText(n, "a rate")
	if err != nil {
		return err
	}
	v, err := ParseRate(s)
	if err != nil {
		return &scalarError{n.Line, n.Column, err.Error()}
	}
	*r = Rate(v)
	return nil
}

// MarshalYAML writes r as a rate string such as "10Mbit", or 0.
func (r Rate) MarshalYAML() (any, error) {
	if r == 0 {
		return 0, nil
	}
	return r.String(), nil
}

// UnmarshalJSON accepts a number of bits per second or a rate string.
func (r *Rate) UnmarshalJSON(data []byte) error {
	s, err := jsonScalar(data)
	if err != nil {
		return err
	}
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = Rate(v)
	return nil
}

// jsonScalar returns the text of a JSON string, or of a JSON number if it is
// a non-negative integer.
func jsonScalar(data []byte) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	}
	return "", fmt.Errorf("%s is not a quantity", data)
}

// UnmarshalYAML accepts a Go duration string such as "5s". Bare numbers are
// refused because their unit would be a guess.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return &scalarError{n.Line, n.Column, fmt.Sprintf("%q is not a duration (want e.g. 5s or 300ms)", n.Value)}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &scalarError{n.Line, n.Column, fmt.Sprintf("%q is not a duration (want e.g. 5s or 300ms)", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a duration string such as "5s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes d as a duration string such as "5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a duration string such as "5s".
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%s is not a duration string", data)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
