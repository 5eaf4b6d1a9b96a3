package chute

import (
	"fmt"
	"io"
	"os"

	"paradrop/chute/signature"
)

// Seal is what an uploaded package's signature must satisfy. The caller
// chooses it: it knows who uploads and which keys that one signs with.
type Seal struct {
	// Signature is the .minisig content that came with the package; nil
	// when none came.
	Signature []byte
	// Keys are the keys trusted to sign the package.
	Keys []signature.Key
	// Required refuses a package without a valid signature. Without it a
	// signature that came is still verified: a bad one is never ignored.
	Required bool
	// Trailer, if set, reads the rest of the upload once the package has
	// been read to its end, and returns the signature, if any, that came
	// after the package (a multipart form's later part) or Signature.
	Trailer func() ([]byte, error)
}

// check tells whether the package must be verified, and with which
// signature. It refuses before the package is read what can be refused
// without it: a missing or malformed signature, a key not trusted.
func (s Seal) check() (*signature.Signature, error) {
	if len(s.Signature) == 0 {
		if s.Required && s.Trailer == nil {
			return nil, fmt.Errorf("%w: this gateway requires a signature by a trusted key", signature.ErrMissing)
		}
		return nil, nil
	}
	sig, err := signature.ParseSignature(s.Signature)
	if err != nil {
		return nil, err
	}
	if _, err := signature.KeyFor(sig, s.Keys); err != nil {
		return nil, err
	}
	return &sig, nil
}

// spool copies pkg to a new file at path, bounded by max bytes, and returns
// it positioned at its start; on error the file is removed.
func spool(pkg io.Reader, path string, max int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("stage package: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(pkg, max+1))
	switch {
	case err != nil:
		err = fmt.Errorf("read package: %w", err)
	case n > max:
		err = fmt.Errorf("%w: package larger than %d bytes", ErrTooLarge, max)
	default:
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// verifySpooled checks the spooled package f against the seal, whose
// signature may have come after the package, and returns the ID of the key
// that signed ("" for an unsigned package the seal lets through) and the
// signature verified, with f back at its start.
func verifySpooled(f *os.File, s Seal, sig *signature.Signature) (keyID string, verified []byte, err error) {
	if s.Trailer != nil {
		b, err := s.Trailer()
		if err != nil {
			return "", nil, err
		}
		s.Signature, s.Trailer = b, nil
		if sig, err = s.check(); err != nil {
			return "", nil, err
		}
	}
	if sig == nil {
		return "", nil, nil
	}
	key, err := signature.Verify(f, *sig, s.Keys)
	if err != nil {
		return "", nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", nil, err
	}
	return key.ID(), s.Signature, nil
}
