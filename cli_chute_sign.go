package main

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"

	"paradrop/chute/signature"
)

// signedForm frames the package pkg (size bytes, -1 if unknown) as a
// multipart form after the signature read from sigPath: the daemon then
// knows the signature before the package, and can refuse an untrusted key
// without reading it. It returns the body, its size and its content type.
func signedForm(pkg io.Reader, pkgName string, size int64, sigPath string) (io.Reader, int64, string, error) {
	sig, err := readSignatureFile(sigPath)
	if err != nil {
		return nil, 0, "", err
	}
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	w, err := mw.CreateFormFile("signature", filepath.Base(sigPath))
	if err != nil {
		return nil, 0, "", err
	}
	w.Write(sig)
	if _, err := mw.CreateFormFile("package", filepath.Base(pkgName)); err != nil {
		return nil, 0, "", err
	}
	tail := "\r\n--" + mw.Boundary() + "--\r\n"
	n := int64(-1)
	if size >= 0 {
		n = int64(head.Len()) + size + int64(len(tail))
	}
	return io.MultiReader(&head, pkg, bytes.NewReader([]byte(tail))), n, mw.FormDataContentType(), nil
}

// readSignatureFile reads a .minisig, refusing what the daemon would.
func readSignatureFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, signature.MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > signature.MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a minisign signature", path, signature.MaxSize)
	}
	if _, err := signature.ParseSignature(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
