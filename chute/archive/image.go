package archive

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// flatten turns the staged image.tar into the rootfs tree.
func (p *pkg) flatten() error {
	img, err := p.openImage()
	if err != nil {
		return err
	}
	t, err := newTree(p.ctx, p.destFD, rootfsDir, p.budget, true)
	if err != nil {
		return err
	}
	p.rootfs = t

	// mutate.Extract applies whiteouts and writes the merged layers as one
	// tar stream, which gets the same checks as a rootfs/ tree.
	rc := mutate.Extract(img)
	defer rc.Close()
	return p.copyEntries(t, tar.NewReader(rc), "reading image")
}

// copyEntries checks and writes every entry of tr into t; problem names
// what tr is in the error of a broken stream.
func (p *pkg) copyEntries(t *tree, tr *tar.Reader, problem string) error {
	for {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return refuse(ErrInvalid, "image.tar", "%s: %v", problem, err)
		}
		name := "image.tar:" + hdr.Name
		rel, err := cleanName(hdr.Name)
		if err != nil {
			return relabel(err, name)
		}
		src := &trackedReader{r: tr}
		if err := t.entry(hdr, name, rel, "", src); err != nil {
			if src.err != nil {
				return refuse(ErrInvalid, name, "%s: %v", problem, src.err)
			}
			return err
		}
	}
}

// openImage reads image.tar as a `docker save` archive (it has
// manifest.json) or else as an OCI image layout (it has oci-layout).
func (p *pkg) openImage() (v1.Image, error) {
	imgPath := filepath.Join(p.dest, imageTar)
	docker, oci, err := imageKind(imgPath)
	if err != nil {
		return nil, err
	}
	switch {
	case docker:
		img, err := tarball.Image(func() (io.ReadCloser, error) { return os.Open(imgPath) }, nil)
		if err != nil {
			return nil, refuse(ErrInvalid, "image.tar", "docker save archive: %v", err)
		}
		return img, nil
	case oci:
		// layout reads blobs by path, so the layout is unpacked first, with
		// no links at all: one could make it read a file of the host.
		t, err := newTree(p.ctx, p.destFD, imageLayout, p.budget, false)
		if err != nil {
			return nil, err
		}
		defer t.close()
		if err := p.unpackLayout(t, imgPath); err != nil {
			return nil, err
		}
		idx, err := layout.ImageIndexFromPath(filepath.Join(p.dest, imageLayout))
		if err != nil {
			return nil, refuse(ErrInvalid, "image.tar", "OCI image layout: %v", err)
		}
		return pickImage(idx, 0)
	}
	return nil, refuse(ErrInvalid, "image.tar", "neither a docker save archive nor an OCI image layout")
}

func imageKind(imgPath string) (docker, oci bool, err error) {
	f, err := os.Open(imgPath)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return docker, oci, nil
		}
		if err != nil {
			return false, false, refuse(ErrInvalid, "image.tar", "corrupt archive: %v", err)
		}
		switch filepath.Clean(hdr.Name) {
		case "manifest.json":
			docker = true
		case "oci-layout":
			oci = true
		}
	}
}

func (p *pkg) unpackLayout(t *tree, imgPath string) error {
	f, err := os.Open(imgPath)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := p.copyEntries(t, tar.NewReader(f), "corrupt archive"); err != nil {
		return err
	}
	return t.finish()
}

// pickImage returns the index's only image, or the one for this machine's
// platform when there are several (as in a multi-platform build).
func pickImage(idx v1.ImageIndex, depth int) (v1.Image, error) {
	if depth > 2 {
		return nil, refuse(ErrInvalid, "image.tar", "image indexes nested too deep")
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, refuse(ErrInvalid, "image.tar", "image index: %v", err)
	}
	var cands []v1.Descriptor
	for _, d := range m.Manifests {
		if d.MediaType.IsImage() || d.MediaType.IsIndex() {
			cands = append(cands, d)
		}
	}
	if len(cands) > 1 {
		var mine []v1.Descriptor
		for _, d := range cands {
			if d.Platform != nil && d.Platform.OS == runtime.GOOS && d.Platform.Architecture == runtime.GOARCH {
				mine = append(mine, d)
			}
		}
		cands = mine
	}
	if len(cands) != 1 {
		return nil, refuse(ErrInvalid, "image.tar", "want one image for %s/%s, found %d", runtime.GOOS, runtime.GOARCH, len(cands))
	}
	d := cands[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, refuse(ErrInvalid, "image.tar", "image index %s: %v", d.Digest, err)
		}
		return pickImage(child, depth+1)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return nil, refuse(ErrInvalid, "image.tar", "image %s: %v", d.Digest, err)
	}
	return img, nil
}

// relabel names an image entry in an *Error from cleanName.
func relabel(err error, name string) error {
	if e, ok := err.(*Error); ok {
		e.Path = name
	}
	return err
}
