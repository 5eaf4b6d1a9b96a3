package api

import (
	"io"
	"net/http"

	"paradrop/chute"
)

// origin is who uploads r's package and on what terms (tenant.Origin), with
// the signature that came with it. It returns the package to read.
func (s *server) origin(r *http.Request) (chute.Origin, io.Reader, error) {
	o, err := s.terms(r)
	if err != nil {
		return o, nil, err
	}
	pkg, seal, err := sealedUpload(r, o.Seal)
	o.Seal = seal
	return o, pkg, err
}

// terms are the origin of r's packages, with the signing rule they are
// held to in its Seal, whatever carries them (an upload, a migration).
func (s *server) terms(r *http.Request) (chute.Origin, error) {
	id := identityOf(r)
	return s.tenants.Origin(id.developer, id.actor(), s.cfg.Signing)
}
