package chute

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loopsBacking returns the loop devices (name and major:minor) still bound
// to image, deleted since or not.
func loopsBacking(image string) []string {
	if r, err := filepath.EvalSymlinks(image); err == nil {
		image = r
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var devs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if back := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)"); back != image {
			continue
		}
		dir := filepath.Dir(filepath.Dir(f))
		dev, _ := os.ReadFile(filepath.Join(dir, "dev"))
		devs = append(devs, filepath.Base(dir)+" ("+strings.TrimSpace(string(dev))+")")
	}
	return devs
}

// loopHolders says which threads have a mount of the devices ("loopN
// (MAJ:MIN)", as loopsBacking returns them) in their mount namespace:
// per thread, since a thread may have unshared its own.
func loopHolders(devs []string) string {
	want := map[string]bool{}
	for _, d := range devs {
		if i := strings.Index(d, "("); i >= 0 {
			want[strings.Trim(d[i:], "()")] = true
		}
	}
	// By mount namespace; the test's own is not a holder: the host
	// unmounted the image there.
	own, _ := os.Readlink("/proc/thread-self/ns/mnt")
	seen := map[string]bool{own: true}
	var out []string
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*")
	for _, task := range tasks {
		ns, err := os.Readlink(filepath.Join(task, "ns", "mnt"))
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		mi, err := os.ReadFile(filepath.Join(task, "mountinfo"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(line); len(f) > 4 && want[f[2]] {
				proc := filepath.Dir(filepath.Dir(task))
				comm, _ := os.ReadFile(filepath.Join(task, "comm"))
				cmd, _ := os.ReadFile(filepath.Join(proc, "cmdline"))
				cwd, _ := os.Readlink(filepath.Join(proc, "cwd")) // whose test started it
				out = append(out, fmt.Sprintf("%s %s (%s: %s, in %s) mounts it at %s", task, ns,
					strings.TrimSpace(string(comm)), strings.Join(strings.Fields(strings.ReplaceAll(string(cmd), "\x00", " ")), " "), cwd, f[4]))
				break
			}
		}
	}
	if len(out) == 0 {
		return "no other mount namespace mounts it (an open file, or the kernel still releasing it)"
	}
	return strings.Join(out, "; ")
}

// waitReleased waits until no loop device is bound to image any more, and
// fails the test naming who holds it if one still is after d.
func waitReleased(t *testing.T, image string, d time.Duration, what string) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	var first string // who held it when first seen
	for {
		devs := loopsBacking(image)
		if len(devs) == 0 {
			if waited := time.Since(start); waited > 100*time.Millisecond {
				t.Logf("%s: %s released after %s; held at first by: %s", what, image, waited.Round(time.Millisecond), first)
			}
			return
		}
		if first == "" {
			first = loopHolders(devs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s still bound to %s after %s: %s", what, strings.Join(devs, ", "), image, d, loopHolders(devs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const sleeper = `
name: %s
version: 1.0.0
command: ["/bin/sh", "-c", "exec sleep 1000"]
`

// A shim's thread that clones the chute's init works in a mount namespace
// of its own, a copy of the host's with every chute's /data in it. Kept
// for the chute's life, it held the /data of another chute that the host
// unmounted meanwhile (as the daemon does to grow a volume offline, see
// volume.Ensure), with its loop device, until the chute of the shim
// ended: on a host whose mounts are private, as OpenWrt's are, an unmount
// does not reach such copies. The next mount of that image then failed,
// "image in use through loop device". (Removing a chute also removes its
// mountpoint, which the kernel unmounts everywhere.)
func TestUnmountedDataNotHeldByOtherShims(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, fmt.Sprintf(sleeper, "first"), nil))
	g.install(pkg(t, fmt.Sprintf(sleeper, "second"), nil)) // its shim starts while first's /data is mounted
	image := g.m.paths.dataImage("first")
	if devs := loopsBacking(image); len(devs) != 1 {
		t.Fatalf("loop devices of first's /data: %v, want one", devs)
	}
	g.mustDo(g.m.Stop("first", ""))
	if err := syscall.Unmount(g.m.paths.data("first"), 0); err != nil {
		t.Fatal(err)
	}
	waitReleased(t, image, 5*time.Second, "first's /data unmounted while second runs")
	g.mustDo(g.m.Start("first", ""))
	if in, _ := g.m.Get("first"); in.State != Running {
		t.Errorf("first after its start: %+v", in)
	}
}
