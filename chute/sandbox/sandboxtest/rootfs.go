// Package sandboxtest helps tests that run real chutes: it builds a small
// root filesystem from Debian's static busybox.
package sandboxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const busybox = "/bin/busybox"

// BusyboxRootfs fills dir with a rootfs holding a static busybox, its
// applets, the mountpoints the sandbox uses (proc, dev, sys, tmp, data,
// paradrop) and a minimal /etc. It installs Debian's busybox-static when
// /bin/busybox is missing.
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	if err := ensureBusybox(); err != nil {
		t.Fatalf("busybox-static is needed for chute tests: %v", err)
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "proc", "dev", "sys", "tmp", "data", "paradrop", "etc", "root", "mnt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyFile(busybox, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil && !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
}

func ensureBusybox() error {
	if _, err := os.Stat(busybox); err == nil {
		return nil
	}
	// Another process may hold the dpkg lock for a while: wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	install := []string{"-o", "DPkg::Lock::Timeout=300", "install", "-y", "busybox-static"}
	if err := aptGet(ctx, install...); err != nil {
		// A fresh machine may not have package lists yet.
		if uerr := aptGet(ctx, "-o", "DPkg::Lock::Timeout=300", "update"); uerr != nil {
			return uerr
		}
		if err := aptGet(ctx, install...); err != nil {
			return err
		}
	}
	_, err := os.Stat(busybox)
	return err
}

func aptGet(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %v: %v: %s", args, err, out.Bytes())
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
