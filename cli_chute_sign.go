package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"

	"paradrop/chute/signature"
)

// signFlags are install's and update's ways to sign: a .minisig made
// beforehand, or a minisign secret key to sign with now.
type signFlags struct {
	sigPath, keyPath string
}

func addSignFlags(fs *flag.FlagSet) *signFlags {
	var s signFlags
	fs.StringVar(&s.sigPath, "signature", "", "minisign signature of the package (minisign -S -m PKG)")
	fs.StringVar(&s.keyPath, "sign", "", "sign the package with this password-less minisign secret key (minisign -G -W)")
	return &s
}

// signature returns the signature to send with the package f, or nil.
func (s *signFlags) signature(f *os.File) ([]byte, error) {
	switch {
	case s.sigPath != "" && s.keyPath != "":
		return nil, usagef("--signature and --sign: pass one")
	case s.sigPath != "":
		return readSignatureFile(s.sigPath)
	case s.keyPath == "":
		return nil, nil
	}
	key, err := readBounded(s.keyPath, 4096)
	if err != nil {
		return nil, err
	}
	sig, err := signature.Sign(f, f.Name(), key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.keyPath, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return sig, nil
}

// signedForm frames the package pkg (size bytes, -1 if unknown) as a
// multipart form after its signature sig: the daemon then knows the
// signature before the package, and can refuse an untrusted key without
// reading it. It returns the body, its size and its content type.
func signedForm(pkg io.Reader, pkgName string, size int64, sig []byte) (io.Reader, int64, string, error) {
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	w, err := mw.CreateFormFile("signature", filepath.Base(pkgName)+".minisig")
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
	b, err := readBounded(path, signature.MaxSize)
	if err != nil {
		return nil, err
	}
	if _, err := signature.ParseSignature(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// readBounded reads a small file, refusing one larger than max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a minisign file", path, max)
	}
	return b, nil
}
