// Package camera simulates SecCams' IP camera, a D-Link DCS-931L as seen
// over HTTP: a 640x480 JPEG snapshot of what it sees at /image.jpg, behind
// HTTP basic authentication. The scene is a still room whose every pixel
// carries sensor noise, crossed now and then by a moving object; the mode
// (still, motion, off, or auto's motion now and then) can be switched at
// any time.
package camera

import (
	"bytes"
	"crypto/subtle"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Snapshot dimensions and the path and realm of the DCS-931L's snapshot.
const (
	Width  = 640
	Height = 480
	Path   = "/image.jpg"
	Realm  = "DCS-931L"
)

// Mode is what the camera sees.
type Mode string

// Modes.
const (
	Auto   Mode = "auto"   // still, crossed by an object for a few seconds every AutoEvery
	Still  Mode = "still"  // the empty room, with noise
	Motion Mode = "motion" // an object crossing the room, again and again
	Off    Mode = "off"    // unplugged: connections are closed unanswered
)

// Crossing is how long the object takes to cross the picture.
const Crossing = 3 * time.Second

// Config describes one camera.
type Config struct {
	User, Password string  // of its basic authentication; User "" lets anyone in
	FPS            float64 // most snapshots a second; later requests get the last one; default 15
	Noise          float64 // standard deviation of each pixel's noise, in 8-bit levels; default 4
	Quality        int     // JPEG quality; default 80
	Seed           uint64
	AutoEvery      time.Duration // in Auto, one crossing per AutoEvery; default 40s
	// Mode is asked on every request; nil means Auto.
	Mode func() Mode
}

// Camera renders and serves snapshots; its zero value is not usable, see New.
type Camera struct {
	cfg   Config
	bg    *image.RGBA // the still room
	noise [256]int8   // a byte of randomness -> a level of noise
	start time.Time

	mu     sync.Mutex
	rng    *rand.Rand
	last   []byte
	lastAt time.Time
	lastM  Mode
}

// New makes a camera whose scene starts now.
func New(cfg Config) *Camera {
	if cfg.FPS <= 0 {
		cfg.FPS = 15
	}
	if cfg.Noise <= 0 {
		cfg.Noise = 4
	}
	if cfg.Quality <= 0 {
		cfg.Quality = 80
	}
	if cfg.AutoEvery <= 0 {
		cfg.AutoEvery = 40 * time.Second
	}
	if cfg.Mode == nil {
		cfg.Mode = func() Mode { return Auto }
	}
	c := &Camera{cfg: cfg, bg: room(), start: time.Now(), rng: rand.New(rand.NewPCG(cfg.Seed, 0x63616d))}
	// A normal distribution's quantiles, so that a uniform byte becomes
	// Gaussian noise without a call to the generator per pixel.
	for i := range c.noise {
		p := (float64(i) + 0.5) / 256
		c.noise[i] = int8(max(-127, min(127, math.Round(cfg.Noise*math.Sqrt2*math.Erfinv(2*p-1)))))
	}
	return c
}

// room draws the still scene: a lit wall, a floor, a door and a table.
func room() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, Width, Height))
	for y := range Height {
		for x := range Width {
			var c color.RGBA
			switch {
			case y > 330: // floor, darker far away
				v := uint8(70 + (y-330)/3)
				c = color.RGBA{v + 30, v + 10, v - 20, 255}
			default: // wall, lit from the left
				v := uint8(190 - x/8)
				c = color.RGBA{v, v, v - 10, 255}
			}
			if x > 440 && x < 540 && y > 120 && y <= 330 { // door
				c = color.RGBA{110, 80, 50, 255}
			}
			if x > 80 && x < 260 && y > 280 && y < 300 || (x > 90 && x < 100 || x > 240 && x < 250) && y >= 300 && y < 380 { // table
				c = color.RGBA{60, 40, 30, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// mode is the scene's state at t: the configured mode, Auto resolved.
func (c *Camera) mode(t time.Time) Mode {
	m := c.cfg.Mode()
	if m == Auto {
		if t.Sub(c.start)%c.cfg.AutoEvery < Crossing {
			return Motion
		}
		return Still
	}
	return m
}

// Frame renders what the camera sees at t in mode m (Still or Motion):
// the room, the object at its place on its way across when m is Motion,
// and fresh noise.
func (c *Camera) Frame(t time.Time, m Mode) *image.RGBA {
	img := image.NewRGBA(c.bg.Rect)
	copy(img.Pix, c.bg.Pix)
	if m == Motion {
		// A person-sized dark shape walking left to right.
		const w, h = 70, 190
		phase := float64(t.Sub(c.start)%Crossing) / float64(Crossing)
		x0 := int(phase*float64(Width+w)) - w
		for y := 300 - h + 80; y < 300+80; y++ {
			for x := max(x0, 0); x < min(x0+w, Width); x++ {
				i := img.PixOffset(x, y)
				img.Pix[i], img.Pix[i+1], img.Pix[i+2] = 40, 50, 90
			}
		}
	}
	var r uint64
	for i := range img.Pix {
		if i%4 == 3 {
			continue // alpha
		}
		if i%8 == 0 {
			r = c.rng.Uint64()
		}
		v := int(img.Pix[i]) + int(c.noise[byte(r)])
		r >>= 8
		img.Pix[i] = uint8(max(0, min(255, v)))
	}
	return img
}

// Snapshot is the JPEG the camera gives at t: a new one at most FPS times
// a second, else the last one. ok is false when the camera is off.
func (c *Camera) Snapshot(t time.Time) (jpg []byte, ok bool) {
	m := c.mode(t)
	if m == Off {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil && m == c.lastM && t.Sub(c.lastAt) < time.Duration(float64(time.Second)/c.cfg.FPS) {
		return c.last, true
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, c.Frame(t, m), &jpeg.Options{Quality: c.cfg.Quality}); err != nil {
		panic(err) // an in-memory RGBA always encodes
	}
	c.last, c.lastAt, c.lastM = buf.Bytes(), t, m
	return c.last, true
}

// ServeHTTP answers GET and HEAD of /image.jpg as the camera does: 401
// with its realm without the right credentials, the snapshot otherwise;
// off, it closes the connection unanswered.
func (c *Camera) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if c.cfg.User != "" {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(c.cfg.User))&subtle.ConstantTimeCompare([]byte(p), []byte(c.cfg.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	jpg, ok := c.Snapshot(time.Now())
	if !ok {
		panic(http.ErrAbortHandler) // the server closes the connection
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-cache")
	if r.Method == http.MethodGet {
		w.Write(jpg)
	}
}

// ModeFile reads the camera's mode from the file at path, so that an
// operator switches it with `echo motion > PATH`; a missing or unknown
// content means Auto.
func ModeFile(path string) func() Mode {
	return func() Mode {
		b, err := os.ReadFile(path)
		if err != nil {
			return Auto
		}
		switch m := Mode(strings.TrimSpace(string(b))); m {
		case Still, Motion, Off:
			return m
		}
		return Auto
	}
}
