package uci

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *File
	}{
		{"empty", "", &File{}},
		{"comments only", "# nothing\n\n   # still nothing\n", &File{}},
		{"the documented example", `package 'example'

config 'example' 'test'
	option   'string'      'some value'
	option   'boolean'     '1'
	list     'collection'  'first item'
	list     'collection'  'second item'
`, &File{Package: "example", Sections: []Section{{Type: "example", Name: "test", Line: 3, Options: []Option{
			{Name: "string", Values: []string{"some value"}, Line: 4},
			{Name: "boolean", Values: []string{"1"}, Line: 5},
			{Name: "collection", List: true, Values: []string{"first item", "second item"}, Line: 7},
		}}}}},
		{"quoting styles are equivalent", "config x\noption a value\noption 'b' value\noption c \"value\"\noption \"d\"    'value'\n",
			&File{Sections: []Section{{Type: "x", Line: 1, Options: []Option{
				{Name: "a", Values: []string{"value"}, Line: 2}, {Name: "b", Values: []string{"value"}, Line: 3},
				{Name: "c", Values: []string{"value"}, Line: 4}, {Name: "d", Values: []string{"value"}, Line: 5},
			}}}}},
		{"anonymous sections, no trailing newline", "config a\nconfig b 'n'\n\toption x 1",
			&File{Sections: []Section{{Type: "a", Line: 1}, {Type: "b", Name: "n", Line: 2, Options: []Option{{Name: "x", Values: []string{"1"}, Line: 3}}}}}},
		{"escapes and concatenation", `config x
option a "say \"hi\"\\"
option b it\'s
option c 'single \n stays'
option d pre'mid dle'"post"
option e ''
`, &File{Sections: []Section{{Type: "x", Line: 1, Options: []Option{
			{Name: "a", Values: []string{`say "hi"\`}, Line: 2},
			{Name: "b", Values: []string{"it's"}, Line: 3},
			{Name: "c", Values: []string{`single \n stays`}, Line: 4},
			{Name: "d", Values: []string{"premid dlepost"}, Line: 5},
			{Name: "e", Values: []string{""}, Line: 6},
		}}}}},
		{"multi-line quotes and continuations count lines", "config x\noption a 'one\ntwo'\noption b \\\n  three\noption c \"#not a comment\" # a comment\n",
			&File{Sections: []Section{{Type: "x", Line: 1, Options: []Option{
				{Name: "a", Values: []string{"one\ntwo"}, Line: 2},
				{Name: "b", Values: []string{"three"}, Line: 4},
				{Name: "c", Values: []string{"#not a comment"}, Line: 6},
			}}}}},
		{"a later option replaces, lists append", "config x\noption a 1\nlist l x\noption a 2\nlist l y\n",
			&File{Sections: []Section{{Type: "x", Line: 1, Options: []Option{
				{Name: "a", Values: []string{"2"}, Line: 4},
				{Name: "l", List: true, Values: []string{"x", "y"}, Line: 5},
			}}}}},
		{"CRLF line ends", "config x\r\n\toption a 'b'\r\n",
			&File{Sections: []Section{{Type: "x", Line: 1, Options: []Option{{Name: "a", Values: []string{"b"}, Line: 2}}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		msg      string
	}{
		{"unmatched quotes make one word", "config x\noption 'example\" \"value'\n", 2, "missing"},
		{"unterminated single quote", "config x\noption a 'value\n", 2, "unterminated '"},
		{"unquoted spaces", "config x\noption example some value with space\n", 2, "too many words"},
		{"option outside a section", "option a b\n", 1, "outside any config"},
		{"unknown statement", "config x\nopton a b\n", 2, `unknown statement "opton"`},
		{"missing value", "config x\noption a\n", 2, "missing"},
		{"config without type", "config\n", 1, "missing type"},
		{"hyphen in a name", "config x\noption data-dir /x\n", 2, `invalid name "data-dir"`},
		{"quoted name with a space", "config 'a b'\n", 1, "invalid name"},
		{"both option and list", "config x\noption a 1\nlist a 2\n", 3, "both an option and a list"},
		{"package after config", "config x\npackage p\n", 2, "package"},
		{"unterminated double quote names its line", "config x\noption a \"b\n\n\n", 2, `unterminated "`},
		{"NUL", "config x\noption a 'b\x00'\n", 2, "NUL"},
		{"backslash at the end", "config x\noption a b\\", 2, "backslash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a SyntaxError", err)
			}
			if se.Line != tc.line || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("got %q, want line %d and %q", err, tc.line, tc.msg)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse(strings.NewReader("config x\n" + strings.Repeat("# pad\n", MaxSize/6+1)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
}

// FuzzParse checks that Parse never panics and that what it returns
// survives a round trip through Format's quoting.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"package p\nconfig t 'n'\n\toption a 'b c'\n\tlist l \"x\\\"y\"\n",
		"config x\noption a 'one\ntwo' # c\n", "config x\noption b \\\n three\n", "'", "\"\\", "config x\r\noption a ''\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		file, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		again, err := Parse(strings.NewReader(format(file)))
		if err != nil {
			t.Fatalf("reparse of %q: %v", format(file), err)
		}
		if !sameContent(file, again) {
			t.Fatalf("round trip changed %+v into %+v", file, again)
		}
	})
}

// format writes f as UCI with every word single-quoted, as uci export does.
func format(f *File) string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	var b strings.Builder
	if f.Package != "" {
		b.WriteString("package " + q(f.Package) + "\n")
	}
	for _, s := range f.Sections {
		b.WriteString("config " + q(s.Type))
		if s.Name != "" {
			b.WriteString(" " + q(s.Name))
		}
		b.WriteString("\n")
		for _, o := range s.Options {
			kw := "option"
			if o.List {
				kw = "list"
			}
			for _, v := range o.Values {
				b.WriteString("\t" + kw + " " + q(o.Name) + " " + q(v) + "\n")
			}
		}
	}
	return b.String()
}

// sameContent compares files but not line numbers.
func sameContent(a, b *File) bool {
	if a.Package != b.Package || len(a.Sections) != len(b.Sections) {
		return false
	}
	for i := range a.Sections {
		x, y := a.Sections[i], b.Sections[i]
		if x.Type != y.Type || x.Name != y.Name || len(x.Options) != len(y.Options) {
			return false
		}
		for j := range x.Options {
			o, p := x.Options[j], y.Options[j]
			if o.Name != p.Name || o.List != p.List || !reflect.DeepEqual(o.Values, p.Values) {
				return false
			}
		}
	}
	return true
}
