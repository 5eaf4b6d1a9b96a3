package sensor

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A day of readings every 2 s stays in a room's range, moves slowly
// (no jump larger than the noise allows) yet does move (a daily cycle).
func TestReadingsAreRealistic(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSim(Config{ID: "s1", Seed: 7}, start)
	var prev Reading
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := 0; i < 43200; i++ {
		r := s.Next(start.Add(time.Duration(i) * 2 * time.Second))
		if r.Temp < 5 || r.Temp > 35 || r.Hum < 10 || r.Hum > 95 {
			t.Fatalf("reading %d out of a room's range: %+v", i, r)
		}
		if i > 0 && (math.Abs(r.Temp-prev.Temp) > 0.5 || math.Abs(r.Hum-prev.Hum) > 3) {
			t.Fatalf("reading %d jumps: %+v after %+v", i, r, prev)
		}
		if r.Seq != uint64(i+1) {
			t.Fatalf("reading %d has seq %d", i, r.Seq)
		}
		lo, hi = min(lo, r.Temp), max(hi, r.Temp)
		prev = r
	}
	if hi-lo < 3 {
		t.Errorf("temperature spans %.2f..%.2f over a day: no daily cycle", lo, hi)
	}
}

// The clock is off by the skew and drifts by DriftPPM.
func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSim(Config{ID: "s1", Skew: 30 * time.Second, DriftPPM: 100}, start)
	for _, c := range []struct {
		after time.Duration
		want  time.Duration
	}{{0, 30 * time.Second}, {10000 * time.Second, 31 * time.Second}} {
		if got := s.Clock(start.Add(c.after)).Sub(start.Add(c.after)); got != c.want {
			t.Errorf("after %v the clock is %v ahead, want %v", c.after, got, c.want)
		}
	}
	r := s.Next(start)
	if got := r.Time - float64(start.Unix()); math.Abs(got-30) > 1e-3 {
		t.Errorf("reading stamped %.3f s after the true time, want 30", got)
	}
}

// Every garbage datagram fails a strict decoding as a valid reading, and
// silent sends nothing.
func TestGarbageAndSilence(t *testing.T) {
	s := NewSim(Config{ID: "s1"}, time.Now())
	for i := 0; i < 2*len(garbage); i++ {
		b := s.Payload(time.Now(), Garbage)
		var r struct {
			Sensor    *string
			Temp, Hum *float64
			Time      *float64
		}
		if json.Unmarshal(b, &r) == nil && r.Sensor != nil && *r.Sensor == "s1" && r.Temp != nil && *r.Temp < 100 && r.Hum != nil && r.Time != nil {
			t.Errorf("garbage %d is a valid reading: %s", i, b)
		}
	}
	if b := s.Payload(time.Now(), Silent); b != nil {
		t.Errorf("silent sensor sends %q", b)
	}
	var r Reading
	if err := json.Unmarshal(s.Payload(time.Now(), Normal), &r); err != nil || r.Sensor != "s1" {
		t.Errorf("normal payload: %+v, %v", r, err)
	}
}

func TestModeFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mode")
	m := ModeFile(p)
	for _, c := range []struct {
		content string
		want    Mode
	}{{"", Normal}, {"silent\n", Silent}, {"garbage", Garbage}, {"bogus", Normal}} {
		if c.content != "" {
			if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := m(); got != c.want {
			t.Errorf("file %q: mode %q, want %q", c.content, got, c.want)
		}
	}
}
