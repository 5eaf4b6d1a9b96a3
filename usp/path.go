package usp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits on a path from a controller.
const (
	MaxPath     = 1024
	maxSegments = 32
)

// Path is a parsed USP path name (TR-369 "Path Names", TR-106 naming):
// object names, instance numbers, the "*" wildcard and, in the supported
// data model, "{i}".
type Path struct {
	Segs []string
	// Object: the path ends with "." and names an object (a partial
	// path), not a parameter.
	Object bool
}

// ErrPathSyntax is a path that is not a path name (error 7008).
var ErrPathSyntax = errors.New("invalid path syntax")

// ParsePath parses a path name. Search expressions ([...]) and reference
// following are not supported yet and are refused as syntax errors.
func ParsePath(s string) (Path, error) {
	bad := func(why string) (Path, error) { return Path{}, fmt.Errorf("%w: %s", ErrPathSyntax, why) }
	switch {
	case len(s) > MaxPath:
		return bad(fmt.Sprintf("longer than %d bytes", MaxPath))
	case strings.ContainsAny(s, "[]+#"):
		return bad("search expressions and reference following are not supported")
	}
	p := Path{Object: strings.HasSuffix(s, ".")}
	p.Segs = strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(p.Segs) > maxSegments {
		return bad(fmt.Sprintf("more than %d segments", maxSegments))
	}
	for i, seg := range p.Segs {
		switch {
		case seg == "":
			return bad("empty segment")
		case seg == "*" || seg == "{i}" || instanceNumber(seg):
			if i == 0 || (!p.Object && i == len(p.Segs)-1) {
				return bad(fmt.Sprintf("%q is not a name", seg))
			}
		case !name(seg):
			return bad(fmt.Sprintf("%q is not a name", seg))
		}
	}
	return p, nil
}

// String is the path name p was parsed from.
func (p Path) String() string {
	s := strings.Join(p.Segs, ".")
	if p.Object {
		s += "."
	}
	return s
}

// Search says whether p has a wildcard: not finding anything is then no
// error (R-GET.1a).
func (p Path) Search() bool {
	for _, s := range p.Segs {
		if s == "*" {
			return true
		}
	}
	return false
}

func instanceNumber(s string) bool {
	n, err := strconv.ParseUint(s, 10, 32)
	return err == nil && n > 0 && s[0] != '0' && s[0] != '+'
}

// name is a TR-106 object or parameter name: a letter or "_" then
// letters, digits, "_" or "-".
func name(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return s != ""
}
