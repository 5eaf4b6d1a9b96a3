package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"paradrop/chute"
	"paradrop/chute/manifest"
	"paradrop/tenant"
)

// The developer endpoints, the operator's alone:
//
//	POST   /api/v1/developers                    {"name","keys","quota","allow"} -> 201 {"name","token","token_id"}
//	GET    /api/v1/developers                    {"developers":[...]}
//	GET    /api/v1/developers/NAME               its record and "used": what its chutes hold, in the quota's terms
//	PUT    /api/v1/developers/NAME               the same body; its tokens stay
//	DELETE /api/v1/developers/NAME[?chutes=remove]  409 while it owns chutes, unless they are removed with it
//	POST   /api/v1/developers/NAME/tokens        [{"expires": RFC 3339}] -> 201 {"id","token","expires"}
//	DELETE /api/v1/developers/NAME/tokens/ID
//
// A token is in the answer that makes it and nowhere else.
//
// Every identity may ask who it is:
//
//	GET    /api/v1/whoami                        {"actor"[, "developer": its own record and "used"]}

// maxDeveloperBody bounds a developer's JSON: MaxKeys key lines and a few
// lists fit in far less.
const maxDeveloperBody = 16 << 10

func (s *server) routeDevelopers() {
	s.handle("POST /api/v1/developers", scopeOperator, s.createDeveloper)
	s.handle("GET /api/v1/developers", scopeOperator, s.listDevelopers)
	s.handle("GET /api/v1/developers/{dev}", scopeOperator, s.getDeveloper)
	s.handle("PUT /api/v1/developers/{dev}", scopeOperator, s.setDeveloper)
	s.handle("DELETE /api/v1/developers/{dev}", scopeOperator, s.deleteDeveloper)
	s.handle("POST /api/v1/developers/{dev}/tokens", scopeOperator, s.addToken)
	s.handle("DELETE /api/v1/developers/{dev}/tokens/{id}", scopeOperator, s.revokeToken)
	s.handle("GET /api/v1/whoami", scopeAny, s.whoami)
}

// developerView is a developer as the API shows it: its record, and what
// its chutes hold against its quota as admission counts it (a zero quota
// field is no bound; what is held is reported all the same).
type developerView struct {
	tenant.Developer
	Used tenant.Quota `json:"used"`
}

func (s *server) viewOf(d tenant.Developer) developerView {
	h := s.cfg.Chutes.HeldBy(chute.Owner(d.Name))
	return developerView{Developer: d, Used: tenant.Quota{
		Chutes: h.Chutes, CPU: h.CPU, Memory: manifest.Bytes(h.Memory), Disk: manifest.Bytes(h.Disk), Egress: manifest.Rate(h.Egress),
	}}
}

type whoamiResponse struct {
	Actor     string         `json:"actor"`
	Developer *developerView `json:"developer,omitempty"`
}

// whoami tells the caller who it is, and a developer its own record: its
// quota and what it uses of it, its keys, allowances and tokens (never
// another's: that is the operator's GET /api/v1/developers/NAME).
func (s *server) whoami(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := identityOf(r)
	out := whoamiResponse{Actor: id.String()}
	if id.developer != "" {
		d, err := s.tenants.Get(id.developer)
		if err != nil {
			fail(w, err)
			return
		}
		v := s.viewOf(d)
		out.Developer = &v
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeObject reads one JSON object of at most limit bytes into v and
// nothing after it; an unknown field is refused so that a typo does not
// silently leave something unset.
func decodeObject(body io.Reader, limit int64, what string, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, io.NopCloser(body), limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: empty body, want a JSON object", what)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: more than one JSON value in the body", what)
	}
	return nil
}

// badBody answers a body decodeObject refused: 413 if too large, else 400.
func badBody(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		fail(w, err)
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
}

type newDeveloper struct {
	Name    string `json:"name"`
	Token   string `json:"token"`
	TokenID string `json:"token_id"`
}

// specOf reads a developer body; on error it has answered.
func specOf(w http.ResponseWriter, r *http.Request) (tenant.Spec, bool) {
	var spec tenant.Spec
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return spec, false
	}
	if err := decodeObject(r.Body, maxDeveloperBody, "developer", &spec); err != nil {
		badBody(w, err)
		return spec, false
	}
	return spec, true
}

func (s *server) createDeveloper(w http.ResponseWriter, r *http.Request) {
	spec, ok := specOf(w, r)
	if !ok {
		return
	}
	// A deleted developer's chutes that outlived it (one installing as it
	// was deleted) would be a new developer's of the same name.
	if owned := s.ownedBy(spec.Name); len(owned) > 0 {
		writeError(w, http.StatusConflict, fmt.Sprintf("chutes %s belong to a former developer %q: remove them before reusing the name", strings.Join(owned, ", "), spec.Name))
		return
	}
	d, token, err := s.tenants.Create(spec)
	if err != nil {
		fail(w, err)
		return
	}
	// Nor the data kept by a former developer of the name after it was
	// deleted (a removal with keep_data queued before): dropped before
	// the new one has its token.
	if dropped, err := s.cfg.Chutes.DropKept(chute.Owner(d.Name)); err != nil || len(dropped) > 0 {
		s.cfg.Logf("developer %s: dropped kept data of a former developer of the name: %v %v", d.Name, dropped, err)
	}
	s.cfg.Logf("%s created developer %s", identityOf(r), d.Name)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, newDeveloper{Name: d.Name, Token: token, TokenID: d.Tokens[0].ID})
}

func (s *server) listDevelopers(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	list, err := s.tenants.List()
	if err != nil {
		fail(w, err)
		return
	}
	views := make([]developerView, len(list))
	for i, d := range list {
		views[i] = s.viewOf(d)
	}
	writeJSON(w, http.StatusOK, map[string][]developerView{"developers": views})
}

func (s *server) getDeveloper(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, err := s.tenants.Get(r.PathValue("dev"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.viewOf(d))
}

func (s *server) setDeveloper(w http.ResponseWriter, r *http.Request) {
	spec, ok := specOf(w, r)
	if !ok {
		return
	}
	d, err := s.tenants.Set(r.PathValue("dev"), spec)
	if err != nil {
		fail(w, err)
		return
	}
	s.cfg.Logf("%s changed developer %s", identityOf(r), d.Name)
	writeJSON(w, http.StatusOK, s.viewOf(d))
}

type deletedDeveloper struct {
	Name    string   `json:"name"`
	Changes []uint64 `json:"changes"` // the removals of its chutes
	// KeptDropped are the chutes whose kept data was deleted with it: no
	// one may take it back, and a new developer of its name must not.
	KeptDropped []string `json:"kept_dropped"`
}

// deleteDeveloper deletes a developer, and with ?chutes=remove its chutes:
// the developer first, so that it cannot install more while they go.
func (s *server) deleteDeveloper(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.RawQuery, "chutes")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	removeChutes := false
	switch v, ok := q["chutes"]; {
	case ok && v == "remove":
		removeChutes = true
	case ok:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query: chutes=%q: the only value is remove", v))
		return
	}
	name := r.PathValue("dev")
	if _, err := s.tenants.Get(name); err != nil {
		fail(w, err)
		return
	}
	owned := s.ownedBy(name)
	if len(owned) > 0 && !removeChutes {
		writeError(w, http.StatusConflict, fmt.Sprintf("developer %q owns chutes %s: remove them first, or delete with ?chutes=remove", name, strings.Join(owned, ", ")))
		return
	}
	if err := s.tenants.Delete(name); err != nil {
		fail(w, err)
		return
	}
	s.recheck() // its requests under way end before this answers
	s.cfg.Logf("%s deleted developer %s", identityOf(r), name)
	out := deletedDeveloper{Name: name, Changes: []uint64{}, KeptDropped: []string{}}
	var failed []string
	for _, c := range owned {
		ch, err := s.cfg.Chutes.Remove(c, false, identityOf(r).actor())
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c, err))
			continue
		}
		out.Changes = append(out.Changes, ch.ID)
	}
	dropped, err := s.cfg.Chutes.DropKept(chute.Owner(name))
	out.KeptDropped = append(out.KeptDropped, dropped...)
	if err != nil {
		failed = append(failed, err.Error())
	}
	if len(failed) > 0 {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("developer %q deleted, but not all of its chutes or kept data could be removed: %s", name, strings.Join(failed, "; ")))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// ownedBy lists the chutes of developer name, by name.
func (s *server) ownedBy(name string) []string {
	var owned []string
	for _, c := range s.cfg.Chutes.List() {
		if name != "" && c.Owner == chute.Owner(name) {
			owned = append(owned, c.Name)
		}
	}
	sort.Strings(owned)
	return owned
}

type tokenRequest struct {
	Expires *time.Time `json:"expires"`
}

type newToken struct {
	ID      string     `json:"id"`
	Token   string     `json:"token"`
	Expires *time.Time `json:"expires,omitempty"`
}

func (s *server) addToken(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req tokenRequest
	if r.ContentLength != 0 {
		if err := decodeObject(r.Body, maxDeveloperBody, "token", &req); err != nil {
			badBody(w, err)
			return
		}
	}
	t, token, err := s.tenants.AddToken(r.PathValue("dev"), req.Expires)
	if err != nil {
		fail(w, err)
		return
	}
	s.cfg.Logf("%s added token %s of developer %s", identityOf(r), t.ID, r.PathValue("dev"))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, newToken{ID: t.ID, Token: token, Expires: t.Expires})
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	name, id := r.PathValue("dev"), r.PathValue("id")
	if err := s.tenants.RevokeToken(name, id); err != nil {
		fail(w, err)
		return
	}
	s.recheck() // the requests under way with it end before this answers
	s.cfg.Logf("%s revoked token %s of developer %s", identityOf(r), id, name)
	writeJSON(w, http.StatusOK, map[string]string{"name": name, "revoked": id})
}
