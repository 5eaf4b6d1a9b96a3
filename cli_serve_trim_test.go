package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssFile(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// The test binary maps its own pages alone, as the daemon does those only
// it touched: they leave its resident set, and it runs on.
func TestReleaseOwnText(t *testing.T) {
	before := rssFile(t)
	if err := releaseOwnText(); err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("RssFile %d kB before, %d kB after", before, after)
	if after > before/2 {
		t.Errorf("RssFile %d kB after the release, from %d kB: want at most half", after, before)
	}
}
