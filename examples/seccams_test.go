package examples

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"os"
	"testing"
	"time"

	"paradrop/chute/manifest"
)

// The SecCams package: a valid manifest reaching the camera on the LAN
// and the WAN, and a static executable program in a busybox image.
func TestSecCamsPackage(t *testing.T) {
	if _, err := os.Stat(Busybox); err != nil {
		t.Skip("needs busybox-static")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pkg, err := SecCams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := checkGoChute(t, pkg, "seccams")
	if !m.Net.WAN || len(m.Net.LAN) != 1 || m.Net.LAN[0].IP == "" || m.Env["SECCAMS_ALERT_URL"] == "" {
		t.Errorf("manifest: %+v", m)
	}
}

// The HD stream package: its page exposed on the gateway's port 8004, a
// static executable program in a busybox image.
func TestHDStreamPackage(t *testing.T) {
	if _, err := os.Stat(Busybox); err != nil {
		t.Skip("needs busybox-static")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pkg, err := HDStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := checkGoChute(t, pkg, "hdstream")
	if len(m.Net.Expose) != 1 || m.Net.Expose[0].GatewayPort != 8004 {
		t.Errorf("manifest: %+v", m.Net)
	}
}

// checkGoChute checks a chute package of a static Go program at /bin/bin
// in a busybox image and returns its manifest.
func checkGoChute(t *testing.T, pkg []byte, bin string) *manifest.Manifest {
	t.Helper()
	hdrs, bodies := entries(t, pkg)
	m, err := manifest.Parse(bodies["chute.yaml"])
	if err != nil {
		t.Fatalf("chute.yaml: %v", err)
	}
	if m.Command[0] != "/bin/"+bin {
		t.Errorf("command %v", m.Command)
	}
	h := hdrs["rootfs/bin/"+bin]
	if h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
		t.Fatalf("rootfs/bin/%s: %+v", bin, h)
	}
	f, err := elf.NewFile(bytes.NewReader(bodies["rootfs/bin/"+bin]))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the program is dynamically linked: the image has no loader")
		}
	}
	if h := hdrs["rootfs/bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink {
		t.Errorf("no busybox shell: %+v", h)
	}
	return m
}
