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
	hdrs, bodies := entries(t, pkg)
	m, err := manifest.Parse(bodies["chute.yaml"])
	if err != nil {
		t.Fatalf("chute.yaml: %v", err)
	}
	if m.Command[0] != "/bin/seccams" || !m.Net.WAN || len(m.Net.LAN) != 1 || m.Net.LAN[0].IP == "" || m.Env["SECCAMS_ALERT_URL"] == "" {
		t.Errorf("manifest: %+v", m)
	}
	h := hdrs["rootfs/bin/seccams"]
	if h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
		t.Fatalf("rootfs/bin/seccams: %+v", h)
	}
	f, err := elf.NewFile(bytes.NewReader(bodies["rootfs/bin/seccams"]))
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
}
