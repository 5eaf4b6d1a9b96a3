package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// The bench's image processor: GOMAXPROCS workers, each blurring a frame
// after another. At first each worker sleeps most of the time (duty cycle
// lowDuty); once the file DIR/full exists they run flat out. Every
// reportEvery it appends "UNIX_NS FRAMES CPU_NS" to DIR/frames.log: the
// frames done so far and the CPU time the process has used, so the bench
// can tell its frame rate and its frames per CPU-second.
const (
	reportEvery = 100 * time.Millisecond
	lowDuty     = 0.04 // of each worker while DIR/full is absent
	frameW      = 320
	frameH      = 240
)

func process(dir string) error {
	log, err := os.OpenFile(filepath.Join(dir, "frames.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	defer log.Close()
	var frames atomic.Int64
	var full atomic.Bool
	for range runtime.GOMAXPROCS(0) {
		go worker(&frames, &full)
	}
	for range time.Tick(reportEvery) {
		if _, err := os.Stat(filepath.Join(dir, "full")); err == nil {
			full.Store(true)
		}
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return fmt.Errorf("process: getrusage: %w", err)
		}
		cpu := ru.Utime.Nano() + ru.Stime.Nano()
		if _, err := fmt.Fprintf(log, "%d %d %d\n", time.Now().UnixNano(), frames.Load(), cpu); err != nil {
			return fmt.Errorf("process: %w", err)
		}
	}
	return nil
}

// worker blurs frames one after another; until full is set it sleeps
// after each frame so that it works only lowDuty of the time.
func worker(frames *atomic.Int64, full *atomic.Bool) {
	src, dst := make([]uint8, frameW*frameH), make([]uint8, frameW*frameH)
	for i := range src {
		src[i] = uint8(i * 7)
	}
	for {
		start := time.Now()
		blur(dst, src)
		src, dst = dst, src
		frames.Add(1)
		if !full.Load() {
			time.Sleep(time.Duration(float64(time.Since(start)) * (1 - lowDuty) / lowDuty))
		}
	}
}

// blur is a 3×3 box blur of the frame's interior: a fixed amount of work.
func blur(dst, src []uint8) {
	for y := 1; y < frameH-1; y++ {
		for x := 1; x < frameW-1; x++ {
			var s int
			for dy := -1; dy <= 1; dy++ {
				row := (y + dy) * frameW
				s += int(src[row+x-1]) + int(src[row+x]) + int(src[row+x+1])
			}
			dst[y*frameW+x] = uint8(s / 9)
		}
	}
}
