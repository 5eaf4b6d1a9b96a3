package sandbox_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"paradrop/cgroup"
)

// sysProbe prints what a chute can learn of the host and of other chutes
// through /sys and /proc.
const sysProbe = `ls -R /sys/fs/cgroup /sys/block /sys/class /sys/devices/virtual/net 2>&1 | head -n 20000
for f in /sys/class/net/*/address /sys/block/loop*/loop/backing_file /sys/devices/virtual/block/loop*/loop/backing_file; do
	echo "$f: $(cat $f 2>&1)"
done
find /sys -maxdepth 4 2>/dev/null | head -n 20000
grep -rs . /sys/fs/cgroup 2>/dev/null | head -n 2000
cat /proc/self/mountinfo /proc/self/cgroup
for f in /proc/* /proc/net/* /proc/sys/fs/binfmt_misc/*; do
	case $f in /proc/kmsg|/proc/kcore|/proc/kallsyms) continue;; esac
	test -f $f && cat $f 2>/dev/null | sed "s|^|$f: |" | head -n 500
done
echo ==net; ls /sys/class/net`

// A chute, with a network namespace of its own or one the daemon made,
// sees through /sys and /proc no other chute (its cgroup, its data
// image's loop device, by path or name) and no host detail (the host's
// links and their MACs, its boot command line); its own cgroup is named "/" and its mounts show only its own
// paths.
func TestSysShowsNoHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("chute tests need root")
	}
	// A neighbour: a cgroup and a loop device backed by its data image.
	neighbour := fmt.Sprintf("neighbour-secret-%d", os.Getpid())
	testCgroup(t, "/"+neighbour, cgroup.Resources{Pids: 8})
	img := filepath.Join(t.TempDir(), neighbour+".img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	hostCmdline := strings.TrimSpace(string(cmdline))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })

	var hostMACs []string
	addrs, _ := filepath.Glob("/sys/class/net/*/address")
	for _, a := range addrs {
		b, _ := os.ReadFile(a)
		if mac := strings.TrimSpace(string(b)); mac != "" && mac != "00:00:00:00:00:00" {
			hostMACs = append(hostMACs, mac)
		}
	}
	links, _ := os.ReadDir("/sys/class/net")
	if len(hostMACs) == 0 || len(links) < 2 {
		t.Fatalf("the host has no link with a MAC to hide (%d links)", len(links))
	}

	netns := testNetNS(t)

	for _, tc := range []struct {
		name  string
		netns string
		links []string
	}{
		{"own network namespace", "", []string{"lo"}},
		{"daemon's network namespace", netns, []string{"chutelink0", "chutelink1", "lo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			group := fmt.Sprintf("/paradrop-sandbox-sys-%d", os.Getpid())
			testCgroup(t, group, cgroup.Resources{Pids: 64})
			s := newSpec(t, "sysprobe", sysProbe)
			s.NetNS = tc.netns
			s.CgroupPath = group
			s.LogMaxBytes = 64 << 20 // all of it in current.log
			st, lines := runScript(t, s)
			if st.Code != 0 {
				t.Fatalf("probe ended %+v: %q", st, lines[max(0, len(lines)-3):])
			}
			all := strings.Join(lines, "\n")
			leaks := append([]string{neighbour, img, group, hostCmdline}, hostMACs...)
			for _, l := range links {
				if l.Name() != "lo" {
					leaks = append(leaks, "/"+l.Name())
				}
			}
			for _, leak := range leaks {
				if strings.Contains(all, leak) {
					for _, l := range lines {
						if strings.Contains(l, leak) {
							t.Errorf("the chute sees %q: %q", leak, l)
							break
						}
					}
				}
			}
			// Its loop device, by name, as /proc/diskstats and
			// /proc/partitions would list it.
			if loopRE := regexp.MustCompile(`\b` + filepath.Base(loop) + `\b`); loopRE.MatchString(all) {
				t.Errorf("the chute sees the neighbour's %s: %q", filepath.Base(loop), loopRE.FindString(all))
			}
			var seen []string
			for i, l := range lines {
				if l == "stdout ==net" {
					for _, n := range lines[i+1:] {
						seen = append(seen, strings.TrimPrefix(n, "stdout "))
					}
				}
			}
			if strings.Join(seen, " ") != strings.Join(tc.links, " ") {
				t.Errorf("the chute's /sys/class/net: %q, want its own links %q", seen, tc.links)
			}
		})
	}
}
