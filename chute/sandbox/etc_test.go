package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paradrop/chute/sandbox"
)

// etcSpec is a chute given the gateway's resolv.conf and hosts.
func etcSpec(t *testing.T, script string) sandbox.Spec {
	s := newSpec(t, "etc", script)
	s.Etc = []sandbox.EtcFile{
		{Name: "resolv.conf", Data: []byte("nameserver 192.0.2.1\n")},
		{Name: "hosts", Data: []byte("127.0.0.1 localhost\n192.0.2.7 etc\n192.0.2.1 gateway.paradrop\n")},
	}
	return s
}

func TestEtcFiles(t *testing.T) {
	script := `cat /etc/resolv.conf /etc/hosts
head -1 /etc/passwd 2>/dev/null
[ -x /etc/run.sh ] && /etc/run.sh
for f in /etc/resolv.conf /etc/hosts; do
	echo x >> $f && echo "wrote $f"
	rm -f $f && echo "removed $f"
done
touch /etc/new && echo "created /etc/new"
mount -o remount,rw /etc && echo "remounted /etc"
grep " /etc " /proc/self/mountinfo | cut -d' ' -f6
true`
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, rootfs string)
	}{
		{"image has the files", func(t *testing.T, rootfs string) {
			for _, f := range []string{"etc/resolv.conf", "etc/hosts"} {
				if err := os.WriteFile(filepath.Join(rootfs, f), []byte("# the image's\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(rootfs, "etc/run.sh"), []byte("#!/bin/sh\necho ran from etc\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"image lacks them", func(t *testing.T, rootfs string) {}},
		// Like proc or tmp, the mount point is made when the rootfs
		// lets the chute's root (the chute manager makes it at install).
		{"image has no etc", func(t *testing.T, rootfs string) {
			if err := os.RemoveAll(filepath.Join(rootfs, "etc")); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(rootfs, hostIDBase, hostIDBase); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := etcSpec(t, script)
			tc.setup(t, s.Rootfs)
			st, lines := runScript(t, s)
			out := strings.Join(lines, "\n")
			if st.Code != 0 {
				t.Fatalf("exit %+v:\n%s", st, out)
			}
			for _, want := range []string{"stdout nameserver 192.0.2.1", "stdout 192.0.2.1 gateway.paradrop", "stdout 192.0.2.7 etc"} {
				if !strings.Contains(out, want+"\n") {
					t.Errorf("chute does not see %q:\n%s", want, out)
				}
			}
			if _, err := os.Stat(filepath.Join(s.Rootfs, "etc/run.sh")); err == nil && !strings.Contains(out, "stdout ran from etc\n") {
				t.Errorf("the image's program in /etc did not run:\n%s", out)
			}
			if strings.Contains(out, "the image's") {
				t.Errorf("chute sees the image's file:\n%s", out)
			}
			if strings.Contains(out, "wrote") || strings.Contains(out, "removed") || strings.Contains(out, "created") || strings.Contains(out, "remounted") {
				t.Errorf("chute changed a gateway file:\n%s", out)
			}
			for _, l := range lines {
				if o, ok := strings.CutPrefix(l, "stdout ro,"); ok || strings.HasPrefix(l, "stdout rw") {
					for _, flag := range []string{"nosuid", "nodev"} {
						if !ok || !strings.Contains(o, flag) {
							t.Errorf("mount options %q, want ro,nosuid,nodev", l)
						}
					}
				}
			}
			if n := strings.Count(out, "stdout ro,"); n != 1 {
				t.Errorf("%d read-only /etc mounts, want 1:\n%s", n, out)
			}
			_, hasEtc := os.Stat(filepath.Join(s.Rootfs, "etc/passwd"))
			if hasEtc == nil && !strings.Contains(out, "stdout root:x:0:0:") {
				t.Errorf("the image's other /etc files are gone:\n%s", out)
			}
			for _, f := range []string{"etc/resolv.conf", "etc/hosts"} {
				if b, err := os.ReadFile(filepath.Join(s.Rootfs, f)); err == nil && string(b) != "# the image's\n" {
					t.Errorf("the image's %s was written: %q", f, b)
				}
			}
			if tc.name == "image lacks them" {
				for _, f := range []string{"etc/resolv.conf", "etc/hosts", "etc/new"} {
					if _, err := os.Lstat(filepath.Join(s.Rootfs, f)); err == nil {
						t.Errorf("%s was made in the image", f)
					}
				}
			}
		})
	}
}

// TestEtcSymlinkEscape: an image whose /etc/resolv.conf or /etc is a
// symlink out of its root must not make the host mount over, or write
// to, what it names. The file is replaced in the chute's overlay; a
// symlinked etc, which init would follow, is refused.
func TestEtcSymlinkEscape(t *testing.T) {
	for _, tc := range []struct {
		name, link, target string
		starts             bool
	}{
		{"resolv.conf", "etc/resolv.conf", "/../../%s/passwd", true},
		{"relative resolv.conf", "etc/resolv.conf", "../../../../../../../..%s/passwd", true},
		{"etc", "etc", "/../..%s", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim := t.TempDir()
			for _, f := range []string{"passwd", "resolv.conf", "hosts"} {
				if err := os.WriteFile(filepath.Join(victim, f), []byte("host\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := etcSpec(t, "cat /etc/resolv.conf")
			link := filepath.Join(s.Rootfs, tc.link)
			if err := os.RemoveAll(link); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(strings.Replace(tc.target, "%s", victim, 1), link); err != nil {
				t.Fatal(err)
			}
			c, err := sandbox.Start(context.Background(), s)
			switch {
			case tc.starts && err != nil:
				t.Errorf("Start: %v", err)
			case tc.starts:
				if st := wait(t, c); st.Code != 0 {
					t.Errorf("exit %+v", st)
				}
				if lines := logLines(t, s.LogDir); len(lines) != 1 || lines[0] != "stdout nameserver 192.0.2.1" {
					t.Errorf("chute's resolv.conf: %q", lines)
				}
			case err == nil:
				st := wait(t, c)
				t.Errorf("chute with %s a symlink out of its root started (exit %+v): %q", tc.link, st, logLines(t, s.LogDir))
			case !strings.Contains(err.Error(), "no place for the gateway's /etc files"):
				t.Errorf("Start: %v, want a refused etc", err)
			}
			for _, f := range []string{"passwd", "resolv.conf", "hosts"} {
				if b, err := os.ReadFile(filepath.Join(victim, f)); err != nil || string(b) != "host\n" {
					t.Errorf("host's %s now %q, %v", f, b, err)
				}
			}
			if target, err := os.Readlink(link); err != nil || !strings.Contains(target, victim) {
				t.Errorf("the image's symlink is now %q, %v", target, err)
			}
			noHostMountAt(t, victim)
		})
	}
}
