package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"paradrop/examples/camera"
)

// The chute's environment is checked at start: a bad size or rate is an
// error naming the variable, not a silent default.
func TestConfigFromEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	c, err := configFromEnv(env(map[string]string{"SECCAMS_QUOTA": "20Mi", "SECCAMS_RESERVE": "512Ki", "SECCAMS_MAX_FPS": "2.5"}))
	if err != nil || c.quota != 20<<20 || c.reserve != 512<<10 || c.maxFPS != 2.5 || c.data != "/data/events" || c.fetchers != 4 {
		t.Errorf("config %+v, %v", c, err)
	}
	for k, v := range map[string]string{"SECCAMS_QUOTA": "lots", "SECCAMS_RESERVE": "-1", "SECCAMS_MAX_FPS": "-3", "SECCAMS_FETCHERS": "17"} {
		if _, err := configFromEnv(env(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}

// The whole service on loopback, without root: it polls the camera, an
// object crossing is an event within 5 s whose alert reaches the cloud,
// the camera unplugged is reported, and it stops when told.
func TestRun(t *testing.T) {
	var mode atomic.Value
	mode.Store(camera.Still)
	cam := httptest.NewServer(camera.New(camera.Config{User: "admin", Password: "pw", Mode: func() camera.Mode { return mode.Load().(camera.Mode) }}))
	defer cam.Close()
	var mu sync.Mutex
	var alerts []alert
	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alert
		json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		alerts = append(alerts, a)
		mu.Unlock()
	}))
	defer cloud.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{cameraURL: cam.URL + camera.Path, user: "admin", password: "pw", name: "door", alertURL: cloud.URL,
		data: t.TempDir(), quota: 8 << 20, maxFPS: 30, fetchers: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, ln) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("run did not stop")
		}
	}()
	page := "http://" + ln.Addr().String()
	status := func() (st Status) {
		if resp, err := http.Get(page + "/api/status"); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		return st
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s; status %+v", what, status())
			}
		}
	}
	waitFor("frames", func() bool { st := status(); return st.CameraOK && st.Frames > 5 })
	mode.Store(camera.Motion)
	waitFor("an event and its alert", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return status().Store.Events == 1 && len(alerts) == 1 && alerts[0].Camera == "door"
	})
	mode.Store(camera.Off)
	waitFor("the camera down", func() bool { st := status(); return !st.CameraOK && st.CameraError != "" })
}
