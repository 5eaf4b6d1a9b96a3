package api

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"paradrop/chute"
	"paradrop/migrate"
)

// migrate moves a chute to the gateway the body names: the source side.
// The scope already refused a developer another's chute; the target
// decides, with the token given, whether that developer may have it there.
func (s *server) migrate(w http.ResponseWriter, r *http.Request) {
	name, q, ok := nameAndQuery(w, r, "wait")
	if !ok {
		return
	}
	wait, err := q.flag("wait")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var t migrate.Target
	if err := decodeObject(r.Body, 16<<10, "migrate", &t); err != nil {
		badBody(w, err)
		return
	}
	send, err := t.Sender()
	if err != nil {
		fail(w, err)
		return
	}
	from, _ := os.Hostname()
	c, err := s.cfg.Chutes.Migrate(name, identityOf(r).actor(), from, t.URL, send)
	s.answerChange(w, r, wait, c, err)
}

// importChute installs a chute another gateway migrates here, as its
// caller would install its package: the same signing rule, privileges and
// quota. It answers 200 only once the chute runs here, which is the
// source's signal to remove its copy.
func (s *server) importChute(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.uploads.begin(w, r) {
		return
	}
	var c chute.Change
	o, err := s.terms(r)
	if err == nil {
		// The source stops its chute only once told the package passed
		// this gateway's admission: a refusal leaves it untouched.
		c, err = s.cfg.Chutes.Import(r.Context(), r.Body, o, func() { w.WriteHeader(migrate.StatusAdmitted) })
	}
	s.uploads.end(r)
	if err != nil {
		fail(w, err)
		return
	}
	// The stream has ended; reading the body to its end lets the server
	// notice, and end r's context, if the source goes away now.
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<10))
	done, err := s.cfg.Chutes.WaitChange(r.Context(), c.ID)
	if err != nil {
		// The source left, and starts its copy again: this one must not
		// run beside it. The removal waits for the install on the
		// chute's queue.
		if _, err := s.cfg.Chutes.Remove(c.Chute, false, identityOf(r).actor()); err != nil {
			s.cfg.Logf("import of %s: the source left; removing it: %v", c.Chute, err)
		}
		return
	}
	if done.State != chute.ChangeDone {
		writeError(w, http.StatusConflict, fmt.Sprintf("install of %s failed: %s", c.Chute, done.Error))
		return
	}
	if in, err := s.cfg.Chutes.Get(c.Chute); err != nil || in.State != chute.Running {
		writeError(w, http.StatusConflict, fmt.Sprintf("%s installed but not running", c.Chute))
		return
	}
	writeJSON(w, http.StatusOK, done)
}
