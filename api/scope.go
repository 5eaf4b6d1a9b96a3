package api

import (
	"context"
	"fmt"
	"net/http"

	"paradrop/chute"
)

// identity is who makes a request: the operator (with its token or a
// password session), a developer by name, or a running chute by name (with
// the token it was given at its start).
type identity struct {
	developer string
	chute     string
}

func (id identity) operator() bool { return id.developer == "" && id.chute == "" }

// String is the actor a change or a log line names.
func (id identity) String() string {
	switch {
	case id.chute != "":
		return "chute:" + id.chute
	case id.developer != "":
		return "developer:" + id.developer
	}
	return "operator"
}

func (id identity) owner() chute.Owner { return chute.Owner(id.developer) }

func (id identity) actor() chute.Actor { return chute.Actor(id.String()) }

type identityKey struct{}

// identityOf is the identity ServeHTTP resolved for r; the operator for
// the routes that need no token.
func identityOf(r *http.Request) identity {
	id, _ := r.Context().Value(identityKey{}).(identity)
	return id
}

// scope is who may call a route.
type scope int

const (
	// scopeOpen needs no token.
	scopeOpen scope = iota + 1
	// scopeOperator is the operator's alone: a developer gets 403.
	scopeOperator
	// scopeAny is for every identity; the handler shows a developer only
	// what is its own.
	scopeAny
	// scopeChute names a chute by {name}: a developer reaches its own
	// chutes only, and any other answers as a chute that does not exist.
	scopeChute
	// scopeSelf is a chute's, about itself: nobody else may call it.
	scopeSelf
)

// handle registers h for pattern under sc. A route registered on the mux
// any other way has no scope, which ServeHTTP refuses to developers.
func (s *server) handle(pattern string, sc scope, h http.HandlerFunc) {
	s.scopes[pattern] = sc
	if sc == scopeChute {
		h = s.ownChute(h)
	}
	s.mux.HandleFunc(pattern, h)
}

// ownChute answers a developer's request for a chute it does not own, or
// that does not exist, the same way: by what OwnerOf, which takes as long
// either way, says of a missing chute.
func (s *server) ownChute(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := identityOf(r)
		if id.chute != "" {
			// A chute acts on no chute, itself included; another one
			// does not exist as far as it knows.
			if r.PathValue("name") != id.chute {
				fail(w, fmt.Errorf("chute %q: %w", r.PathValue("name"), chute.ErrNotFound))
				return
			}
			writeError(w, http.StatusForbidden, chuteOnlySelf(id.chute))
			return
		}
		if !id.operator() {
			name := r.PathValue("name")
			if err := checkName(name); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			// Both cases take the same path.
			if owner, err := s.cfg.Chutes.OwnerOf(name); err != nil || owner != id.owner() {
				fail(w, fmt.Errorf("chute %q: %w", name, chute.ErrNotFound))
				if sw, ok := w.(*statusWriter); ok && err == nil {
					// The operator's log may say what the caller is not told.
					sw.reason += " (it is " + ownerName(owner) + "'s)"
				}
				return
			}
		}
		h(w, r)
	}
}

// ownerName is how the log names a chute's owner.
func ownerName(o chute.Owner) string {
	if o == "" {
		return "the operator"
	}
	return "developer " + string(o)
}

// stillOwn is ownChute's check made again after a handler has read what it
// shows of the chute name, before it shows it: the chute may have been
// removed and installed again by another since ownChute's check. The
// change-making calls need no such check: the manager makes it with the
// change, under its lock. On false it has answered as ownChute does.
func (s *server) stillOwn(w http.ResponseWriter, r *http.Request, name string) bool {
	id := identityOf(r)
	if id.operator() {
		return true
	}
	if owner, err := s.cfg.Chutes.OwnerOf(name); err != nil || owner != id.owner() {
		fail(w, fmt.Errorf("chute %q: %w", name, chute.ErrNotFound))
		return false
	}
	return true
}

// withIdentity returns r carrying id.
func withIdentity(r *http.Request, id identity) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
}

// visible reports whether id may see a chute of owner.
func (id identity) visible(owner chute.Owner) bool {
	return id.operator() || owner == id.owner()
}
