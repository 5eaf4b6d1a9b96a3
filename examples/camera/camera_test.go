package camera

import (
	"bytes"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// The camera answers as a DCS-931L: 401 with its realm without the
// credentials, a 640x480 JPEG with them, nothing when off; its frames
// differ only by noise when still, and an object moves across in motion.
func TestCamera(t *testing.T) {
	var mode atomic.Value
	mode.Store(Still)
	cam := New(Config{User: "admin", Password: "pw", Mode: func() Mode { return mode.Load().(Mode) }})
	srv := httptest.NewServer(cam)
	defer srv.Close()
	get := func(path, user, pw string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		return resp, b.Bytes(), err
	}
	for _, c := range []struct{ user, pw string }{{"", ""}, {"admin", "nope"}, {"root", "pw"}} {
		resp, _, err := get(Path, c.user, c.pw)
		if err != nil || resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="DCS-931L"` {
			t.Errorf("as %q/%q: %v %v", c.user, c.pw, resp, err)
		}
	}
	if resp, _, err := get("/video.cgi", "admin", "pw"); err != nil || resp.StatusCode != 404 {
		t.Errorf("another path: %v %v", resp, err)
	}
	resp, body, err := get(Path, "admin", "pw")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("snapshot: %v %v", resp, err)
	}
	img, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil || img.Bounds().Dx() != Width || img.Bounds().Dy() != Height {
		t.Fatalf("snapshot: %v", err)
	}

	// Still: two frames differ, by noise alone; in motion, by far more.
	now := time.Now()
	diff := func(m Mode, dt time.Duration) (mean float64) {
		a, b := cam.Frame(now, m), cam.Frame(now.Add(dt), m)
		var sum int
		for i := range a.Pix {
			d := int(a.Pix[i]) - int(b.Pix[i])
			sum += max(d, -d)
		}
		return float64(sum) / float64(len(a.Pix))
	}
	if d := diff(Still, time.Second); d < 1 || d > 6 {
		t.Errorf("still frames differ by %.2f a byte, want sensor noise (about 3.4)", d)
	}
	if dn, dm := diff(Still, time.Second), diff(Motion, Crossing/4); dm < dn+2 {
		t.Errorf("motion frames differ by %.2f a byte, still ones by %.2f", dm, dn)
	}

	mode.Store(Off)
	if _, _, err := get(Path, "admin", "pw"); err == nil {
		t.Errorf("a camera off answered")
	}
}

// Auto is still, but for one crossing every AutoEvery.
func TestAutoMode(t *testing.T) {
	cam := New(Config{AutoEvery: 10 * time.Second})
	if m := cam.mode(cam.start.Add(time.Second)); m != Motion {
		t.Errorf("1 s in: %s", m)
	}
	if m := cam.mode(cam.start.Add(5 * time.Second)); m != Still {
		t.Errorf("5 s in: %s", m)
	}
	if m := cam.mode(cam.start.Add(11 * time.Second)); m != Motion {
		t.Errorf("11 s in: %s", m)
	}
}

func TestModeFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "camera.mode")
	m := ModeFile(p)
	for content, want := range map[string]Mode{"": Auto, "motion\n": Motion, "still": Still, "off": Off, "bogus": Auto} {
		if content != "" {
			os.WriteFile(p, []byte(content), 0o644)
		}
		if got := m(); got != want {
			t.Errorf("%q: %s, want %s", content, got, want)
		}
	}
}
