package main

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"paradrop/examples/camera"
)

// decodeFrame takes the camera's snapshot and refuses what is not one.
func TestDecodeFrame(t *testing.T) {
	jpg, ok := camera.New(camera.Config{}).Snapshot(time.Now())
	if !ok {
		t.Fatal("no snapshot")
	}
	img, err := decodeFrame(jpg)
	if err != nil || img.Bounds().Dx() != camera.Width || img.Bounds().Dy() != camera.Height {
		t.Fatalf("the camera's snapshot: %v", err)
	}
	var small bytes.Buffer
	jpeg.Encode(&small, image.NewGray(image.Rect(0, 0, 40, 30)), nil)
	// A header claiming 65500x65500 pixels: refused before allocating.
	huge := bytes.Clone(jpg)
	if i := bytes.Index(huge, []byte{0xff, 0xc0}); i >= 0 {
		huge[i+5], huge[i+6], huge[i+7], huge[i+8] = 0xff, 0xdc, 0xff, 0xdc
	}
	for name, b := range map[string][]byte{"empty": nil, "html": []byte("<html>login</html>"), "truncated": jpg[:len(jpg)/2],
		"smaller than the grid": small.Bytes(), "too many pixels": huge} {
		if _, err := decodeFrame(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecodeFrame: whatever the camera sends, decoding and downscaling it
// neither panics nor gives cells out of range.
func FuzzDecodeFrame(f *testing.F) {
	jpg, _ := camera.New(camera.Config{}).Snapshot(time.Now())
	f.Add(jpg)
	var gray bytes.Buffer
	jpeg.Encode(&gray, image.NewGray(image.Rect(0, 0, 81, 61)), nil)
	f.Add(gray.Bytes())
	f.Add([]byte{0xff, 0xd8, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := decodeFrame(b)
		if err != nil {
			return
		}
		cells := cellsOf(img)
		if len(cells) != gridW*gridH {
			t.Fatalf("%d cells", len(cells))
		}
		for _, c := range cells {
			if c < 0 || c > 255 {
				t.Fatalf("cell %v", c)
			}
		}
	})
}

// The chute fetches the snapshot from the camera it was given, with its
// credentials, and nothing else: a redirect, a refusal or an oversized
// answer is an error.
func TestSnapshot(t *testing.T) {
	cam := camera.New(camera.Config{User: "admin", Password: "pw"})
	var elsewhere atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Store(true) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, other.URL+"/image.jpg", http.StatusFound)
		case "/huge":
			w.Write(make([]byte, maxFrameBytes+1))
		default:
			cam.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	c := func(path, pw string) *cameraClient {
		return &cameraClient{url: srv.URL + path, user: "admin", password: pw, client: &http.Client{CheckRedirect: noRedirects}}
	}
	ctx := context.Background()
	if b, err := c("/image.jpg", "pw").snapshot(ctx); err != nil || len(b) < 1000 {
		t.Fatalf("snapshot: %d bytes, %v", len(b), err)
	}
	if _, err := c("/image.jpg", "bad").snapshot(ctx); !errors.Is(err, errCameraAuth) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := c("/redirect", "pw").snapshot(ctx); err == nil || elsewhere.Load() {
		t.Errorf("redirect: %v, followed %v", err, elsewhere.Load())
	}
	if _, err := c("/huge", "pw").snapshot(ctx); err == nil {
		t.Error("a snapshot over the limit was taken")
	}
}
