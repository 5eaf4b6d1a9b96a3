package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"paradrop/api"
	"paradrop/chute/signature"
)

// signingFlags adds --trusted-keys and --require-signed: the minisign keys
// the operator's packages may be signed with, and whether they must be.
func signingFlags(fs *flag.FlagSet, s *api.Signing) {
	fs.Func("trusted-keys", "file of minisign public keys trusted to sign packages, one per line or .pub files' content; a signature that comes with a package is always verified against them", func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		keys, err := signature.ParseKeys(b)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if len(keys) == 0 {
			return fmt.Errorf("%s holds no public key", path)
		}
		s.Keys = append(s.Keys, keys...)
		return nil
	})
	fs.BoolVar(&s.Required, "require-signed", false, "refuse packages without a valid signature by one of --trusted-keys")
}

// checkSigning refuses a rule no package could pass.
func checkSigning(s api.Signing) error {
	if s.Required && len(s.Keys) == 0 {
		return errors.New("--require-signed needs --trusted-keys FILE")
	}
	return nil
}

// keyIDs lists keys' IDs for the startup log.
func keyIDs(keys []signature.Key) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID()
	}
	return strings.Join(ids, ", ")
}
