package signature

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"aead.dev/minisign"
)

// ErrEncryptedKey: a secret key protected by a password, which Sign does
// not ask for.
var ErrEncryptedKey = fmt.Errorf("secret key is password-protected: sign with minisign -S and pass the .minisig instead")

// Sign signs what r holds with the password-less minisign secret key
// keyText (minisign -G -W's .sec file), as minisign -S would (prehashed,
// with a trusted comment naming name), and returns the .minisig content.
func Sign(r io.Reader, name string, keyText []byte) ([]byte, error) {
	if minisign.IsEncrypted(keyText) {
		return nil, ErrEncryptedKey
	}
	var key minisign.PrivateKey
	if err := key.UnmarshalText(keyText); err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	mr := minisign.NewReader(r)
	if _, err := io.Copy(io.Discard, mr); err != nil {
		return nil, err
	}
	trusted := "timestamp:" + strconv.FormatInt(time.Now().Unix(), 10) + "\tfile:" + filepath.Base(name) + "\thashed"
	return mr.SignWithComments(key, trusted, "signature from minisign secret key"), nil
}
