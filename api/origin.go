package api

import (
	"fmt"
	"io"
	"net/http"

	"paradrop/chute"
	"paradrop/chute/signature"
)

// origin is who uploads r's package and on what terms: the operator's
// packages are checked against the gateway's trusted keys and may ask for
// what serve allows; a developer's must be signed by one of its own keys
// (unless the operator allowed it unsigned) and may ask only for what the
// operator allowed it. It returns the package to read.
func (s *server) origin(r *http.Request) (chute.Origin, io.Reader, error) {
	o, sign, err := s.terms(r)
	if err != nil {
		return o, nil, err
	}
	pkg, seal, err := sealedUpload(r, sign)
	o.Seal = seal
	return o, pkg, err
}

// terms are the origin of r's packages and the signing rule they are
// held to, whatever carries them (an upload, a migration).
func (s *server) terms(r *http.Request) (chute.Origin, Signing, error) {
	id := identityOf(r)
	o := chute.Origin{Owner: id.owner(), Actor: id.actor()}
	sign := s.cfg.Signing
	if !id.operator() {
		d, err := s.tenants.Get(id.developer)
		if err != nil {
			return o, sign, err
		}
		sign = Signing{Required: !d.Allow.Unsigned}
		for _, line := range d.Keys {
			k, err := signature.ParseKey(line)
			if err != nil {
				return o, sign, fmt.Errorf("developer %s: key %q: %w", d.Name, line, err)
			}
			sign.Keys = append(sign.Keys, k)
		}
		o.Allow = &chute.Privileges{Devices: d.Allow.Devices, Capabilities: d.Allow.Capabilities}
	}
	o.Seal = chute.Seal{Keys: sign.Keys, Required: sign.Required}
	return o, sign, nil
}
