package main

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"time"
)

// Recorder turns frames with motion into stored events: an event opens at
// the first such frame (which is stored with a thumbnail, and alerted),
// takes one more frame every FrameEvery while motion lasts, up to
// MaxFrames, and closes after Quiet without motion.
type Recorder struct {
	Store      *Store
	FrameEvery time.Duration
	MaxFrames  int
	Quiet      time.Duration
	// Opened is told of each new event (the alerter).
	Opened func(Event)

	open       *Event
	lastMotion time.Time
	lastSaved  time.Time
	failed     time.Time // of the last event the store refused
}

// Observe records the frame jpg (decoded: img) taken at t, in which
// changed grid cells moved (motion when the detector says so).
func (r *Recorder) Observe(t time.Time, motion bool, changed int, jpg []byte, img image.Image) error {
	if r.open != nil && !motion && t.Sub(r.lastMotion) >= r.Quiet {
		id, end := r.open.ID, r.lastMotion
		r.open = nil
		// Written once, when it closes, not on every frame of motion.
		if err := r.Store.Update(id, func(ev *Event) { ev.End = end }); err != nil {
			return err
		}
	}
	if !motion {
		return nil
	}
	r.lastMotion = t
	if r.open == nil {
		// A store that cannot take the event (its disk full of other
		// files) is asked again every FrameEvery, not on every frame.
		if t.Sub(r.failed) < r.FrameEvery {
			return nil
		}
		var thumb bytes.Buffer
		if err := jpeg.Encode(&thumb, thumbnail(img, 160, 120), &jpeg.Options{Quality: 70}); err != nil {
			return err
		}
		ev, err := r.Store.Create(t, changed, jpg, thumb.Bytes())
		if err != nil {
			r.failed = t
			return err
		}
		r.open, r.lastSaved = &ev, t
		if r.Opened != nil {
			r.Opened(ev)
		}
		return nil
	}
	if r.open.Frames >= r.MaxFrames || t.Sub(r.lastSaved) < r.FrameEvery {
		return nil
	}
	if err := r.Store.AddFrame(r.open.ID, t, changed, jpg); err != nil {
		return err
	}
	r.open.Frames++
	r.lastSaved = t
	return nil
}

// thumbnail is img shrunk to w x h, each pixel the mean of its block.
func thumbnail(img image.Image, w, h int) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for ty := range h {
		for tx := range w {
			x0, x1 := b.Min.X+tx*b.Dx()/w, b.Min.X+(tx+1)*b.Dx()/w
			y0, y1 := b.Min.Y+ty*b.Dy()/h, b.Min.Y+(ty+1)*b.Dy()/h
			var sr, sg, sb, n uint32
			for y := y0; y < max(y1, y0+1); y++ {
				for x := x0; x < max(x1, x0+1); x++ {
					r, g, b, _ := img.At(x, y).RGBA()
					sr, sg, sb, n = sr+r>>8, sg+g>>8, sb+b>>8, n+1
				}
			}
			out.SetRGBA(tx, ty, color.RGBA{uint8(sr / n), uint8(sg / n), uint8(sb / n), 255})
		}
	}
	return out
}
