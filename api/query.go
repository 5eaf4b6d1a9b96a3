package api

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"

	"paradrop/chute/manifest"
)

// query is a request's validated query string.
type query map[string]string

// parseQuery parses raw and refuses parameters that are not in allowed, or
// repeated: a typo such as keepdata=1 must not silently delete a chute's
// data, and a=1&a=0 has no single meaning.
func parseQuery(raw string, allowed ...string) (query, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	q := make(query, len(vals))
	for k, v := range vals {
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("query: unknown parameter %q", k)
		}
		if len(v) != 1 {
			return nil, fmt.Errorf("query: %s given %d times", k, len(v))
		}
		q[k] = v[0]
	}
	return q, nil
}

// flag reads a boolean parameter: absent is false, a bare "?key" is true.
func (q query) flag(key string) (bool, error) {
	v, ok := q[key]
	if !ok {
		return false, nil
	}
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("query: %s=%q is not a boolean (use 1 or 0)", key, v)
	}
	return b, nil
}

// intIn reads an integer parameter in [lo, hi], def when absent.
func (q query) intIn(key string, def, lo, hi int) (int, error) {
	v, ok := q[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("query: %s=%q is not a number from %d to %d", key, v, lo, hi)
	}
	return n, nil
}

// checkName accepts what can be a chute's name, by the manifest's rule:
// names become host names and directory names, so nothing else is let
// through to the manager.
func checkName(name string) error {
	if err := manifest.CheckName(name); err != nil {
		return fmt.Errorf("chute name %w", err)
	}
	return nil
}
