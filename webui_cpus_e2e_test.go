package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"paradrop/cgroup"
)

// chuteCpuset is the CPU list the kernel holds the web UI daemon's chute
// name to: its cgroup's cpuset.cpus (effective, on v2).
func chuteCpuset(t *testing.T, name string) string {
	t.Helper()
	group := fmt.Sprintf("/paradrop-webui-%d/%s", os.Getpid(), name)
	file := filepath.Join("/sys/fs/cgroup/cpuset", group, "cpuset.cpus")
	if cgroup.Detect() == cgroup.V2 {
		file = filepath.Join("/sys/fs/cgroup", group, "cpuset.cpus.effective")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestWebUICPUs: in Chromium, the operator pins a chute to CPU 0 through
// its page's policy form (the chute's cpuset really holds CPU 0, the page
// says so), sees a CPU list the gateway cannot honour refused with the
// daemon's reason, shown as text, and nothing changed, then lifts the pin
// (every CPU again).
func TestWebUICPUs(t *testing.T) {
	online, err := cgroup.OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(online) < 2 {
		t.Fatalf("this test needs two CPUs, the machine has %v", online)
	}
	all := strconv.Itoa(online[0]) + "-" + strconv.Itoa(online[len(online)-1])
	base, operator := uiDaemon(t, "pinned")
	installAs(t, base, operator, "pinned")
	if got := chuteCpuset(t, "pinned"); got != all {
		t.Fatalf("a chute with no CPU list runs on %q, want every CPU %s", got, all)
	}

	ctx := browser(t)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		runUI(t, ctx, what, steps...)
	}
	policyCPUs := func() string {
		t.Helper()
		code, body := call(t, http.DefaultClient, base+"/api/v1/chutes/pinned/resources", operator, "GET", "")
		var res struct {
			CPUs string `json:"cpus"`
		}
		if err := json.Unmarshal(body, &res); code != http.StatusOK || err != nil {
			t.Fatalf("GET resources: %d %s", code, body)
		}
		return res.CPUs
	}
	// shown is what the chute's page says of its CPUs: the form's field
	// and the current usage's row.
	shown := func() (field, row string) {
		t.Helper()
		field = evaluate[string](t, ctx, `document.getElementById('cpus').value`)
		row = waitText(t, ctx, "#current-usage", regexp.MustCompile(`CPUs`), uiDeadline)
		return field, regexp.MustCompile(`CPUs\s+(\S+)`).FindStringSubmatch(row)[1]
	}
	apply := func(what, cpus string) {
		t.Helper()
		// Set by script: chromedp's SetValue takes an empty value for a
		// failure, and "" is how the operator lifts the list.
		in, _ := json.Marshal(cpus)
		evaluate[string](t, ctx, `document.getElementById('cpus').value = `+string(in))
		run(what,
			chromedp.SetValue(chromedp.ID("grace"), "0"),
			chromedp.Click(chromedp.CSS("#resources button[type=submit]")),
		)
	}
	openPage := func() {
		t.Helper()
		run("open the chute's page",
			chromedp.Navigate(base+"/chutes/pinned"),
			chromedp.WaitVisible(chromedp.ID("cpus")),
		)
	}

	run("log in as the operator",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/chutes/pinned"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), operator),
		chromedp.Click(chromedp.CSS("#token-login button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("cpus")),
	)
	if field, row := shown(); field != "" || row != "all" {
		t.Errorf("an unpinned chute's page shows the field %q and the row %q, want \"\" and all", field, row)
	}

	apply("pin it to CPU 0", "0")
	steps := waitText(t, ctx, "#resources .change", regexp.MustCompile(`: (done|failed)\b`), time.Minute)
	if !strings.Contains(steps, ": done") || !strings.Contains(steps, "cpus=0") {
		t.Fatalf("the change of CPUs did not end well, or does not say which:\n%s", steps)
	}
	if got := chuteCpuset(t, "pinned"); got != "0" {
		t.Errorf("after the form set CPUs 0, the chute's cpuset.cpus is %q", got)
	}
	openPage() // afresh: what the page shows comes from the daemon
	if field, row := shown(); field != "0" || row != "0" {
		t.Errorf("a chute pinned to CPU 0 shows the field %q and the row %q", field, row)
	}

	offline := strconv.Itoa(online[len(online)-1] + 1)
	for in, why := range map[string]string{
		offline:                          "CPU " + offline + " is not online here",
		"0-":                             `"" is not a CPU number`,
		"a":                              `"a" is not a CPU number`,
		`<img src=x onerror="alert(1)">`: `<img src=x`,
		"5-1":                            "runs backwards",
	} {
		apply("ask for CPUs "+in[:min(len(in), 20)], in)
		msg := waitText(t, ctx, "#resources .error", regexp.MustCompile(regexp.QuoteMeta(why)), uiDeadline)
		t.Logf("CPUs %.20q: the page says %q", in, msg)
		if !strings.Contains(msg, "cpu list") {
			t.Errorf("CPUs %.20q: the page says %q, not naming the CPU list", in, msg)
		}
		if evaluate[int](t, ctx, `document.querySelectorAll('#resources .error *').length`) != 0 {
			t.Errorf("CPUs %.20q: the error became markup: %s", in,
				evaluate[string](t, ctx, `document.querySelector('#resources .error').innerHTML`))
		}
		if got := chuteCpuset(t, "pinned"); got != "0" {
			t.Errorf("after CPUs %.20q were refused, the chute runs on %q, want still 0", in, got)
		}
		if got := policyCPUs(); got != "0" {
			t.Errorf("after CPUs %.20q were refused, the policy says %q, want still 0", in, got)
		}
	}
	if evaluate[bool](t, ctx, `document.querySelector('#resources button[type=submit]').disabled`) {
		t.Error("the Apply button stays disabled after a refusal")
	}

	apply("lift the pin", "")
	steps = waitText(t, ctx, "#resources .change", regexp.MustCompile(`(?s): done\b.*cpus=all|: failed\b`), time.Minute)
	if !strings.Contains(steps, ": done") {
		t.Fatalf("lifting the CPU list did not end well:\n%s", steps)
	}
	if got := chuteCpuset(t, "pinned"); got != all {
		t.Errorf("after the pin was lifted the chute runs on %q, want every CPU %s", got, all)
	}
	openPage()
	if field, row := shown(); field != "" || row != "all" {
		t.Errorf("a lifted chute's page shows the field %q and the row %q, want \"\" and all", field, row)
	}
}
