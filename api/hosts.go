package api

import (
	"net/http"

	"paradrop/chute"
)

type hostsResponse struct {
	Hosts []chute.Host `json:"hosts"`
}

// routeHosts registers GET /api/v1/hosts: the LAN devices the gateway
// sees. They are the household's, so the operator's alone: a developer's
// chute learns of a device only by being bound to it (follow-me).
func (s *server) routeHosts() {
	s.handle("GET /api/v1/hosts", scopeOperator, func(w http.ResponseWriter, r *http.Request) {
		if _, err := parseQuery(r.URL.RawQuery); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if s.cfg.Network == nil {
			writeError(w, http.StatusNotFound, "networking disabled")
			return
		}
		hosts := s.cfg.Chutes.Hosts()
		if hosts == nil {
			hosts = []chute.Host{}
		}
		writeJSON(w, http.StatusOK, hostsResponse{Hosts: hosts})
	})
}
