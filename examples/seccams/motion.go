package main

import (
	"image"
	"image/color"
	"math"
	"time"
)

// The grid motion is looked for on: a 640x480 frame's 8x8 blocks. A
// block's mean averages its pixels' sensor noise down by 8 (the square
// root of 64), so a threshold well above that noise and well below what a
// moving object changes tells them apart.
const gridW, gridH = 80, 60

// cellsOf is img downscaled to the grid in grayscale (luma, 0-255): the
// mean of each cell's pixels. JPEG's colour frames decode to YCbCr, whose
// Y plane is the luma already.
func cellsOf(img image.Image) []float32 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	sums := make([]uint32, gridW*gridH)
	counts := make([]uint32, gridW*gridH)
	col := make([]int, w) // column -> cell column
	for x := range w {
		col[x] = x * gridW / w
	}
	add := func(y int, luma func(x int) uint8) {
		row := (y - b.Min.Y) * gridH / h * gridW
		for x := range w {
			c := row + col[x]
			sums[c] += uint32(luma(x))
			counts[c]++
		}
	}
	switch m := img.(type) {
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			line := m.Y[m.YOffset(b.Min.X, y):]
			add(y, func(x int) uint8 { return line[x] })
		}
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			line := m.Pix[m.PixOffset(b.Min.X, y):]
			add(y, func(x int) uint8 { return line[x] })
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			add(y, func(x int) uint8 { return color.GrayModel.Convert(img.At(b.Min.X+x, y)).(color.Gray).Y })
		}
	}
	cells := make([]float32, len(sums))
	for i := range cells {
		if counts[i] > 0 {
			cells[i] = float32(sums[i]) / float32(counts[i])
		}
	}
	return cells
}

// Detector finds motion by differencing each frame against a background:
// the running mean of past frames, which follows slow changes (light,
// something moved and left) with time constant Tau. A cell has changed
// when it is Threshold levels off the background; a frame has motion when
// MinCells cells have.
type Detector struct {
	Threshold float32
	MinCells  int
	Tau       time.Duration

	bg   []float32
	last time.Time
}

// NewDetector has the defaults SecCams runs with: with the camera's noise
// (4 levels a pixel, half a level a cell) a still scene changes no cell
// past 15 levels, and a person crossing the picture changes a hundred.
func NewDetector() *Detector {
	return &Detector{Threshold: 15, MinCells: 12, Tau: 2 * time.Second}
}

// Observe compares the frame's cells taken at t with the background, then
// moves the background toward them; it returns how many cells changed.
// The first frame is the background.
func (d *Detector) Observe(t time.Time, cells []float32) int {
	if len(d.bg) != len(cells) {
		d.bg = append([]float32(nil), cells...)
		d.last = t
		return 0
	}
	changed := 0
	for i, c := range cells {
		if diff := c - d.bg[i]; diff > d.Threshold || diff < -d.Threshold {
			changed++
		}
	}
	// Exponential smoothing by elapsed time, so that the background's
	// memory does not depend on the frame rate the CPU allows.
	a := float32(1 - math.Exp(-float64(t.Sub(d.last))/float64(d.Tau)))
	a = max(0, min(1, a))
	for i, c := range cells {
		d.bg[i] += a * (c - d.bg[i])
	}
	d.last = t
	return changed
}

// Motion reports whether changed cells are motion.
func (d *Detector) Motion(changed int) bool { return changed >= d.MinCells }
