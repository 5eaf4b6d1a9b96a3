package api

import (
	"context"
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
	to, err := t.Destination()
	if err != nil {
		fail(w, err)
		return
	}
	from, _ := os.Hostname()
	c, err := s.cfg.Chutes.Migrate(name, identityOf(r).actor(), from, to)
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
	if err == nil && s.cfg.Chutes.HoldsPackage(o.Owner, r.Header.Get(migrate.PackageHeader)) {
		// Before the stream is read (100 Continue): the source then
		// names the package instead of sending it.
		w.Header().Set(migrate.PackageHeader, "held")
		w.WriteHeader(migrate.StatusHeld)
		w.Header().Del(migrate.PackageHeader)
	}
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
	if err == nil && done.State != chute.ChangeDone {
		writeError(w, http.StatusConflict, fmt.Sprintf("install of %s failed: %s", c.Chute, done.Error))
		return
	}
	if err == nil {
		err = s.keepImport(r, c.Chute)
	}
	if err != nil {
		// Not confirmed: the source runs its copy again, or asks and
		// hears this one does not run here. The removal waits for the
		// install on the chute's queue.
		s.cfg.Logf("import of %s: %v; removing it", c.Chute, err)
		s.dropImport(c.Chute, identityOf(r).actor())
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, done)
}

// dropImport removes the chute name this gateway did not keep, and waits
// (a while) until it is gone: the source, told no, starts its copy again
// at once.
func (s *server) dropImport(name string, actor chute.Actor) {
	c, err := s.cfg.Chutes.Remove(name, false, actor)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), migrate.DropWait)
		defer cancel()
		_, err = s.cfg.Chutes.WaitChange(ctx, c.ID)
	}
	if err != nil {
		s.cfg.Logf("import of %s: removing it: %v", name, err)
	}
}

// keepImport confirms the chute name, installed here by the migration
// stream of r, if it runs and its source is still there to hear it.
func (s *server) keepImport(r *http.Request, name string) error {
	in, err := s.cfg.Chutes.Get(name)
	if err != nil {
		return err
	}
	if in.State != chute.Running {
		return fmt.Errorf("%s installed but not running", name)
	}
	if err := r.Context().Err(); err != nil {
		return fmt.Errorf("the source left: %w", err)
	}
	if !in.Unconfirmed {
		return nil // a source that names no migration asks nothing after
	}
	return s.cfg.Chutes.ConfirmImport(name, in.Migration)
}
