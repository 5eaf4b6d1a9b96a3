package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"paradrop/api"
	"paradrop/chute/signature/signaturetest"
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
	base, operator := uiDaemon(t, "opchute", "devchute")
	installAs(t, base, operator, "opchute")

	ctx := browser(t)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		runUI(t, ctx, what, steps...)
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
	if !strings.Contains(row, "Chutes\n0 / 2") || !strings.Contains(row, "unsigned") || strings.Contains(row, token) {
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
	waitText(t, ctx, `#my-quota dd[data-quota="chutes"]`, regexp.MustCompile(`^1 / 2$`), uiDeadline)
	if got := evaluate[string](t, ctx, `document.getElementById('my-quota').innerText`); strings.Contains(got, "null") || strings.Contains(got, "expire") {
		t.Errorf("the developer's quota, with no token that expires, reads %q", got)
	}
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

// uiDaemon starts a daemon for a web UI test and returns its URL and the
// operator's token; chutes, which outlive the daemon, are removed at the
// end whatever happens.
func uiDaemon(t *testing.T, chutes ...string) (base, operator string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the web UI test runs chutes: it needs root")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("the web UI test needs Debian's chromium (make deps): %v", err)
	}
	data := t.TempDir() // under a 0700 directory, which chutes must not mind
	base = startDaemon(t, data)
	raw, err := os.ReadFile(filepath.Join(data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	operator = strings.TrimSpace(string(raw))
	t.Cleanup(func() {
		for _, c := range chutes {
			apiCall(t, base, operator, "DELETE", "/api/v1/chutes/"+c+"?wait=1", "")
		}
	})
	return base, operator
}

// uiDeadline bounds every step of a web UI test: a page that never shows
// what a step waits for fails the test at once instead of hanging it (and
// leaving its chutes behind).
const uiDeadline = 45 * time.Second

// runUI runs steps in the browser within uiDeadline.
func runUI(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, uiDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		outer, cancel := context.WithTimeout(outer, 5*time.Second)
		defer cancel()
		page, _ := chromedp.Run(outer, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %v; the page says:\n%s", what, err, page)
	}
}

// signedManifest is a chute with every resource a quota counts; NAME is
// replaced.
const signedManifest = `name: NAME
version: 1.0.0
command: ["/bin/sleep", "3600"]
resources:
  cpu_max: 0.25
  memory: 32Mi
  disk: 16Mi
  bandwidth: {egress: 2Mbit}
`

// TestWebUIDeveloperQuotaAndSigning: in Chromium, the operator edits a
// developer (a key added, the chute quota lowered, a bad value refused
// with the daemon's reason) and gives it a token that expires; the
// developer, logged in with that token, sees its expiry and its quota,
// installs a package signed with the key through the form and sees the
// key ID on the chute's page; its quota's usage is what the chute holds;
// a second install is refused by the lowered quota, with the quota's
// message on the page.
func TestWebUIDeveloperQuotaAndSigning(t *testing.T) {
	base, operator := uiDaemon(t, "signed1", "signed2")
	apiCall(t, base, operator, "POST", "/api/v1/developers", `{"name":"acme","quota":{"chutes":2}}`)

	key := signaturetest.NewKey(t)
	keyID := regexp.MustCompile(`minisign public key ([0-9A-F]+)`).FindStringSubmatch(key.Pub)[1]
	dir := t.TempDir()
	files := map[string]string{}
	for _, name := range []string{"signed1", "signed2", "signed1-v2"} {
		manifest := strings.ReplaceAll(signedManifest, "NAME", strings.TrimSuffix(name, "-v2"))
		if strings.HasSuffix(name, "-v2") {
			manifest = strings.ReplaceAll(manifest, "1.0.0", "2.0.0")
		}
		pkg, err := examples.Package(manifest, nil)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = filepath.Join(dir, name+".tar.gz")
		if err := os.WriteFile(files[name], pkg, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(files[name]+".minisig", key.Sign(t, files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx := browser(t)
	text := func(sel string) string {
		t.Helper()
		return strings.TrimSpace(evaluate[string](t, ctx, fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ''`, sel)))
	}
	acmeRow := `tr[data-developer="acme"]`
	runUI(t, ctx, "log in as the operator",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/developers"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), operator),
		chromedp.Click(chromedp.CSS("#token-login button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(acmeRow+` dd[data-quota="chutes"]`)),
	)
	if got := text(acmeRow + ` dd[data-quota="chutes"]`); got != "0 / 2" {
		t.Errorf("acme's chutes quota reads %q, want 0 / 2", got)
	}

	// A value the daemon refuses: its reason on the form, which stays open.
	runUI(t, ctx, "edit acme with a bad memory quota",
		chromedp.Click(chromedp.CSS(`button[aria-label="Edit acme"]`)),
		chromedp.WaitVisible(chromedp.ID("edit-developer")),
		chromedp.SetValue(chromedp.ID("edit-memory"), "lots"),
		chromedp.Click(chromedp.CSS("#edit-developer button[type=submit]")),
	)
	if got := waitText(t, ctx, "#edit-developer-error", regexp.MustCompile(`\S`), uiDeadline); !strings.Contains(got, "refused (400)") || !strings.Contains(got, `"lots"`) {
		t.Errorf("a bad quota is shown as %q, want the 400 and the daemon's reason", got)
	}
	runUI(t, ctx, "add a key and lower the chute quota",
		chromedp.SetValue(chromedp.ID("edit-memory"), "256Mi"),
		chromedp.SetValue(chromedp.ID("edit-chutes"), "1"),
		chromedp.SetValue(chromedp.ID("edit-keys"), key.Pub),
		chromedp.Click(chromedp.CSS("#edit-developer button[type=submit]")),
		chromedp.WaitNotVisible(chromedp.ID("edit-developer")),
	)
	waitText(t, ctx, acmeRow+` dd[data-quota="chutes"]`, regexp.MustCompile(`^0 / 1$`), uiDeadline)
	if got := text(acmeRow); !strings.Contains(got, "1 key") || !strings.Contains(got, "0 B / 256 MiB") {
		t.Errorf("acme's row after the edit: %q", got)
	}

	shots := screenshotDir(t)
	screenshot(t, ctx, shots, "developers-desktop", 1280, 900)

	// A token that would have expired already: the daemon's refusal shown.
	runUI(t, ctx, "give acme a token that expired in 2020",
		chromedp.Click(chromedp.CSS(`button[aria-label="New token for acme"]`)),
		chromedp.WaitVisible(chromedp.ID("token-expires-at")),
		chromedp.SetValue(chromedp.ID("token-expires-at"), "2020-01-02T03:04"),
		chromedp.Click(chromedp.ID("confirm-ok")),
	)
	if got := waitText(t, ctx, "#developers-error", regexp.MustCompile(`\S`), uiDeadline); !strings.Contains(got, "New token: refused (400)") || !strings.Contains(got, "has passed") {
		t.Errorf("a token expiring in the past is shown as %q", got)
	}
	// A token that expires in two days.
	runUI(t, ctx, "give acme a token that expires",
		chromedp.Click(chromedp.CSS(`button[aria-label="New token for acme"]`)),
		chromedp.WaitVisible(chromedp.ID("token-expires-in")),
		chromedp.SendKeys(chromedp.ID("token-expires-in"), "2d"),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS("#new-token-expiry time")),
	)
	token := text("#new-token-value")
	expires, err := time.Parse(time.RFC3339, evaluate[string](t, ctx, `document.querySelector('#new-token-expiry time').getAttribute('datetime')`))
	if d := time.Until(expires); err != nil || d < 47*time.Hour || d > 48*time.Hour {
		t.Errorf("the new token expires at %v (%v), want in two days", expires, err)
	}
	waitText(t, ctx, acmeRow+" ul.tokens", regexp.MustCompile(`expires`), uiDeadline)

	// The developer, with that token.
	runUI(t, ctx, "log in as acme",
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS("#token-login button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`#my-quota dd[data-quota="chutes"]`)),
		chromedp.WaitVisible(chromedp.CSS("#token-expiry time")),
	)
	if got := text(`#my-quota dd[data-quota="chutes"]`); got != "0 / 1" {
		t.Errorf("acme's dashboard says chutes %q, want 0 / 1", got)
	}
	install := func(name string) string {
		t.Helper()
		runUI(t, ctx, "install "+name+" with its signature",
			chromedp.Navigate(base+"/install"),
			chromedp.WaitVisible(chromedp.ID("signature")),
			chromedp.SetUploadFiles(chromedp.ID("package"), []string{files[name]}),
			chromedp.SetUploadFiles(chromedp.ID("signature"), []string{files[name] + ".minisig"}),
			chromedp.Click(chromedp.CSS("#install button[type=submit]")),
		)
		// Ends with the change, or with the upload's refusal.
		return waitText(t, ctx, "#install-progress", regexp.MustCompile(`(?m): (done|failed)\b|^`+name+`\.tar\.gz: `), 2*time.Minute)
	}
	if got := install("signed1"); !strings.Contains(got, "install signed1: done") {
		t.Fatalf("the signed install did not end well:\n%s", got)
	}
	runUI(t, ctx, "open signed1's page",
		chromedp.Click(chromedp.CSS(`#install-progress a`)),
		chromedp.WaitVisible(chromedp.CSS("code.signed-by")),
	)
	if got := text("code.signed-by"); got != keyID {
		t.Errorf("signed1's page says signed by %q, want key %s", got, keyID)
	}

	// What the quota counts is what the chute holds.
	var res struct {
		CPUMax    float64 `json:"cpu_max"`
		Memory    int64   `json:"memory"`
		Tmp       int64   `json:"tmp"`
		Disk      int64   `json:"disk"`
		Bandwidth struct {
			Egress int64 `json:"egress"`
		} `json:"bandwidth"`
	}
	getJSON(t, base, operator, "/api/v1/chutes/signed1/resources", &res)
	var dev struct {
		Used struct {
			Chutes int
			CPU    float64
			Memory int64
			Disk   int64
			Egress int64
		}
	}
	getJSON(t, base, operator, "/api/v1/developers/acme", &dev)
	u := dev.Used
	if u.Chutes != 1 || u.CPU != 0.25 || res.CPUMax != 0.25 || u.Memory != max(res.Memory, res.Tmp) || u.Memory < 32<<20 ||
		u.Disk != 16<<20 || res.Disk != 16<<20 || u.Egress != 2e6 || res.Bandwidth.Egress != 2e6 {
		t.Errorf("acme uses %+v; signed1 holds %+v", u, res)
	}
	runUI(t, ctx, "see the quota used on the dashboard",
		chromedp.Click(chromedp.CSS(`a[href="/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#my-quota dd[data-quota="memory"]`)),
	)
	waitText(t, ctx, `#my-quota dd[data-quota="chutes"]`, regexp.MustCompile(`^1 / 1$`), uiDeadline)
	if got := text(`#my-quota dd[data-quota="memory"]`); !strings.HasSuffix(got, " / 256 MiB") || strings.HasPrefix(got, "0 B") {
		t.Errorf("acme's memory reads %q", got)
	}

	screenshot(t, ctx, shots, "developer-dashboard-phone", 390, 844)
	runUI(t, ctx, "back to a desktop", chromedp.EmulateViewport(1280, 900))

	// The lowered quota holds: the refusal, with its reason, on the page.
	got := install("signed2")
	if !strings.Contains(got, "over quota") || !strings.Contains(got, `chutes: 1 used by its other chutes, "signed2" asks 1 more, quota 1`) {
		t.Errorf("a second install beyond the quota shows:\n%s", got)
	}
	var list struct{ Chutes []struct{ Name string } }
	getJSON(t, base, operator, "/api/v1/chutes", &list)
	if len(list.Chutes) != 1 {
		t.Errorf("chutes after the refusal: %+v", list.Chutes)
	}

	// An update from the chute's page: refused unsigned, with the reason;
	// done with its signature.
	activity := `[aria-label="Progress of the last action"]`
	update := func(files ...string) string {
		t.Helper()
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(base + "/chutes/signed1"),
			chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Update signed1"]`)),
			chromedp.Click(chromedp.CSS(`button[aria-label="Update signed1"]`)),
			chromedp.WaitVisible(chromedp.ID("update-signature")),
			chromedp.SetUploadFiles(chromedp.ID("update-package"), files[:1]),
		}
		if len(files) > 1 {
			steps = append(steps, chromedp.SetUploadFiles(chromedp.ID("update-signature"), files[1:]))
		}
		runUI(t, ctx, "update signed1", append(steps, chromedp.Click(chromedp.ID("confirm-ok")))...)
		return waitText(t, ctx, activity, regexp.MustCompile(`(?m): (done|failed)\b|^signed1-v2\.tar\.gz: `), 2*time.Minute)
	}
	v2 := files["signed1-v2"]
	if got := update(v2); !strings.Contains(got, "signed1-v2.tar.gz: ") || !strings.Contains(got, "not signed") {
		t.Errorf("an unsigned update shows:\n%s", got)
	}
	if got := update(v2, v2+".minisig"); !strings.Contains(got, "update signed1: done") {
		t.Fatalf("the signed update did not end well:\n%s", got)
	}
	waitText(t, ctx, "#view > p", regexp.MustCompile(`version 2\.0\.0 .*signed by key `+keyID), uiDeadline)
}

// getJSON reads path with token into v.
func getJSON(t *testing.T, base, token, path string, v any) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, v) != nil {
		t.Fatalf("GET %s: %s %s", path, resp.Status, body)
	}
}
