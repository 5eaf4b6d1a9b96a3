package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"paradrop/api"
	"paradrop/examples"
)

// sleeperManifest is a chute that idles; NAME is replaced.
const sleeperManifest = `name: NAME
version: 1.0.0
command: ["/bin/sleep", "3600"]
`

// TestWebUITenants drives the web UI in headless Chromium as the operator
// and then as a developer: the operator's Developers page creates a
// developer and shows its token once, the operator's dashboard names each
// chute's owner; with the developer's token the dashboard shows its chutes
// and no other, no gateway-wide panels, and the pages call nothing the
// developer may not call (no 403, no script error).
func TestWebUITenants(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the web UI test runs chutes: it needs root")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("the web UI test needs Debian's chromium (make deps): %v", err)
	}
	data := t.TempDir()
	base := startDaemon(t, data)
	raw, err := os.ReadFile(filepath.Join(data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	operator := strings.TrimSpace(string(raw))
	t.Cleanup(func() {
		apiCall(t, base, operator, "DELETE", "/api/v1/chutes/opchute?wait=1", "")
		apiCall(t, base, operator, "DELETE", "/api/v1/chutes/devchute?wait=1", "")
	})
	installAs(t, base, operator, "opchute")

	ctx := browser(t)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	login := func(token, wait string) {
		t.Helper()
		run("log in with a token",
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), token),
			chromedp.Click(chromedp.CSS("#token-login button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS(wait)),
		)
	}

	run("open the UI", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/"))
	login(operator, `tr[data-chute="opchute"] td.owner`)
	run("open the Developers page",
		chromedp.Click(chromedp.ID("nav-developers")),
		chromedp.WaitVisible(chromedp.ID("new-developer")),
		chromedp.SendKeys(chromedp.ID("dev-name"), "acme"),
		chromedp.SendKeys(chromedp.ID("dev-chutes"), "2"),
		chromedp.Click(chromedp.ID("dev-unsigned")),
		chromedp.Click(chromedp.CSS("#new-developer button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("new-token-value")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-developer="acme"]`)),
	)
	token := strings.TrimSpace(evaluate[string](t, ctx, `document.getElementById('new-token-value').textContent`))
	if token == "" || token == operator {
		t.Fatalf("the page shows the token %q", token)
	}
	row := evaluate[string](t, ctx, `document.querySelector('tr[data-developer="acme"]').innerText`)
	if !strings.Contains(row, "chutes 2") || !strings.Contains(row, "unsigned") || strings.Contains(row, token) {
		t.Fatalf("acme's row says %q: want its quota and allowance, not its token", row)
	}
	// Shown once: a reload of the page lists acme without any token.
	run("reload the Developers page",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-developer="acme"] li[data-token]`)),
	)
	if html := evaluate[string](t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, token) {
		t.Fatal("the token is still on the page after a reload")
	}

	installAs(t, base, token, "devchute")
	run("see both chutes with their owners",
		chromedp.Click(chromedp.CSS(`a[href="/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-chute="devchute"] td.owner`)),
	)
	for name, want := range map[string]string{"opchute": "operator", "devchute": "developer acme"} {
		if got := evaluate[string](t, ctx, `document.querySelector('tr[data-chute="`+name+`"] td.owner').textContent`); got != want {
			t.Errorf("the operator's dashboard names %s's owner %q, want %q", name, got, want)
		}
	}
	run("open devchute's page as the operator",
		chromedp.Click(chromedp.CSS(`tr[data-chute="devchute"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`details summary .actor`)),
	)
	if got := evaluate[string](t, ctx, `document.querySelector('details summary .actor').textContent`); !strings.Contains(got, "developer:acme") {
		t.Errorf("devchute's install is shown %q, want by developer:acme", got)
	}

	// The developer, in a fresh tab session.
	run("log out", chromedp.Click(chromedp.ID("logout")))
	login(token, `tr[data-chute="devchute"]`)
	run("the developer's dashboard", chromedp.WaitVisible(chromedp.ID("developer-note")))
	checks := map[string]string{
		"the operator's chute":     `!!document.querySelector('tr[data-chute="opchute"]')`,
		"the gateway's charts":     `!!document.getElementById('gw-h')`,
		"the owner column":         `!!document.querySelector('td.owner')`,
		"the Developers link":      `!document.getElementById('nav-developers').hidden`,
		"a refused call (403)":     `performance.getEntriesByType('resource').some((e) => e.responseStatus === 403)`,
		"a failed panel's message": `[...document.querySelectorAll('.error')].some((e) => !e.hidden && e.textContent)`,
	}
	shows := func(where string) {
		t.Helper()
		for what, expr := range checks {
			if evaluate[bool](t, ctx, expr) {
				t.Errorf("the developer's %s shows %s", where, what)
			}
		}
	}
	shows("dashboard")
	if who := evaluate[string](t, ctx, `document.getElementById('who').textContent`); who != "Developer acme" {
		t.Errorf("the header says %q, want Developer acme", who)
	}
	run("open its chute's page",
		chromedp.Click(chromedp.CSS(`tr[data-chute="devchute"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`details summary .actor`)),
		chromedp.WaitVisible(chromedp.CSS(`#current-usage dt`)),
	)
	shows("chute page")
	// The Developers page is the operator's: a developer going there gets
	// its dashboard, and calls nothing it may not.
	run("go to /developers", chromedp.Navigate(base+"/developers"), chromedp.WaitVisible(chromedp.CSS(`tr[data-chute="devchute"]`)))
	shows("/developers")
	if evaluate[bool](t, ctx, `!!document.getElementById('new-developer')`) {
		t.Error("a developer sees the Developers form")
	}
}

// installAs installs a sleeping chute called name with token and waits
// until it is done.
func installAs(t *testing.T, base, token, name string) {
	t.Helper()
	pkg, err := examples.Package(strings.ReplaceAll(sleeperManifest, "NAME", name), nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", base+"/api/v1/chutes?wait=1", bytes.NewReader(pkg))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var change struct {
		State string `json:"state"`
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &change)
	if resp.StatusCode/100 != 2 || change.State != "done" {
		t.Fatalf("install %s: %s %s", name, resp.Status, body)
	}
}
