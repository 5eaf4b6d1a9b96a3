// Command sizes estimates what each module (or package) of a Go binary
// costs its gzip: for each, it zeroes the bytes of the module's symbols
// (code, read-only data, data) in the stripped binary and gzips it again.
// The difference is what those bytes cost the compressed stream; the
// function names and tables of .gopclntab, which the linker attributes to
// no symbol, are not counted (roughly 0.6 of a module's code share more).
// It finds what to cut, not the exact saving: a throwaway build without
// the module says that (bench/README.md "size").
//
//	go build -trimpath -tags ... -o unstripped .
//	go build -trimpath -tags ... -ldflags '-s -w' -o stripped .
//	go run ./bench/sizes [-by package] [-min BYTES] unstripped stripped
//
// Both builds must come from the same tree and flags but -s -w, so that
// their sections lie at the same addresses (checked).
package main

import (
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
)

func main() {
	by := flag.String("by", "module", "group symbols by module or by package")
	minBytes := flag.Uint64("min", 8000, "leave out groups with fewer bytes of symbols")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench/sizes [-by module|package] [-min BYTES] UNSTRIPPED STRIPPED")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 || *by != "module" && *by != "package" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *by, *minBytes); err != nil {
		fmt.Fprintln(os.Stderr, "sizes:", err)
		os.Exit(1)
	}
}

// span is a symbol's bytes in the stripped file.
type span struct{ off, n uint64 }

func run(unstripped, stripped, by string, min uint64) error {
	spans, sizes, err := groups(unstripped, stripped, by)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(stripped)
	if err != nil {
		return err
	}
	base := gzipSize(raw)
	var names []string
	for g, n := range sizes {
		if n >= min {
			names = append(names, g)
		}
	}
	saves := make(map[string]int, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, g := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			b := bytes.Clone(raw)
			for _, s := range spans[g] {
				clear(b[s.off : s.off+s.n])
			}
			d := base - gzipSize(b)
			mu.Lock()
			saves[g] = d
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(names, func(i, j int) bool { return saves[names[i]] > saves[names[j]] })
	fmt.Printf("gzip -9 (Go's) of %s: %d bytes\n\n| %s | zeroed saves | of symbols |\n| --- | --- | --- |\n", stripped, base, by)
	for _, g := range names {
		fmt.Printf("| %s | %d | %d |\n", g, saves[g], sizes[g])
	}
	return nil
}

// groups reads the unstripped binary's symbols and places each in the
// stripped one, by group.
func groups(unstripped, stripped, by string) (map[string][]span, map[string]uint64, error) {
	sym, err := elf.Open(unstripped)
	if err != nil {
		return nil, nil, err
	}
	defer sym.Close()
	st, err := elf.Open(stripped)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	for _, s := range st.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Addr == 0 {
			continue
		}
		u := sym.Section(s.Name)
		if u == nil || u.Addr != s.Addr || u.Size != s.Size {
			return nil, nil, fmt.Errorf("section %s differs between %s and %s: not the same build", s.Name, unstripped, stripped)
		}
	}
	var mods []string
	mainPath := "main"
	if by == "module" {
		bi, err := buildinfo.ReadFile(stripped)
		if err != nil {
			return nil, nil, err
		}
		mods = append(mods, bi.Main.Path)
		mainPath = bi.Main.Path
		for _, d := range bi.Deps {
			mods = append(mods, d.Path)
		}
	}
	syms, err := sym.Symbols()
	if err != nil {
		return nil, nil, err
	}
	spans := map[string][]span{}
	sizes := map[string]uint64{}
	for _, s := range syms {
		if s.Size == 0 || s.Section == elf.SHN_UNDEF || int(s.Section) >= len(st.Sections) {
			continue
		}
		sec := st.Sections[s.Section]
		if sec.Type != elf.SHT_PROGBITS || s.Value < sec.Addr || s.Value+s.Size > sec.Addr+sec.Size {
			continue
		}
		g := symbolPackage(s.Name)
		if g == "main" {
			g = mainPath
		}
		if by == "module" {
			g = moduleOf(g, mods)
		}
		spans[g] = append(spans[g], span{sec.Offset + s.Value - sec.Addr, s.Size})
		sizes[g] += s.Size
	}
	if len(spans) == 0 {
		return nil, nil, errors.New(unstripped + " has no symbols: build it without -s")
	}
	return spans, sizes, nil
}

// symbolPackage is the package a linker symbol belongs to: the path up to
// the first dot after the last slash, once the linker's prefixes, pointer
// stars and type arguments are taken off.
func symbolPackage(name string) string {
	if strings.HasPrefix(name, "go:func.") {
		return "go:func" // every function's stack maps and other funcdata
	}
	for _, p := range []string{"type:.eq.", "type:.hash.", "type:", "go:itab.", "go:"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			name = rest
			break
		}
	}
	name = strings.TrimLeft(name, "*[]0123456789")
	if i := strings.IndexAny(name, "[,"); i >= 0 {
		name = name[:i]
	}
	slash := strings.LastIndexByte(name, '/')
	if dot := strings.IndexByte(name[slash+1:], '.'); dot >= 0 {
		name = name[:slash+1+dot]
	}
	// The linker escapes the dots of a path's last element.
	return strings.ReplaceAll(name, "%2e", ".")
}

// moduleOf is the module of pkg among mods (the longest that is a prefix
// of it); for the standard library's packages, "std" and pkg's first
// element, or the module its vendored copy comes from.
func moduleOf(pkg string, mods []string) string {
	best := ""
	for _, m := range mods {
		if (pkg == m || strings.HasPrefix(pkg, m+"/")) && len(m) > len(best) {
			best = m
		}
	}
	switch {
	case best != "":
		return best
	case strings.HasPrefix(pkg, "go:"):
		return pkg
	case strings.HasPrefix(pkg, "vendor/"):
		parts := strings.SplitN(pkg, "/", 5)
		return "std " + strings.Join(parts[:min(4, len(parts))], "/")
	}
	first, _, _ := strings.Cut(pkg, "/")
	return "std " + first
}

func gzipSize(b []byte) int {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Len()
}
