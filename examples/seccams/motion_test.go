package main

import (
	"bytes"
	"image/jpeg"
	"testing"
	"time"

	"paradrop/examples/camera"
)

// frames runs n snapshots of a camera in mode m, one every 66 ms (its 15
// frames a second), through the JPEG round trip and the detector, and
// returns how many cells each changed.
func frames(t *testing.T, cam *camera.Camera, det *Detector, start time.Time, n int, m camera.Mode) []int {
	t.Helper()
	var out []int
	for i := range n {
		at := start.Add(time.Duration(i) * 66 * time.Millisecond)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, cam.Frame(at, m), &jpeg.Options{Quality: 80}); err != nil {
			t.Fatal(err)
		}
		img, err := decodeFrame(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, det.Observe(at, cellsOf(img)))
	}
	return out
}

// A still scene's sensor noise never makes motion, even at twice the
// simulated camera's noise, over 10 s of frames; an object crossing it
// does within its first frames.
func TestDetector(t *testing.T) {
	for _, noise := range []float64{4, 8} {
		cam := camera.New(camera.Config{Noise: noise, Seed: uint64(noise)})
		det := NewDetector()
		start := time.Now()
		n := 150
		if testing.Short() {
			n = 60
		}
		most := 0
		for i, c := range frames(t, cam, det, start, n, camera.Still) {
			most = max(most, c)
			if det.Motion(c) {
				t.Fatalf("noise %v: motion in still frame %d (%d cells changed)", noise, i, c)
			}
		}
		t.Logf("noise %v: at most %d cells changed in %d still frames (motion is %d)", noise, most, n, det.MinCells)
		// The object enters at the left edge at once: within 0.5 s (a
		// tenth of the crossing) it is in the picture.
		moving := frames(t, cam, det, start.Add(time.Duration(n)*66*time.Millisecond), 8, camera.Motion)
		first := -1
		for i, c := range moving {
			if det.Motion(c) {
				first = i
				break
			}
		}
		if first < 0 {
			t.Errorf("noise %v: no motion in 8 frames of a crossing: %v", noise, moving)
		}
	}
}

// The detector's background follows elapsed time, not frames: a scene
// that changed and stayed changed stops being motion after a few Taus at
// any frame rate.
func TestDetectorBackgroundSettles(t *testing.T) {
	for _, fps := range []int{2, 50} {
		det := NewDetector()
		cells := make([]float32, gridW*gridH)
		start := time.Now()
		det.Observe(start, cells)
		for i := range cells[:200] {
			cells[i] = 100 // a box put down, and left
		}
		var changed int
		for i := 1; i <= 10*fps; i++ { // 10 s = 5 Taus
			changed = det.Observe(start.Add(time.Duration(i)*time.Second/time.Duration(fps)), cells)
		}
		if det.Motion(changed) {
			t.Errorf("%d frames/s: still motion 10 s after the scene changed (%d cells)", fps, changed)
		}
	}
}
