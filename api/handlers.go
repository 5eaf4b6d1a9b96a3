package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"paradrop/chute"
)

const (
	defaultTail = 100
	maxTail     = 100_000
)

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type infoResponse struct {
	Version       string `json:"version"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	Kernel        string `json:"kernel"`
	CgroupMode    string `json:"cgroup_mode"`
	Chutes        int    `json:"chutes"`
	// Actor is who asks: "operator" or "developer:NAME", for the web UI
	// to show each only what it may use.
	Actor string `json:"actor"`

	// TLSFingerprint is the HTTPS certificate's SHA-256, for clients to
	// check what they pinned against; absent without HTTPS listeners.
	TLSFingerprint string `json:"tls_fingerprint,omitempty"`
	// LANAddr is the gateway's address on the LAN, where chutes' exposed
	// ports are; absent without one.
	LANAddr string `json:"lan_addr,omitempty"`
}

func (s *server) info(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	kernel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		kernel = []byte("unknown")
	}
	mode := "v1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		mode = "v2"
	}
	info := infoResponse{
		Version:       s.cfg.Version,
		UptimeSeconds: int64(time.Since(s.cfg.Started).Seconds()),
		Kernel:        strings.TrimSpace(string(kernel)),
		CgroupMode:    mode,
		Chutes:        len(s.visibleChutes(identityOf(r))),
		Actor:         identityOf(r).String(),

		TLSFingerprint: s.cfg.TLSFingerprint,
	}
	if s.cfg.LANAddr.IsValid() {
		info.LANAddr = s.cfg.LANAddr.String()
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *server) listChutes(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string][]chute.Info{"chutes": s.visibleChutes(identityOf(r))})
}

// visibleChutes is every chute for the operator, its own for a developer;
// [] rather than null for scripts.
func (s *server) visibleChutes(id identity) []chute.Info {
	list := []chute.Info{}
	for _, c := range s.cfg.Chutes.List() {
		if id.visible(c.Owner) {
			list = append(list, c)
		}
	}
	return list
}

// nameAndQuery validates the {name} path value and the query; on error it
// has answered 400.
func nameAndQuery(w http.ResponseWriter, r *http.Request, allowed ...string) (string, query, bool) {
	name := r.PathValue("name")
	if err := checkName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", nil, false
	}
	q, err := parseQuery(r.URL.RawQuery, allowed...)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", nil, false
	}
	return name, q, true
}

func (s *server) getChute(w http.ResponseWriter, r *http.Request) {
	name, _, ok := nameAndQuery(w, r)
	if !ok {
		return
	}
	info, err := s.cfg.Chutes.Get(name)
	if err == nil && !identityOf(r).visible(info.Owner) {
		// Another's since ownChute's check: as one that does not exist.
		err = fmt.Errorf("chute %q: %w", name, chute.ErrNotFound)
	}
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *server) install(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.RawQuery, "wait")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	wait, err := q.flag("wait")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.uploads.begin(w, r) {
		return
	}
	var c chute.Change
	o, pkg, err := s.origin(r)
	if err == nil {
		c, err = s.cfg.Chutes.Install(r.Context(), pkg, o)
	}
	s.uploads.end(r)
	s.answerChange(w, r, wait, c, err)
}

func (s *server) update(w http.ResponseWriter, r *http.Request) {
	name, q, ok := nameAndQuery(w, r, "wait", "force")
	if !ok {
		return
	}
	wait, force, err := twoFlags(q, "wait", "force")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.uploads.begin(w, r) {
		return
	}
	var c chute.Change
	o, pkg, err := s.origin(r)
	if err == nil {
		c, err = s.cfg.Chutes.Update(r.Context(), name, pkg, force, o)
	}
	s.uploads.end(r)
	s.answerChange(w, r, wait, c, err)
}

func (s *server) remove(w http.ResponseWriter, r *http.Request) {
	name, q, ok := nameAndQuery(w, r, "wait", "keep_data")
	if !ok {
		return
	}
	wait, keep, err := twoFlags(q, "wait", "keep_data")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := s.cfg.Chutes.Remove(name, keep, identityOf(r).actor())
	s.answerChange(w, r, wait, c, err)
}

// action serves start, stop and restart, which differ only in the method.
func (s *server) action(do func(Chutes, string, chute.Actor) (chute.Change, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, q, ok := nameAndQuery(w, r, "wait")
		if !ok {
			return
		}
		wait, err := q.flag("wait")
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		c, err := do(s.cfg.Chutes, name, identityOf(r).actor())
		s.answerChange(w, r, wait, c, err)
	}
}

func twoFlags(q query, a, b string) (bool, bool, error) {
	x, err := q.flag(a)
	if err != nil {
		return false, false, err
	}
	y, err := q.flag(b)
	return x, y, err
}

// changeQueued is the answer to a change-making call that does not wait.
type changeQueued struct {
	ChangeID uint64 `json:"change_id"`
	Chute    string `json:"chute"`
}

// answerChange answers a change-making call: 202 with the change's id, or
// with wait, the change once it has ended: 200 if done, 422 if it failed,
// so that a script (curl --fail) stops on a failed change as on a refused
// call. The body is the change either way; a failed one's "error" says why,
// as every error body's does.
func (s *server) answerChange(w http.ResponseWriter, r *http.Request, wait bool, c chute.Change, err error) {
	if err != nil {
		if ended(r.Context()) {
			err = errCredentialEnded // an upload cut short by it
		}
		fail(w, err)
		return
	}
	if !wait {
		writeJSON(w, http.StatusAccepted, changeQueued{ChangeID: c.ID, Chute: c.Chute})
		return
	}
	done, err := s.cfg.Chutes.WaitChange(r.Context(), c.ID)
	if err != nil {
		if ended(r.Context()) {
			// The change goes on; the caller no longer may see it.
			fail(w, errCredentialEnded)
			return
		}
		if r.Context().Err() != nil {
			return // the client left; nobody to answer
		}
		fail(w, fmt.Errorf("wait for change %d: %w", c.ID, err))
		return
	}
	if done.State == chute.ChangeError {
		if sw, ok := w.(*statusWriter); ok {
			sw.reason = fmt.Sprintf("change %d failed: %s", done.ID, done.Error)
		}
		writeJSON(w, http.StatusUnprocessableEntity, done)
		return
	}
	writeJSON(w, http.StatusOK, done)
}

func (s *server) logs(w http.ResponseWriter, r *http.Request) {
	name, q, ok := nameAndQuery(w, r, "tail", "follow")
	if !ok {
		return
	}
	tail, err := q.intIn("tail", defaultTail, 0, maxTail)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	follow, err := q.flag("follow")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Check the chute first so that a follower gets its 404 as JSON, and
	// otherwise its headers at once instead of at the first log line.
	// Logs checks again, with the actor, what it reads.
	info, err := s.cfg.Chutes.Get(name)
	if err == nil && !identityOf(r).visible(info.Owner) {
		err = fmt.Errorf("chute %q: %w", name, chute.ErrNotFound)
	}
	if err != nil {
		fail(w, err)
		return
	}
	lw := &logWriter{w: w, rc: http.NewResponseController(w), flush: follow}
	if follow {
		lw.begin()
	}
	err = s.cfg.Chutes.Logs(r.Context(), name, identityOf(r).actor(), tail, follow, lw)
	switch {
	case err != nil && !lw.started:
		fail(w, err)
	case err != nil && !errors.Is(err, context.Canceled) && !ended(r.Context()):
		s.cfg.Logf("logs of %s: %v", name, err)
	case !lw.started:
		lw.begin() // an empty log is still a 200
	}
}

// logWriter sends the headers on the first write, so that an error before
// any output can still be answered as JSON, and flushes each write when
// following so that lines reach the client as they come.
type logWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	flush   bool
	started bool
}

func (l *logWriter) begin() {
	l.started = true
	h := l.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	l.w.WriteHeader(http.StatusOK)
	if l.flush {
		_ = l.rc.Flush() // best effort: an unflushable writer still gets the lines
	}
}

func (l *logWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.begin()
	}
	n, err := l.w.Write(p)
	if err == nil && l.flush {
		err = l.rc.Flush()
	}
	return n, err
}

func (s *server) listChanges(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := identityOf(r)
	list := []chute.Change{}
	for _, c := range s.cfg.Chutes.Changes() {
		if id.visible(c.Owner) {
			list = append(list, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string][]chute.Change{"changes": list})
}

func (s *server) getChange(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("change id %q is not a positive number", raw))
		return
	}
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := s.cfg.Chutes.Change(id)
	if err == nil && !identityOf(r).visible(c.Owner) {
		// As a change that does not exist.
		err = fmt.Errorf("change %d: %w", id, chute.ErrNoChange)
	}
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func tooLarge(limit int64) string {
	return fmt.Sprintf("request body larger than the daemon's limit of %d bytes (paradrop serve --max-upload)", limit)
}
