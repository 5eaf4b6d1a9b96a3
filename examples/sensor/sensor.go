// Package sensor simulates EnvSense's wireless sensors: temperature and
// humidity that follow a daily cycle, wander and carry measurement noise,
// stamped by a clock that is off by a fixed skew and drifts, and reported as
// one JSON object per reading, POSTed over HTTP. A sensor can be switched at any time to
// send garbage or to go silent.
package sensor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"
)

// Mode is what a sensor sends.
type Mode string

// Modes.
const (
	Normal  Mode = "normal"  // readings
	Garbage Mode = "garbage" // datagrams that are not readings
	Silent  Mode = "silent"  // nothing
)

// Config describes one sensor.
type Config struct {
	ID       string
	Interval time.Duration // between reports; default 2s
	Skew     time.Duration // the sensor's clock minus the true time
	DriftPPM float64       // how fast its clock runs, in parts per million
	Seed     uint64        // of its noise: sensors with equal seeds agree
	// Mode is asked before each report; nil means always Normal.
	Mode func() Mode
}

// Reading is one report, as the sensor sends it.
type Reading struct {
	Sensor string  `json:"sensor"`
	Seq    uint64  `json:"seq"`
	Time   float64 `json:"time"` // the sensor's clock, seconds since the epoch
	Temp   float64 `json:"temp"` // °C
	Hum    float64 `json:"hum"`  // relative humidity, %
}

// Sim is a sensor's physical state; Next advances it.
type Sim struct {
	cfg        Config
	rng        *rand.Rand
	start      time.Time
	seq        uint64
	temp, hum  float64 // slow wander around the daily cycle
	last       time.Time
	baseT      float64
	garbageSeq int
}

// NewSim starts a sensor at start (true time).
func NewSim(cfg Config, start time.Time) *Sim {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x656e7673))
	return &Sim{cfg: cfg, rng: rng, start: start, last: start, baseT: 19 + 4*rng.Float64()}
}

// Clock is the sensor's reading of true time now.
func (s *Sim) Clock(now time.Time) time.Time {
	elapsed := now.Sub(s.start)
	return s.start.Add(s.cfg.Skew + elapsed + time.Duration(float64(elapsed)*s.cfg.DriftPPM*1e-6))
}

// Next measures at now: a daily cycle (warmest mid-afternoon, humidity the
// other way), a mean-reverting wander of a few tenths, and noise.
func (s *Sim) Next(now time.Time) Reading {
	dt := now.Sub(s.last).Seconds()
	s.last = now
	// Ornstein-Uhlenbeck steps with a time constant of ten minutes.
	k := math.Exp(-dt / 600)
	sd := math.Sqrt(1 - k*k)
	s.temp = s.temp*k + 0.4*sd*s.rng.NormFloat64()
	s.hum = s.hum*k + 2*sd*s.rng.NormFloat64()
	hour := float64(now.UTC().Hour()) + float64(now.UTC().Minute())/60
	day := math.Cos(2 * math.Pi * (hour - 15) / 24)
	temp := s.baseT + 3*day + s.temp + 0.05*s.rng.NormFloat64()
	hum := 50 - 10*day + s.hum + 0.3*s.rng.NormFloat64()
	s.seq++
	return Reading{
		Sensor: s.cfg.ID,
		Seq:    s.seq,
		Time:   float64(s.Clock(now).UnixNano()) / 1e9,
		Temp:   math.Round(temp*100) / 100,
		Hum:    math.Round(min(max(hum, 0), 100)*10) / 10,
	}
}

// garbage are datagrams a broken or hostile sensor sends: not JSON, not a
// reading, values out of range or of the wrong type.
var garbage = []func(r Reading) []byte{
	func(Reading) []byte { return []byte{0xff, 0x00, 0x13, 0x37, 0xfe} },
	func(r Reading) []byte { return []byte(fmt.Sprintf(`{"sensor":%q,"temp":`, r.Sensor)) },
	func(r Reading) []byte {
		return []byte(fmt.Sprintf(`{"sensor":%q,"seq":%d,"time":%f,"temp":"hot","hum":40}`, r.Sensor, r.Seq, r.Time))
	},
	func(r Reading) []byte {
		return []byte(fmt.Sprintf(`{"sensor":%q,"seq":%d,"time":%f,"temp":1e308,"hum":40}`, r.Sensor, r.Seq, r.Time))
	},
	func(r Reading) []byte {
		return []byte(fmt.Sprintf(`{"sensor":"../../etc/passwd","seq":%d,"time":%f,"temp":20,"hum":40}`, r.Seq, r.Time))
	},
	func(Reading) []byte { return []byte(`[1,2,3]`) },
	func(Reading) []byte { return []byte(strings.Repeat("A", 1400)) },
}

// Payload is what the sensor sends at now in mode m, nil for nothing.
func (s *Sim) Payload(now time.Time, m Mode) []byte {
	switch m {
	case Silent:
		return nil
	case Garbage:
		r := s.Next(now)
		s.garbageSeq++
		return garbage[s.garbageSeq%len(garbage)](r)
	default:
		b, _ := json.Marshal(s.Next(now)) // a Reading always marshals
		return b
	}
}

// Run reports through send every Interval until ctx is done. A failed
// report is dropped, as a real sensor would: the collector may not be up
// yet, and the next report is due soon.
func Run(ctx context.Context, cfg Config, send func(context.Context, []byte) error) error {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	mode := cfg.Mode
	if mode == nil {
		mode = func() Mode { return Normal }
	}
	s := NewSim(cfg, time.Now())
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		if b := s.Payload(time.Now(), mode()); b != nil {
			sctx, cancel := context.WithTimeout(ctx, cfg.Interval)
			send(sctx, b)
			cancel()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Poster returns a send for Run that POSTs each report to url with c; an
// answer other than 2xx is an error.
func Poster(c *http.Client, url string) func(context.Context, []byte) error {
	return func(ctx context.Context, b []byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("report: %s", resp.Status)
		}
		return nil
	}
}

// ModeFile reads a sensor's mode from the file at path, so that an
// operator switches it with `echo silent > PATH`; a missing or unknown
// content means Normal.
func ModeFile(path string) func() Mode {
	return func() Mode {
		b, err := os.ReadFile(path)
		if err != nil {
			return Normal
		}
		switch m := Mode(strings.TrimSpace(string(b))); m {
		case Garbage, Silent:
			return m
		}
		return Normal
	}
}
