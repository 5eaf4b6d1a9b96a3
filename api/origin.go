package api

import (
	"io"
	"net/http"

	"paradrop/chute"
)

// origin is who uploads r's package and on what terms (tenant.Origin), with
// the signature that came with it. It returns the package to read.
func (s *server) origin(r *http.Request) (chute.Origin, io.Reader, error) {
	id := identityOf(r)
	o, err := s.tenants.Origin(id.developer, id.actor(), s.cfg.Signing)
	if err != nil {
		return o, nil, err
	}
	pkg, seal, err := sealedUpload(r, o.Seal)
	o.Seal = seal
	return o, pkg, err
}
