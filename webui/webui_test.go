package webui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandlerServesFiles(t *testing.T) {
	h := Handler()
	for _, tt := range []struct{ path, ctype, contains string }{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/js/main.js">`},
		{"/index.html", "text/html; charset=utf-8", "<main"},
		{"/style.css", "text/css; charset=utf-8", ":focus-visible"},
		{"/js/main.js", "text/javascript; charset=utf-8", "pushState"},
		{"/vendor/uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8", "uPlot"},
		{"/vendor/uplot/uPlot.min.css", "text/css; charset=utf-8", ".uplot"},
		{"/vendor/uplot/LICENSE", "text/plain; charset=utf-8", "MIT"},
	} {
		resp := get(t, h, "GET", tt.path, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %s", tt.path, resp.Status)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tt.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tt.path, got, tt.ctype)
		}
		if !strings.Contains(string(body), tt.contains) {
			t.Errorf("%s: body lacks %q", tt.path, tt.contains)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", tt.path)
		}
		if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" {
			t.Errorf("%s: cache headers %q %q", tt.path, resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"))
		}
	}
}

func TestHandlerCSP(t *testing.T) {
	resp := get(t, Handler(), "GET", "/", nil)
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "http") {
		t.Errorf("CSP allows too much: %q", csp)
	}
	// The CSP must not need relaxing: no inline script, style or handler.
	body, _ := io.ReadAll(resp.Body)
	html := string(body)
	for _, bad := range []string{"<script>", "<style", " style=", " onclick=", " onload=", "javascript:", "//cdn", "https://"} {
		if strings.Contains(html, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
}

func TestHandlerFallbackAndNotFound(t *testing.T) {
	h := Handler()
	// Deep links are pages of the app.
	for _, p := range []string{"/chutes/web", "/install", "/login", "/chutes/a/../b"} {
		resp := get(t, h, "GET", p, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "<main") {
			t.Errorf("%s: %s, want index.html", p, resp.Status)
		}
	}
	// The API is never shadowed, and a missing asset is not answered with
	// HTML that a browser would try to run as a script.
	for _, p := range []string{"/api", "/api/v1/chutes", "/api/v1/nope", "/js/missing.js", "/favicon.ico", "/vendor/uplot/none.css"} {
		if resp := get(t, h, "GET", p, nil); resp.StatusCode != 404 {
			t.Errorf("%s: %s, want 404", p, resp.Status)
		}
	}
	if resp := get(t, h, "POST", "/", nil); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %s allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	if resp := get(t, h, "HEAD", "/style.css", nil); resp.StatusCode != 200 {
		t.Errorf("HEAD: %s", resp.Status)
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := Handler()
	etag := get(t, h, "GET", "/js/api.js", nil).Header.Get("ETag")
	if resp := get(t, h, "GET", "/js/api.js", map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %s, want 304", resp.Status)
	}
}

// TestNoRemoteResources keeps the UI working on an offline gateway.
func TestNoRemoteResources(t *testing.T) {
	assets, err := load()
	if err != nil {
		t.Fatal(err)
	}
	for name := range assets {
		if strings.HasPrefix(name, "vendor/") {
			continue // uPlot's own comments name its home page
		}
		body, err := files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"http://", "https://", "innerHTML", "eval("} {
			if strings.Contains(string(body), bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

// The UI's files are served from the binary's read-only data: the handler
// keeps their names, types and ETags on the heap, not a copy of them (it
// kept 135 KB).
func TestHandlerHeap(t *testing.T) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.GC() // the first may leave the test runner's start-up garbage to the next
	runtime.ReadMemStats(&m0)
	h := Handler()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	held := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	t.Logf("the handler holds %d bytes", held)
	if held > 16<<10 {
		t.Errorf("the handler holds %d bytes of heap, want at most 16 KiB", held)
	}
	runtime.KeepAlive(h)
}
