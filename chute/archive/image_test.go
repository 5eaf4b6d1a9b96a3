package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func image(t *testing.T, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(l)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func dockerSave(t *testing.T, img v1.Image) []byte {
	t.Helper()
	ref, err := name.ParseReference("paradrop.test/web:1")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.Write(ref, img, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ociLayout writes img as an OCI image layout and tars it up.
func ociLayout(t *testing.T, img v1.Image) []byte {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	var ents []ent
	filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(dir, path)
		switch {
		case err != nil:
			t.Fatal(err)
		case rel == ".":
		case fi.IsDir():
			ents = append(ents, ent{name: rel + "/"})
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ents = append(ents, ent{name: rel, body: string(b)})
		}
		return nil
	})
	return mkTar(t, ents...)
}

func TestExtractImage(t *testing.T) {
	base := mkTar(t,
		ent{name: "bin/"},
		ent{name: "bin/busybox", body: "ELF", mode: 0o4755},
		ent{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
		ent{name: "bin/cat", typ: tar.TypeLink, link: "bin/busybox"},
		ent{name: "etc/old", body: "old"},
		ent{name: "dev/null", typ: tar.TypeChar},
	)
	top := mkTar(t,
		ent{name: "etc/.wh.old"},
		ent{name: "etc/new", body: "new", mode: 0o600},
	)
	img := image(t, base, top)
	for kind, imageTar := range map[string][]byte{"docker save": dockerSave(t, img), "OCI layout": ociLayout(t, img)} {
		t.Run(kind, func(t *testing.T) {
			pkg := mkTar(t, ent{name: "chute.yaml", body: manifest}, ent{name: "image.tar", body: string(imageTar)})
			dest, m, err := extract(t, gz(t, pkg), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if string(m) != manifest {
				t.Errorf("manifest %q", m)
			}
			root := filepath.Join(dest, "rootfs")
			if fi, err := os.Lstat(filepath.Join(root, "bin/busybox")); err != nil || fi.Mode() != 0o755 {
				t.Errorf("busybox: %v %v", fi, err)
			}
			if got, _ := os.Readlink(filepath.Join(root, "bin/sh")); got != "/bin/busybox" {
				t.Errorf("bin/sh -> %q", got)
			}
			if b, err := os.ReadFile(filepath.Join(root, "bin/cat")); err != nil || string(b) != "ELF" {
				t.Errorf("bin/cat: %q %v", b, err)
			}
			if fi, err := os.Lstat(filepath.Join(root, "etc/new")); err != nil || fi.Mode() != 0o600 {
				t.Errorf("etc/new: %v %v", fi, err)
			}
			for _, p := range []string{"etc/old", "dev/null"} {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("%s exists", p)
				}
			}
			if entries, _ := os.ReadDir(dest); len(entries) != 1 {
				t.Errorf("staged image left in dest: %v", entries)
			}
		})
	}
}

func TestExtractImageRefused(t *testing.T) {
	escape := image(t, mkTar(t,
		ent{name: "l", typ: tar.TypeSymlink, link: "/"},
		ent{name: "l/evil", body: "x"},
	))
	layoutWithLink := mkTar(t,
		ent{name: "oci-layout", body: `{"imageLayoutVersion":"1.0.0"}`},
		ent{name: "index.json", typ: tar.TypeSymlink, link: "/etc/hostname"},
	)
	for _, tc := range []struct {
		name     string
		imageTar []byte
		limits   Limits
		want     error
	}{
		// Flattening drops entries under a non-directory; sandbox checks
		// that nothing escaped.
		{"write through symlink, docker", dockerSave(t, escape), Limits{}, nil},
		{"write through symlink, OCI", ociLayout(t, escape), Limits{}, nil},
		{"link in OCI layout", layoutWithLink, Limits{}, ErrUnsafe},
		{"OCI layout without index", mkTar(t, ent{name: "oci-layout", body: "{}"}), Limits{}, ErrInvalid},
		{"two images", func() []byte {
			var buf bytes.Buffer
			a, _ := name.ParseReference("a:1")
			b, _ := name.ParseReference("b:1")
			other := image(t, mkTar(t, ent{name: "x", body: "x"}))
			if err := tarball.MultiRefWrite(map[name.Reference]v1.Image{a: escape, b: other}, &buf); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}(), Limits{}, ErrInvalid},
		{"image bomb", dockerSave(t, image(t, mkTar(t, ent{name: "z", body: string(make([]byte, 4<<20))}))),
			Limits{MaxUnpacked: 3 << 20}, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkg := mkTar(t, ent{name: "chute.yaml", body: manifest}, ent{name: "image.tar", body: string(tc.imageTar)})
			_, _, err := extract(t, pkg, tc.limits)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
