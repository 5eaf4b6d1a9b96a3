package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestGatewayTagsAreCrossTags: the router suite's daemon is built with the
// tags the Makefile gives the gateways' builds (CROSS_TAGS), whatever
// they become.
func TestGatewayTagsAreCrossTags(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(TAGS|CROSS_TAGS)\s*\?=\s*(\S+)\s*$`).FindAllStringSubmatch(string(mk), -1) {
		vars[m[1]] = m[2]
	}
	cross := strings.ReplaceAll(vars["CROSS_TAGS"], "$(TAGS)", vars["TAGS"])
	if vars["TAGS"] == "" || cross == "" || strings.Contains(cross, "$") {
		t.Fatalf("Makefile's TAGS %q, CROSS_TAGS %q", vars["TAGS"], vars["CROSS_TAGS"])
	}
	if got := strings.Join(gatewayTags, ","); got != cross {
		t.Errorf("router suite builds with -tags %s, the Makefile's gateways with %s", got, cross)
	}
}

func TestDaemonMapsSmaps(t *testing.T) {
	const exe = "/tmp/x/paradrop"
	smaps := `00400000-00bcd000 r-xp 00000000 fe:00 10084530                           /tmp/x/paradrop
Size:               7988 kB
Rss:                7220 kB
Pss:                3000 kB
00bcd000-01407000 r--p 007cd000 fe:00 10084530                           /tmp/x/paradrop
Size:               8424 kB
Rss:                7836 kB
01407000-01476000 rw-p 01007000 fe:00 10084530                           /tmp/x/paradrop
Rss:                 444 kB
01476000-034c1000 rw-p 00000000 00:00 0 
Rss:                 124 kB
3cc4a400000-3cc4b000000 rw-p 00000000 00:00 0 
Rss:                7264 kB
7f538b1c0000-7f538b1e0000 r--s 00000000 fe:00 11534323                   /tmp/b/data/paradrop.db
Size:                128 kB
Rss:                 116 kB
7f53d200c000-7f53d200e000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
7ffc11a99000-7ffc11aba000 rw-p 00000000 00:00 0                          [stack]
Rss:                  16 kB
VmFlags: rd wr mr mw me gd ac
`
	var m daemonMaps
	if err := m.addSmaps(smaps, exe); err != nil {
		t.Fatal(err)
	}
	want := daemonMaps{code: 7220 << 10, rodata: 7836 << 10, data: 444 << 10, store: 116 << 10}
	if m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	if err := new(daemonMaps).addSmaps(exe+"\n00400000-00bcd000 r-xp 00000000 fe:00 1 "+exe+"\nRss: x kB\n", exe); err == nil {
		t.Error("a bad Rss line was accepted")
	}
}
