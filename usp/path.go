package usp

import (
	"errors"
	"fmt"
	"slices"
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
	// search holds the parsed search expressions, by segment.
	search map[int][]cond
}

// cond is one comparison of a search expression: param op value.
type cond struct {
	param, op, value string
}

// ErrPathSyntax is a path that is not a path name (error 7008).
var ErrPathSyntax = errors.New("invalid path syntax")

// ParsePath parses a path name, with search expressions of the form
// [Param==value&&Param2!="text"] (==, !=, <, >, <=, >=; values quoted or
// bare). Reference following (+, #) is not supported yet.
func ParsePath(s string) (Path, error) {
	bad := func(why string) (Path, error) { return Path{}, fmt.Errorf("%w: %s", ErrPathSyntax, why) }
	if len(s) > MaxPath {
		return bad(fmt.Sprintf("longer than %d bytes", MaxPath))
	}
	segs, err := splitPath(s)
	if err != nil {
		return bad(err.Error())
	}
	p := Path{Object: strings.HasSuffix(s, "."), Segs: segs}
	if len(p.Segs) > maxSegments {
		return bad(fmt.Sprintf("more than %d segments", maxSegments))
	}
	for i, seg := range p.Segs {
		switch {
		case seg == "":
			return bad("empty segment")
		case seg == "*" || seg == "{i}" || instanceNumber(seg) || seg[0] == '[':
			if i == 0 || (!p.Object && i == len(p.Segs)-1) {
				return bad(fmt.Sprintf("%q is not a name", seg))
			}
			if seg[0] == '[' {
				conds, err := parseSearch(seg)
				if err != nil {
					return bad(err.Error())
				}
				if p.search == nil {
					p.search = map[int][]cond{}
				}
				p.search[i] = conds
			}
		case !name(seg):
			return bad(fmt.Sprintf("%q is not a name", seg))
		}
	}
	return p, nil
}

// splitPath splits s at the dots outside search expressions; the final
// dot of an object path ends the last segment.
func splitPath(s string) ([]string, error) {
	var segs []string
	start, inExpr, inQuote := 0, false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote:
			inQuote = c != '"'
		case inExpr:
			switch c {
			case '"':
				inQuote = true
			case '[':
				return nil, errors.New("nested [")
			case ']':
				inExpr = false
				if i+1 < len(s) && s[i+1] != '.' {
					return nil, errors.New("] must end a segment")
				}
			}
		case c == '[':
			if i != start {
				return nil, errors.New("[ must start a segment")
			}
			inExpr = true
		case c == ']' || c == '+' || c == '#' || c == '"':
			return nil, fmt.Errorf("unexpected %q (reference following is not supported)", c)
		case c == '.':
			segs = append(segs, s[start:i])
			start = i + 1
		}
	}
	if inExpr || inQuote {
		return nil, errors.New("unterminated search expression")
	}
	if start < len(s) || len(segs) == 0 {
		segs = append(segs, s[start:])
	}
	return segs, nil
}

// ops are the search expression's operators, two-character ones first.
var ops = []string{"==", "!=", "<=", ">=", "<", ">"}

// parseSearch parses "[cond&&cond...]".
func parseSearch(seg string) ([]cond, error) {
	var out []cond
	for _, part := range splitConds(seg[1 : len(seg)-1]) {
		var c cond
		for _, op := range ops {
			if i := strings.Index(part, op); i > 0 {
				c = cond{param: part[:i], op: op, value: part[i+len(op):]}
				break
			}
		}
		if c.op == "" || !name(c.param) {
			return nil, fmt.Errorf("search expression %q: want Param==value", part)
		}
		if v, ok := strings.CutPrefix(c.value, `"`); ok {
			if !strings.HasSuffix(v, `"`) || strings.Count(v, `"`) != 1 {
				return nil, fmt.Errorf("search expression %q: bad quotes", part)
			}
			c.value = strings.TrimSuffix(v, `"`)
		} else if c.value == "" || strings.ContainsAny(c.value, "\"<>=!&") {
			return nil, fmt.Errorf("search expression %q: bad value", part)
		}
		out = append(out, c)
	}
	return out, nil
}

// splitConds splits an expression at the && outside quotes.
func splitConds(e string) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(e); i++ {
		switch {
		case e[i] == '"':
			inQuote = !inQuote
		case !inQuote && strings.HasPrefix(e[i:], "&&"):
			out = append(out, e[start:i])
			start = i + 2
			i++
		}
	}
	return append(out, e[start:])
}

// holds says whether the parameters values satisfy every condition:
// == and != compare text, the others numbers.
func holds(conds []cond, values map[string]string) bool {
	for _, c := range conds {
		v, ok := values[c.param]
		if !ok {
			return false
		}
		var r bool
		switch c.op {
		case "==":
			r = v == c.value
		case "!=":
			r = v != c.value
		default:
			a, err1 := strconv.ParseFloat(v, 64)
			b, err2 := strconv.ParseFloat(c.value, 64)
			if err1 != nil || err2 != nil {
				return false
			}
			switch c.op {
			case "<":
				r = a < b
			case ">":
				r = a > b
			case "<=":
				r = a <= b
			case ">=":
				r = a >= b
			}
		}
		if !r {
			return false
		}
	}
	return true
}

// String is the path name p was parsed from.
func (p Path) String() string {
	s := strings.Join(p.Segs, ".")
	if p.Object {
		s += "."
	}
	return s
}

// Search says whether p has a wildcard or a search expression: not
// finding anything is then no error (R-GET.1a).
func (p Path) Search() bool {
	return len(p.search) > 0 || slices.Contains(p.Segs, "*")
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
