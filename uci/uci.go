// Package uci reads OpenWrt's UCI configuration files (/etc/config/NAME)
// without libuci: the daemon on a router takes its settings from the file
// the operator edits with uci(1) or LuCI.
//
// The grammar is libuci's: statements one to a line, "package NAME",
// "config TYPE [NAME]", "option NAME VALUE" and "list NAME VALUE"; a word is
// unquoted, 'single-quoted' (no escapes) or "double-quoted" (backslash
// escapes), pieces written next to each other make one word, a quoted word
// may span lines, a backslash escapes the next character outside single
// quotes (before a newline it continues the line), and # outside quotes
// comments to the end of the line. Names are letters, digits and _.
// A later "option" of the same name replaces an earlier one, "list"s
// collect their values in order.
package uci

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxSize is the largest file Parse reads; a configuration is a few
// hundred bytes.
const MaxSize = 1 << 20

// File is a parsed configuration.
type File struct {
	Package  string // "" unless the file says
	Sections []Section
}

// Section is one "config TYPE [NAME]" and its options in file order.
type Section struct {
	Type, Name string // Name is "" for an anonymous section
	Line       int
	Options    []Option
}

// Option is an "option" (one value) or a "list" (its values in order).
type Option struct {
	Name   string
	List   bool
	Values []string
	Line   int // of its last statement
}

// SyntaxError is a file that is not UCI.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ErrTooLarge is a file over MaxSize.
var ErrTooLarge = errors.New("uci: file larger than 1 MiB")

// Parse reads a whole file.
func Parse(r io.Reader) (*File, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, ErrTooLarge
	}
	p := &parser{src: string(b), line: 1}
	f := &File{}
	for {
		words, line, err := p.statement()
		if err != nil {
			return nil, err
		}
		if words == nil {
			return f, nil
		}
		if err := f.add(line, words); err != nil {
			return nil, &SyntaxError{Line: line, Msg: err.Error()}
		}
	}
}

// add applies one statement.
func (f *File) add(line int, w []string) error {
	keyword, args := w[0], w[1:]
	want := map[string][2]int{"package": {1, 1}, "config": {1, 2}, "option": {2, 2}, "list": {2, 2}}
	n, ok := want[keyword]
	if !ok {
		return fmt.Errorf("unknown statement %q (want package, config, option or list)", keyword)
	}
	if len(args) < n[0] || len(args) > n[1] {
		if len(args) > n[1] {
			return fmt.Errorf("%s: too many words (quote a value with spaces)", keyword)
		}
		return fmt.Errorf("%s: missing %s", keyword, map[string]string{"package": "name", "config": "type", "option": "name or value", "list": "name or value"}[keyword])
	}
	for i, a := range args {
		// Values (the second word of option and list) are free text.
		if (keyword == "option" || keyword == "list") && i == 1 {
			break
		}
		if !validName(a) {
			return fmt.Errorf("%s: invalid name %q (letters, digits and _)", keyword, a)
		}
	}
	switch keyword {
	case "package":
		if f.Package != "" || len(f.Sections) > 0 {
			return errors.New("package: must come once, before any config")
		}
		f.Package = args[0]
	case "config":
		s := Section{Type: args[0], Line: line}
		if len(args) == 2 {
			s.Name = args[1]
		}
		f.Sections = append(f.Sections, s)
	default:
		if len(f.Sections) == 0 {
			return fmt.Errorf("%s %s: outside any config section", keyword, args[0])
		}
		return f.Sections[len(f.Sections)-1].set(line, keyword == "list", args[0], args[1])
	}
	return nil
}

func (s *Section) set(line int, list bool, name, value string) error {
	for i := range s.Options {
		o := &s.Options[i]
		if o.Name != name {
			continue
		}
		if o.List != list {
			return fmt.Errorf("%s is both an option and a list", name)
		}
		if list {
			o.Values = append(o.Values, value)
		} else {
			o.Values = []string{value}
		}
		o.Line = line
		return nil
	}
	s.Options = append(s.Options, Option{Name: name, List: list, Values: []string{value}, Line: line})
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

type parser struct {
	src  string
	pos  int
	line int
}

// statement returns the words of the next non-empty statement and the
// line it starts on; nil at the end of the file.
func (p *parser) statement() (words []string, line int, err error) {
	for {
		if p.pos >= len(p.src) {
			return words, line, nil
		}
		switch c := p.src[p.pos]; c {
		case '\n':
			p.pos++
			p.line++
			if words != nil {
				return words, line, nil
			}
		case ' ', '\t', '\r', '\f', '\v':
			p.pos++
		case '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case '\x00':
			return nil, 0, &SyntaxError{Line: p.line, Msg: "NUL byte"}
		default:
			if strings.HasPrefix(p.src[p.pos:], "\\\n") { // a continued line
				p.pos += 2
				p.line++
				continue
			}
			if words == nil {
				line = p.line
			}
			w, err := p.word()
			if err != nil {
				return nil, 0, err
			}
			words = append(words, w)
		}
	}
}

// word reads one word: unquoted, quoted and escaped pieces up to a blank,
// a newline, a comment or the end of the file.
func (p *parser) word() (string, error) {
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch c {
		case ' ', '\t', '\r', '\f', '\v', '\n', '#':
			return b.String(), nil
		case '\x00':
			return "", &SyntaxError{Line: p.line, Msg: "NUL byte"}
		case '\'':
			start := p.line
			p.pos++
			end := strings.IndexByte(p.src[p.pos:], '\'')
			if end < 0 {
				return "", &SyntaxError{Line: start, Msg: "unterminated '"}
			}
			s := p.src[p.pos : p.pos+end]
			if strings.IndexByte(s, 0) >= 0 {
				return "", &SyntaxError{Line: p.line, Msg: "NUL byte"}
			}
			p.line += strings.Count(s, "\n")
			b.WriteString(s)
			p.pos += end + 1
		case '"':
			start := p.line
			p.pos++
			for {
				if p.pos >= len(p.src) {
					return "", &SyntaxError{Line: start, Msg: `unterminated "`}
				}
				c := p.src[p.pos]
				if c == '"' {
					p.pos++
					break
				}
				if c == '\\' {
					if err := p.escape(&b); err != nil {
						return "", err
					}
					continue
				}
				if c == 0 {
					return "", &SyntaxError{Line: p.line, Msg: "NUL byte"}
				}
				if c == '\n' {
					p.line++
				}
				b.WriteByte(c)
				p.pos++
			}
		case '\\':
			if err := p.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return b.String(), nil
}

// escape reads a backslash and the character it escapes; before a newline
// it continues the line.
func (p *parser) escape(b *strings.Builder) error {
	p.pos++
	if p.pos >= len(p.src) {
		return &SyntaxError{Line: p.line, Msg: "backslash at the end of the file"}
	}
	switch c := p.src[p.pos]; c {
	case '\n':
		p.line++
	case 0:
		return &SyntaxError{Line: p.line, Msg: "NUL byte"}
	default:
		b.WriteByte(c)
	}
	p.pos++
	return nil
}
