package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// GET /api/events lists events newest first with their images' URLs,
// which serve the stored frames; bad queries and unknown or hostile
// names are JSON errors.
func TestEventsAPI(t *testing.T) {
	s := testStore(t, t.TempDir(), 1<<20)
	start := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	var made []Event
	for i := range 3 {
		ev, err := s.Create(start.Add(time.Duration(i)*time.Minute), 10+i, []byte("frame0-"+string(rune('a'+i))), []byte("thumb"))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, ev)
	}
	if err := s.AddFrame(made[2].ID, start.Add(3*time.Minute), 40, []byte("frame1")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&service{store: s, status: func() Status { return Status{FPS: 12.5} }, live: func() []byte { return nil }}).routes())
	defer srv.Close()
	get := func(path string) (int, string, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}

	code, ctype, body := get("/api/events")
	var list struct {
		Events []struct {
			Event
			Thumb  string
			Images []string
		}
	}
	if code != 200 || ctype != "application/json" || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("GET /api/events: %d %s %s", code, ctype, body)
	}
	if len(list.Events) != 3 || list.Events[0].ID != made[2].ID || list.Events[2].ID != made[0].ID {
		t.Fatalf("events not newest first: %s", body)
	}
	newest := list.Events[0]
	if newest.Frames != 2 || newest.Score != 40 || newest.Alert != alertPending || len(newest.Images) != 2 || !newest.End.Equal(start.Add(3*time.Minute)) {
		t.Errorf("newest event: %+v", newest)
	}
	if code, ctype, body := get(newest.Images[1]); code != 200 || ctype != "image/jpeg" || body != "frame1" {
		t.Errorf("GET %s: %d %s %q", newest.Images[1], code, ctype, body)
	}
	if code, _, body := get(newest.Thumb); code != 200 || body != "thumb" {
		t.Errorf("GET %s: %d %q", newest.Thumb, code, body)
	}
	if code, _, body := get("/api/events?limit=1&before=" + made[2].ID); code != 200 || !strings.Contains(body, made[1].ID) || strings.Contains(body, made[0].ID) {
		t.Errorf("limit=1&before: %d %s", code, body)
	}
	if code, _, body := get("/api/status"); code != 200 || !strings.Contains(body, `"fps":12.5`) {
		t.Errorf("GET /api/status: %d %s", code, body)
	}
	for path, want := range map[string]int{
		"/api/events?limit=0":                                 400,
		"/api/events?limit=x":                                 400,
		"/api/events?before=../x":                             400,
		"/api/events/" + made[0].ID + "/1.jpg":                404,
		"/api/events/" + made[0].ID + "/..%2F..%2Fevent.json": 404,
		"/api/events/nosuch/0.jpg":                            404,
		"/api/events/nosuch":                                  404,
		"/api/live.jpg":                                       503, // no snapshot yet
		"/nosuch":                                             404,
	} {
		code, ctype, body := get(path)
		var e struct{ Error string }
		if json.Unmarshal([]byte(body), &e); code != want || ctype != "application/json" || e.Error == "" {
			t.Errorf("GET %s: %d %s %s, want %d with a JSON error", path, code, ctype, body, want)
		}
	}
	if code, ctype, body := get("/"); code != 200 || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(body, "/api/events") {
		t.Errorf("GET /: %d %s", code, ctype)
	}
}

// With the owner's password set, nothing but the health check is served
// without it.
func TestOwnerPassword(t *testing.T) {
	s := testStore(t, t.TempDir(), 1<<20)
	srv := httptest.NewServer((&service{store: s, password: "secret", status: func() Status { return Status{} }, live: func() []byte { return []byte("jpg") }}).handler())
	defer srv.Close()
	for _, c := range []struct {
		path, pw string
		want     int
	}{
		{"/healthz", "", 200},
		{"/", "", 401},
		{"/api/events", "", 401},
		{"/api/live.jpg", "wrong", 401},
		{"/api/live.jpg", "secret", 200},
		{"/api/events", "secret", 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+c.path, nil)
		if c.pw != "" {
			req.SetBasicAuth("owner", c.pw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want || (c.want == 401 && resp.Header.Get("WWW-Authenticate") == "") {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.pw, resp.StatusCode, c.want)
		}
	}
}
