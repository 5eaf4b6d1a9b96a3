package main

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

//go:embed index.html
var indexHTML []byte

// Status is GET /api/status.
type Status struct {
	FPS         float64     `json:"fps"`    // frames processed a second, over the last seconds
	Frames      uint64      `json:"frames"` // processed since start
	Camera      string      `json:"camera"` // its URL
	CameraOK    bool        `json:"camera_ok"`
	CameraError string      `json:"camera_error,omitempty"`
	LastFrame   *time.Time  `json:"last_frame,omitempty"`
	Motion      bool        `json:"motion"` // in the last frame
	Store       StoreUsage  `json:"store"`
	Alerts      AlertStatus `json:"alerts"`
}

// service is what the owner's page and API show.
type service struct {
	store  *Store
	status func() Status
	live   func() []byte // the last snapshot, nil before the first
	// password, when set, is asked of every request but the health
	// check's (HTTP basic authentication, any user name): the camera's
	// pictures are for the owner, not for every guest on the LAN.
	password string
}

// handler is the service's page and API, behind the owner's password.
func (s *service) handler() http.Handler {
	mux := s.routes()
	if s.password == "" {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pw, ok := r.BasicAuth()
		if r.URL.Path != "/healthz" && (!ok || subtle.ConstantTimeCompare([]byte(pw), []byte(s.password)) != 1) {
			w.Header().Set("WWW-Authenticate", `Basic realm="SecCams"`)
			writeError(w, http.StatusUnauthorized, "the owner's password is needed")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *service) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResponse(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResponse(w, http.StatusOK, s.status())
	})
	mux.HandleFunc("GET /api/live.jpg", func(w http.ResponseWriter, r *http.Request) {
		jpg := s.live()
		if jpg == nil {
			writeError(w, http.StatusServiceUnavailable, "no snapshot from the camera yet")
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(jpg)
	})
	mux.HandleFunc("GET /api/events", s.events)
	mux.HandleFunc("GET /api/events/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, ev := range s.store.Events() {
			if ev.ID == r.PathValue("id") {
				writeJSONResponse(w, http.StatusOK, ev)
				return
			}
		}
		writeError(w, http.StatusNotFound, "no such event")
	})
	mux.HandleFunc("GET /api/events/{id}/{file}", func(w http.ResponseWriter, r *http.Request) {
		p := s.store.File(r.PathValue("id"), r.PathValue("file"))
		if p == "" {
			writeError(w, http.StatusNotFound, "no such event or frame")
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "max-age=86400, immutable")
		http.ServeFile(w, r, p)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	return mux
}

// events is GET /api/events[?limit=N&before=ID]: events newest first,
// with the URLs of their thumbnails and frames.
func (s *service) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit: want 1 to 1000")
			return
		}
		limit = n
	}
	before := q.Get("before")
	if before != "" && !eventID.MatchString(before) {
		writeError(w, http.StatusBadRequest, "before: not an event id")
		return
	}
	type listed struct {
		Event
		Thumb  string   `json:"thumb"`
		Images []string `json:"images"`
	}
	out := []listed{}
	for _, ev := range s.store.Events() {
		if before != "" && ev.ID >= before {
			continue
		}
		if len(out) == limit {
			break
		}
		l := listed{Event: ev, Thumb: "/api/events/" + ev.ID + "/thumb.jpg"}
		for i := range ev.Frames {
			l.Images = append(l.Images, "/api/events/"+ev.ID+"/"+strconv.Itoa(i)+".jpg")
		}
		out = append(out, l)
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"events": out})
}

func writeJSONResponse(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSONResponse(w, code, map[string]string{"error": msg})
}
