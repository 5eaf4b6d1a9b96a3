package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"paradrop/sdn"
)

// Network is what the API needs of the chutes' network; *sdn.Network
// satisfies it.
type Network interface {
	Flows(ctx context.Context, chute string) ([]sdn.Rule, error)
}

var _ Network = (*sdn.Network)(nil)

// flowsTimeout bounds the switch's answer: a stuck switch must not hang
// the request.
const flowsTimeout = 10 * time.Second

type flowsResponse struct {
	Rules []sdn.Rule `json:"rules"`
}

// routeFlows registers GET /api/v1/flows (every rule, the gateway's own
// included) and GET /api/v1/chutes/{name}/flows (one chute's), both
// {"rules": [...]} with the switch's counters.
func (s *server) routeFlows() {
	s.handle("GET /api/v1/flows", scopeOperator, func(w http.ResponseWriter, r *http.Request) {
		if _, err := parseQuery(r.URL.RawQuery); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.flows(w, r, "")
	})
	s.handle("GET /api/v1/chutes/{name}/flows", scopeChute, func(w http.ResponseWriter, r *http.Request) {
		if name, _, ok := nameAndQuery(w, r); ok {
			s.flows(w, r, name)
		}
	})
}

func (s *server) flows(w http.ResponseWriter, r *http.Request, chute string) {
	if s.cfg.Network == nil {
		writeError(w, http.StatusNotFound, "networking disabled")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), flowsTimeout)
	defer cancel()
	rules, err := s.cfg.Network.Flows(ctx, chute)
	switch {
	case errors.Is(err, sdn.ErrNotAttached):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		fail(w, err)
	case chute != "" && !s.stillOwn(w, r, chute):
	default:
		if rules == nil {
			rules = []sdn.Rule{}
		}
		writeJSON(w, http.StatusOK, flowsResponse{Rules: rules})
	}
}
