package api

import (
	"fmt"
	"net/http"
	"time"

	"paradrop/chute"
	"paradrop/chute/manifest"
)

// selfInfo is what GET /api/v1/self tells a chute of itself.
type selfInfo struct {
	chute.Info
	// Resources are those it is held to now: its manifest's under the
	// operator's current policy.
	Resources manifest.Resources `json:"resources"`
	// Usage is its latest usage sample, if it has one yet.
	Usage *chuteSample `json:"usage,omitempty"`
}

// selfUsageWindow is how far back the latest sample is looked for.
const selfUsageWindow = time.Minute

// self answers a chute about itself.
func (s *server) self(w http.ResponseWriter, r *http.Request) {
	name := identityOf(r).chute
	info, err := s.cfg.Chutes.Get(name)
	if err != nil {
		fail(w, err)
		return
	}
	res, err := s.cfg.Chutes.Resources(name)
	if err != nil {
		fail(w, err)
		return
	}
	out := selfInfo{Info: info, Resources: res}
	series, err := s.cfg.Chutes.Usage(selfUsageWindow)
	if err != nil {
		fail(w, err)
		return
	}
	for i := len(series.Samples) - 1; i >= 0; i-- {
		if c, ok := series.Samples[i].Chutes[name]; ok {
			out.Usage = &chuteSample{T: series.Samples[i].T, ChuteSample: c}
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// chuteReach refuses a chute's request for any route but its own info: 403,
// and 404 for a route naming another chute, which it may not learn exists
// (ownChute answers those). Other identities pass.
func chuteReach(id identity, sc scope) (ok bool, code int, msg string) {
	switch {
	case id.chute == "" && sc == scopeSelf:
		return false, http.StatusForbidden, "only a chute may ask about itself"
	case id.chute == "", sc == scopeSelf, sc == scopeChute:
		return true, 0, ""
	}
	return false, http.StatusForbidden, fmt.Sprintf("chute %s may only read GET /api/v1/self", id.chute)
}

// ForChute serves h to the running chute name alone, as on its own socket:
// a request without that chute's token is refused before h sees it.
func ForChute(h http.Handler, name string, chutes Chutes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token, ok := bearerToken(r); ok {
			if c, ok := chutes.ChuteOfToken(token); ok && c == name {
				h.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="paradrop"`)
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusUnauthorized, "this socket serves chute "+name+" with its token (/paradrop/token)")
	})
}
