package main

import (
	"image"
	"testing"
	"time"
)

// Motion opens one event, alerted once, which takes a frame every
// FrameEvery up to MaxFrames; a quiet spell closes it and the next motion
// is a new event.
func TestRecorder(t *testing.T) {
	s := testStore(t, t.TempDir(), 1<<20)
	var opened []string
	r := &Recorder{Store: s, FrameEvery: 500 * time.Millisecond, MaxFrames: 3, Quiet: 2 * time.Second,
		Opened: func(ev Event) { opened = append(opened, ev.ID) }}
	img := image.NewGray(image.Rect(0, 0, 640, 480))
	start := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	for ms := 0; ms < 1000; ms += 100 {
		if err := r.Observe(at(ms), false, 0, []byte("still"), img); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Events()) != 0 {
		t.Fatal("an event without motion")
	}
	for ms := 1000; ms < 4000; ms += 100 { // 3 s of motion: 6 frames due, 3 kept
		if err := r.Observe(at(ms), true, 50, []byte("moving"), img); err != nil {
			t.Fatal(err)
		}
	}
	for ms := 4000; ms < 7000; ms += 100 { // 3 s quiet
		r.Observe(at(ms), false, 0, []byte("still"), img)
	}
	r.Observe(at(7000), true, 30, []byte("again"), img)
	evs := s.Events()
	if len(evs) != 2 || len(opened) != 2 {
		t.Fatalf("events %+v, opened %v; want 2", evs, opened)
	}
	first := evs[1]
	if first.Frames != 3 || !first.Start.Equal(at(1000)) || !first.End.Equal(at(3900)) || first.Score != 50 {
		t.Errorf("first event: %+v", first)
	}
	if evs[0].Frames != 1 || !evs[0].Start.Equal(at(7000)) {
		t.Errorf("second event: %+v", evs[0])
	}
	if s.File(first.ID, "thumb.jpg") == "" {
		t.Error("no thumbnail")
	}
}

// A store without room is asked for a new event once every FrameEvery,
// not on every frame of motion.
func TestRecorderFullStore(t *testing.T) {
	s := testStore(t, t.TempDir(), 1<<20)
	var asked int
	s.free = func() (int64, error) { asked++; return 0, nil }
	r := &Recorder{Store: s, FrameEvery: 500 * time.Millisecond, MaxFrames: 3, Quiet: 2 * time.Second}
	img := image.NewGray(image.Rect(0, 0, 640, 480))
	start := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	for ms := 0; ms < 2000; ms += 10 { // 200 frames of motion
		r.Observe(start.Add(time.Duration(ms)*time.Millisecond), true, 50, []byte("moving"), img)
	}
	if asked != 4 || len(s.Events()) != 0 {
		t.Errorf("the full store was asked %d times in 2 s, want 4; events %v", asked, s.Events())
	}
}
