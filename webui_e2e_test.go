package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"paradrop/cgroup"
	"paradrop/chute/sandbox/sandboxtest"
	"paradrop/examples"
)

// TestMain lets the test binary play the roles the daemon re-executes
// itself as (a chute's shim and init), as the real binary does.
func TestMain(m *testing.M) {
	sandboxtest.PlayRoles()
	code := m.Run()
	// The test daemons' parent cgroups, empty once their chutes are gone.
	for _, parent := range []string{e2eCgroupParent, fmt.Sprintf("/paradrop-webui-%d", os.Getpid())} {
		if g, err := cgroup.Load(parent); err == nil {
			g.Delete()
		}
	}
	os.Exit(code)
}

const chromium = "/usr/bin/chromium"

// burnManifest is a chute that burns all the CPU it is given.
const burnManifest = `name: burn
version: 1.0.0
command: ["/bin/sh", "-c", "while :; do :; done"]
resources:
  cpu_max: 1
policy:
  grace: 1s
`

// TestWebUI drives the real daemon's web UI in headless Chromium as an
// operator would: log in with the password, upload a chute, see it run,
// lower its CPU limit through the form, watch the change's steps and the
// CPU chart fall under the new limit, then remove the chute.
func TestWebUI(t *testing.T) {
	base, operator := uiDaemon(t, "burn")
	const password = "web ui test password"
	apiCall(t, base, operator, "PUT", "/api/v1/password", `{"password":"`+password+`"}`)

	pkg, err := examples.Package(burnManifest, nil)
	if err != nil {
		t.Fatal(err)
	}
	pkgPath := filepath.Join(t.TempDir(), "burn.tar.gz")
	if err := os.WriteFile(pkgPath, pkg, 0o644); err != nil {
		t.Fatal(err)
	}
	shots := screenshotDir(t)

	ctx := browser(t)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		runUI(t, ctx, what, steps...)
	}

	// A deep link first shows the login, then the page it pointed to.
	run("log in with the password",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/install"),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS("#password-login button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("package")),
	)
	session := evaluate[string](t, ctx, `sessionStorage.getItem('paradrop.token')`)
	if len(session) != 64 || session == operator {
		t.Fatalf("the browser holds %q, want a session token that is not the operator token", session)
	}

	run("upload the package",
		chromedp.SetUploadFiles(chromedp.ID("package"), []string{pkgPath}),
		chromedp.Click(chromedp.CSS("#install button[type=submit]")),
	)
	steps := waitText(t, ctx, "#install-progress", regexp.MustCompile(`: (done|failed)\b`), time.Minute)
	if !strings.Contains(steps, "install burn: done") {
		t.Fatalf("install did not end well:\n%s", steps)
	}

	run("see it running on the dashboard",
		chromedp.Click(chromedp.CSS(`a[href="/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-chute="burn"] td.state-running`)),
		chromedp.Sleep(5*time.Second), // let the charts gather some samples
	)
	screenshot(t, ctx, shots, "dashboard-desktop", 1280, 900)
	screenshot(t, ctx, shots, "dashboard-phone", 390, 844)

	run("open its page and lower its CPU limit",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.CSS(`tr[data-chute="burn"] a`)),
		chromedp.WaitVisible(chromedp.ID("cpu_max")),
		chromedp.SetValue(chromedp.ID("cpu_max"), "0.2"),
		chromedp.SetValue(chromedp.ID("grace"), "1"),
		chromedp.Click(chromedp.CSS("#resources button[type=submit]")),
	)
	steps = waitText(t, ctx, "#resources .change", regexp.MustCompile(`: (done|failed)\b`), time.Minute)
	t.Logf("steps of the resource change:\n%s", steps)
	if !strings.Contains(steps, ": done") || !regexp.MustCompile(`(?i)forc`).MatchString(steps) {
		t.Fatalf("want a finished change with a force phase:\n%s", steps)
	}

	// The CPU chart's latest values: the limit line at 20 % of a core, and
	// the chute's use under it (with room for a sample that straddles the
	// change and for the kernel's accounting period).
	deadline := time.Now().Add(30 * time.Second)
	var latest map[string]float64
	for {
		js := evaluate[string](t, ctx,
			`[...document.querySelectorAll('figure.chart')].find((f) => f.querySelector('figcaption').textContent.startsWith('CPU'))?.dataset.latest ?? '{}'`)
		latest = nil
		_ = json.Unmarshal([]byte(js), &latest)
		if latest["limit"] == 20 && latest["cpu"] > 0 && latest["cpu"] <= 23 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU chart's latest values %s, want cpu under the limit of 20", js)
		}
		time.Sleep(time.Second)
	}
	t.Logf("CPU chart after the change: %v", latest)
	screenshot(t, ctx, shots, "chute-desktop", 1280, 900)
	screenshot(t, ctx, shots, "chute-phone", 390, 844)

	// Remove it from the dashboard: a confirmation first.
	run("remove the chute",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.CSS(`a[href="/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Remove burn"]`)),
		chromedp.Click(chromedp.CSS(`button[aria-label="Remove burn"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm")),
	)
	screenshot(t, ctx, shots, "remove-dialog", 1280, 900)
	run("confirm the removal",
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitNotPresent(chromedp.CSS(`tr[data-chute="burn"]`)),
	)
}

// startDaemon runs serve in-process on a loopback port until the test ends.
func startDaemon(t *testing.T, data string) string {
	t.Helper()
	return "http://" + startServe(t, serveOptions{dataDir: data, maxUpload: 64 << 20,
		cgroups: fmt.Sprintf("/paradrop-webui-%d", os.Getpid())})
}

func apiCall(t *testing.T, base, token, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound {
		t.Errorf("%s %s: %s", method, path, resp.Status)
	}
}

// browser starts a fresh headless Chromium for the test and fails it on
// any uncaught script error or Content-Security-Policy violation.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	watched := make(chan struct{})
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); <-watched })
	messages := chromedp.Console(ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	go func() {
		defer close(watched)
		for m, err := range messages {
			if err != nil {
				return // the browser is gone: the test has ended
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				t.Errorf("browser console: %s", m)
			}
		}
	}()
	return ctx
}

// evaluate runs a JavaScript expression in the page, within uiDeadline.
func evaluate[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, uiDeadline)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitText waits until sel's text matches re and returns the text.
func waitText(t *testing.T, ctx context.Context, sel string, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text := evaluate[string](t, ctx, fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ''`, sel))
		if re.MatchString(text) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never matched %s; it says:\n%s", sel, re, text)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// screenshotDir is where the test leaves screenshots for a person to
// look at (gitignored).
func screenshotDir(t *testing.T) string {
	dir, err := filepath.Abs(filepath.Join("webui", "testdata", "screenshots"))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string, width, height int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, uiDeadline)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(width, height),
		chromedp.Sleep(2500*time.Millisecond), // a chart redraw after the resize, and a poll
	)
	var png []byte
	if err == nil {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	}
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
