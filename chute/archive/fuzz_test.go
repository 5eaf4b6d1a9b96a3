package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract feeds arbitrary bytes to Extract: it must not panic, must
// write nothing outside dest, and must leave dest removable.
func FuzzExtract(f *testing.F) {
	f.Add(mkTar(f, ent{name: "chute.yaml", body: manifest}, ent{name: "rootfs/bin/sh", body: "x", mode: 0o4755},
		ent{name: "rootfs/l", typ: tar.TypeSymlink, link: "/"}, ent{name: "rootfs/h", typ: tar.TypeLink, link: "rootfs/bin/sh"}))
	f.Add(gz(f, mkTar(f, ent{name: "chute.yaml", body: manifest}, ent{name: "rootfs/a/b/"}, ent{name: "rootfs/a/b", body: "x"})))
	f.Add(mkTar(f, ent{name: "chute.yaml", body: manifest}, ent{name: "image.tar", body: string(mkTar(f,
		ent{name: "oci-layout", body: "{}"}, ent{name: "index.json", body: `{"manifests":[]}`}))}))
	f.Add(mkTar(f, ent{name: "rootfs/../x", body: "x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		dest, check := sandbox(t)
		Extract(context.Background(), bytes.NewReader(data), dest, Limits{MaxUpload: 1 << 20, MaxUnpacked: 4 << 20, MaxFiles: 200})
		check()
		if _, err := os.Stat(filepath.Dir(dest)); err != nil {
			t.Fatal(err)
		}
	})
}
