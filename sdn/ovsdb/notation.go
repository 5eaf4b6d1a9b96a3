package ovsdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// UUID is a reference to a row: ["uuid", "..."] on the wire.
type UUID string

// MarshalJSON implements json.Marshaler.
func (u UUID) MarshalJSON() ([]byte, error) { return json.Marshal([2]string{"uuid", string(u)}) }

// NamedUUID refers to a row inserted earlier in the same transaction under
// this uuid-name: ["named-uuid", "..."] on the wire.
type NamedUUID string

// MarshalJSON implements json.Marshaler.
func (u NamedUUID) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]string{"named-uuid", string(u)})
}

// Set is an OVSDB set of atoms: ["set", [...]] on the wire.
type Set []any

// MarshalJSON implements json.Marshaler.
func (s Set) MarshalJSON() ([]byte, error) {
	elems := []any(s)
	if elems == nil {
		elems = []any{} // the server rejects ["set", null]
	}
	for _, e := range elems {
		if err := checkAtom(e); err != nil {
			return nil, fmt.Errorf("set element: %w", err)
		}
	}
	return json.Marshal([]any{"set", elems})
}

// Map is an OVSDB map from atoms to atoms: ["map", [[k, v], ...]] on the
// wire. Keys must be comparable atom types (string, int64, float64, bool,
// UUID).
type Map map[any]any

// MarshalJSON implements json.Marshaler. Pairs are sorted by their encoded
// key so the output is deterministic.
func (m Map) MarshalJSON() ([]byte, error) {
	type pair struct{ k, v json.RawMessage }
	pairs := make([]pair, 0, len(m))
	for k, v := range m {
		if err := checkAtom(k); err != nil {
			return nil, fmt.Errorf("map key: %w", err)
		}
		if err := checkAtom(v); err != nil {
			return nil, fmt.Errorf("map value for %v: %w", k, err)
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, pair{kb, vb})
	}
	sort.Slice(pairs, func(i, j int) bool { return bytes.Compare(pairs[i].k, pairs[j].k) < 0 })
	enc := make([][2]json.RawMessage, len(pairs))
	for i, p := range pairs {
		enc[i] = [2]json.RawMessage{p.k, p.v}
	}
	return json.Marshal([]any{"map", enc})
}

// StringMap converts a Go map to a Map, the usual shape of other_config and
// external_ids columns.
func StringMap(m map[string]string) Map {
	out := make(Map, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Row is a table row: column name to value (see the package doc for the
// value types).
type Row map[string]any

// MarshalJSON implements json.Marshaler and rejects values that have no
// OVSDB encoding, so mistakes are reported here rather than by the server.
func (r Row) MarshalJSON() ([]byte, error) {
	for col, v := range r {
		switch v.(type) {
		case Set, Map:
		default:
			if err := checkAtom(v); err != nil {
				return nil, fmt.Errorf("column %q: %w", col, err)
			}
		}
	}
	return json.Marshal(map[string]any(r))
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *Row) UnmarshalJSON(b []byte) error {
	var raw map[string]any
	if err := decodeJSON(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*r = nil
		return nil
	}
	row := make(Row, len(raw))
	for col, v := range raw {
		dv, err := decodeValue(v)
		if err != nil {
			return fmt.Errorf("column %q: %w", col, err)
		}
		row[col] = dv
	}
	*r = row
	return nil
}

// UUID returns the row's _uuid column, or "" if absent.
func (r Row) UUID() UUID {
	u, _ := r["_uuid"].(UUID)
	return u
}

// String returns a string column, or "" if the column is absent or an
// empty optional value.
func (r Row) String(col string) string {
	s, _ := single(r[col]).(string)
	return s
}

// Int returns an integer column; ok is false if it is absent or an empty
// optional value (like Interface.ofport before vswitchd assigns it).
func (r Row) Int(col string) (n int64, ok bool) {
	n, ok = single(r[col]).(int64)
	return n, ok
}

// Strings returns a set-of-strings column.
func (r Row) Strings(col string) []string {
	var out []string
	for _, e := range asSet(r[col]) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// UUIDs returns a set-of-references column.
func (r Row) UUIDs(col string) []UUID {
	var out []UUID
	for _, e := range asSet(r[col]) {
		if u, ok := e.(UUID); ok {
			out = append(out, u)
		}
	}
	return out
}

// StringMap returns a string-to-string map column (nil if absent).
func (r Row) StringMap(col string) map[string]string {
	m, _ := r[col].(Map)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		ks, ok1 := k.(string)
		vs, ok2 := v.(string)
		if ok1 && ok2 {
			out[ks] = vs
		}
	}
	return out
}

// asSet normalizes a column value to a set: the server sends one-element
// sets as a bare atom.
func asSet(v any) Set {
	switch v := v.(type) {
	case nil:
		return nil
	case Set:
		return v
	default:
		return Set{v}
	}
}

// single unwraps an optional (0 or 1 element) value; nil if empty.
func single(v any) any {
	if s, ok := v.(Set); ok {
		if len(s) != 1 {
			return nil
		}
		return s[0]
	}
	return v
}

func checkAtom(v any) error {
	switch v.(type) {
	case string, int, int64, float64, bool, UUID, NamedUUID:
		return nil
	default:
		return fmt.Errorf("%T is not an OVSDB atom", v)
	}
}

// decodeJSON unmarshals with UseNumber so integers survive exactly.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// decodeValue converts a generic JSON value (decoded with UseNumber) into
// the Go representation of an OVSDB value.
func decodeValue(v any) (any, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		return decodeAtom(v)
	}
	tag, _ := arr[0].(string)
	switch tag {
	case "set":
		elems, ok := arr[1].([]any)
		if !ok {
			return nil, errors.New("set: elements are not an array")
		}
		s := make(Set, 0, len(elems))
		for _, e := range elems {
			a, err := decodeAtom(e)
			if err != nil {
				return nil, fmt.Errorf("set: %w", err)
			}
			s = append(s, a)
		}
		return s, nil
	case "map":
		pairs, ok := arr[1].([]any)
		if !ok {
			return nil, errors.New("map: pairs are not an array")
		}
		m := make(Map, len(pairs))
		for _, p := range pairs {
			kv, ok := p.([]any)
			if !ok || len(kv) != 2 {
				return nil, errors.New("map: pair is not a 2-element array")
			}
			k, err := decodeAtom(kv[0])
			if err != nil {
				return nil, fmt.Errorf("map key: %w", err)
			}
			val, err := decodeAtom(kv[1])
			if err != nil {
				return nil, fmt.Errorf("map value: %w", err)
			}
			m[k] = val
		}
		return m, nil
	}
	return decodeAtom(v)
}

func decodeAtom(v any) (any, error) {
	switch v := v.(type) {
	case string, bool:
		return v, nil
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", v, err)
		}
		// Integral values are integers whatever their spelling (OVS
		// itself writes the real 2.0 as 2), so 1 and 1.0 are one map key.
		if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), nil
		}
		return f, nil
	case []any:
		if len(v) == 2 {
			tag, _ := v[0].(string)
			s, ok := v[1].(string)
			if ok && tag == "uuid" {
				return UUID(s), nil
			}
			if ok && tag == "named-uuid" {
				return NamedUUID(s), nil
			}
		}
	}
	return nil, fmt.Errorf("not an OVSDB atom: %.40v", v)
}
