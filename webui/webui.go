// Package webui serves the operator's web interface: plain HTML, CSS and
// JavaScript modules embedded in the binary, with uPlot vendored for the
// charts (make webui-vendor), so that a gateway without internet serves it
// whole. The pages talk to the JSON API under /api/ with the operator's
// bearer token or a session token from a password login.
package webui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed index.html style.css js vendor
var files embed.FS

// CSP allows nothing but the page's own files and API: no inline script or
// style, no other origin, no framing. uPlot styles its elements through the
// DOM, which a CSP does not restrict.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are set explicitly rather than from the host's mime.types,
// which a gateway may lack or have wrong.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".txt":  "text/plain; charset=utf-8",
}

// asset is an embedded file, served from the binary's read-only data
// rather than a copy on the heap (135 KB, for a page few gateways
// ever show).
type asset struct {
	name  string // in files
	ctype string
	etag  string
}

// Handler serves the UI at /. A path that names no file and has no
// extension is a page of the single-page app and gets index.html, so that
// deep links work; /api/ paths and missing files are 404s, so that the UI
// never answers for the API or serves HTML as a script.
func Handler() http.Handler {
	assets, err := load()
	if err != nil {
		panic(fmt.Sprintf("webui: embedded files: %v", err)) // a build defect
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		a, ok := assets[strings.TrimPrefix(p, "/")]
		switch {
		case ok:
		case p == "/api" || strings.HasPrefix(p, "/api/") || path.Ext(p) != "":
			http.NotFound(w, r)
			return
		default:
			a = assets["index.html"]
		}
		h.Set("Content-Type", a.ctype)
		h.Set("Content-Security-Policy", CSP)
		// Names carry no version, so the browser revalidates every file:
		// after an upgrade it must not mix old scripts with new ones, and
		// on a LAN a 304 costs next to nothing.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		f, err := files.Open(a.name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError) // load opened it
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, f.(io.ReadSeeker)) // embed.FS's files seek
	})
}

// load reads every embedded file once, with its type and ETag.
func load() (map[string]asset, error) {
	assets := map[string]asset{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			ctype = "application/octet-stream"
		}
		if path.Base(p) == "LICENSE" || path.Base(p) == "VERSION" {
			ctype = contentTypes[".txt"]
		}
		sum := sha256.Sum256(body)
		assets[p] = asset{name: p, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := assets["index.html"]; !ok {
		return nil, fmt.Errorf("no index.html")
	}
	return assets, nil
}
