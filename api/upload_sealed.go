package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"paradrop/chute"
	"paradrop/chute/signature"
	"paradrop/tenant"
)

// Signing is the operator's rule for package signatures (tenant.Signing).
type Signing = tenant.Signing

// signatureHeader carries, base64, a .minisig with a raw-body upload.
const signatureHeader = "Paradrop-Signature"

// The parts of a multipart/form-data upload (curl -F package=@app.tgz
// -F signature=@app.tgz.minisig).
const (
	packagePart   = "package"
	signaturePart = "signature"
)

// errUpload is a malformed upload request; it answers 400.
var errUpload = fmt.Errorf("%w: upload", chute.ErrInvalid)

// sealedUpload splits r into the package to stage and the seal it must
// satisfy under keys: the raw body with its signature in a header, or a
// multipart form with a package part and a signature part in either order.
// The package is never buffered: it streams from the body.
func sealedUpload(r *http.Request, seal chute.Seal) (io.Reader, chute.Seal, error) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil && strings.HasPrefix(strings.ToLower(ct), "multipart/") {
		return nil, seal, fmt.Errorf("%w: Content-Type: %v", errUpload, err)
	}
	if err != nil || mt != "multipart/form-data" {
		sig, err := headerSignature(r.Header)
		seal.Signature = sig
		return r.Body, seal, err
	}
	if r.Header.Get(signatureHeader) != "" {
		return nil, seal, fmt.Errorf("%w: a multipart upload carries its signature in a part, not in %s", errUpload, signatureHeader)
	}
	if params["boundary"] == "" {
		return nil, seal, fmt.Errorf("%w: multipart/form-data without a boundary", errUpload)
	}
	// Go's multipart reader allows part headers of up to 10 MiB; what is
	// not the package's content gets a budget of its own.
	body := &framing{r: r.Body, left: maxFraming}
	mr := multipart.NewReader(body, params["boundary"])
	seen := map[string]bool{}
	for {
		p, err := nextPart(mr, seen)
		if err != nil {
			return nil, seal, err
		}
		if p.FormName() == signaturePart {
			if seal.Signature, err = readSignaturePart(p); err != nil {
				return nil, seal, err
			}
			continue
		}
		// The package: what follows it is read once it has been staged.
		body.left = -1
		seal.Trailer = func() ([]byte, error) {
			body.left = maxFraming
			return trailer(mr, seen, seal.Signature)
		}
		return p, seal, nil
	}
}

// maxFraming bounds the bytes of a multipart upload before the package's
// content, and after it: part headers, boundaries and the signature, with
// the reader's read-ahead.
const maxFraming = 64 << 10

// errFraming is a multipart form whose framing is over maxFraming.
var errFraming = fmt.Errorf("%w: multipart form: part headers and signature longer than %d bytes", errUpload, maxFraming)

// framing counts the bytes read from a multipart body while left is not
// negative, failing past it.
type framing struct {
	r    io.Reader
	left int64 // -1: the package's content, not counted
}

func (f *framing) Read(p []byte) (int, error) {
	if f.left == 0 {
		return 0, errFraming
	}
	if f.left > 0 && int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	if f.left > 0 {
		f.left -= int64(n)
	}
	return n, err
}

// nextPart returns the next part, refusing more parts than a package and
// its signature, a part named otherwise, twice the same, or none.
func nextPart(mr *multipart.Reader, seen map[string]bool) (*multipart.Part, error) {
	p, err := mr.NextPart()
	switch {
	case errors.Is(err, io.EOF):
		if !seen[packagePart] {
			return nil, fmt.Errorf("%w: no %q part in the multipart form", errUpload, packagePart)
		}
		return nil, io.EOF
	case err != nil:
		return nil, fmt.Errorf("%w: multipart form: %v", errUpload, err)
	}
	name := p.FormName()
	switch {
	case name != packagePart && name != signaturePart:
		return nil, fmt.Errorf("%w: unexpected part %q (want %q and optionally %q)", errUpload, name, packagePart, signaturePart)
	case seen[name]:
		return nil, fmt.Errorf("%w: part %q given twice", errUpload, name)
	}
	seen[name] = true
	return p, nil
}

// trailer reads what follows the package part: at most its signature,
// then the form's end.
func trailer(mr *multipart.Reader, seen map[string]bool, sig []byte) ([]byte, error) {
	for {
		p, err := nextPart(mr, seen)
		if errors.Is(err, io.EOF) {
			return sig, nil
		}
		if err != nil {
			return nil, err
		}
		if sig, err = readSignaturePart(p); err != nil {
			return nil, err
		}
	}
}

func readSignaturePart(p *multipart.Part) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(p, signature.MaxSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: read signature part: %v", errUpload, err)
	case len(b) > signature.MaxSize:
		return nil, fmt.Errorf("%w: signature part longer than %d bytes", signature.ErrMalformed, signature.MaxSize)
	}
	return b, nil
}

// headerSignature decodes the Paradrop-Signature header, if any.
func headerSignature(h http.Header) ([]byte, error) {
	vals := h.Values(signatureHeader)
	switch {
	case len(vals) == 0:
		return nil, nil
	case len(vals) > 1:
		return nil, fmt.Errorf("%w: %s given twice", errUpload, signatureHeader)
	case base64.StdEncoding.DecodedLen(len(vals[0])) > signature.MaxSize+3:
		return nil, fmt.Errorf("%w: %s longer than %d bytes decoded", signature.ErrMalformed, signatureHeader, signature.MaxSize)
	}
	b, err := base64.StdEncoding.DecodeString(vals[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64: %v", signature.ErrMalformed, signatureHeader, err)
	}
	if len(b) > signature.MaxSize {
		return nil, fmt.Errorf("%w: %s longer than %d bytes decoded", signature.ErrMalformed, signatureHeader, signature.MaxSize)
	}
	return b, nil
}
