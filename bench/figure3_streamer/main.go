// Command figure3_streamer is the static helper that the figure3 bench
// suite copies into its two chutes' rootfs. It has two modes:
//
//	figure3_streamer stream ADDR RATE   a live UDP stream of RATE bit/s to ADDR
//	figure3_streamer process DIR        an "image processor" reporting to DIR
//
// The stream is paced by the chute itself, in ticks of tickPeriod; each
// tick's chunk is "encoded" (fixed CPU work per byte) before it is sent.
// Like a live video stream, data later than its playout budget (maxLate)
// is skipped, not sent: a streamer starved of CPU sends less. Within the
// budget, late ticks are sent at once, catching up.
//
// The processor runs GOMAXPROCS workers, each blurring a frame after
// another. At first each worker sleeps most of the time (duty cycle
// lowDuty); once the file DIR/full exists they run flat out. Every
// reportEvery it appends "UNIX_NS FRAMES CPU_NS" to DIR/frames.log: the
// frames done so far and the CPU time the process has used, so the bench
// can tell its frame rate and its frames per CPU-second.
package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	tickPeriod  = 5 * time.Millisecond
	maxLate     = 50 * time.Millisecond
	packetSize  = 1250 // bytes of UDP payload
	encodeLoops = 40   // passes of the "encoder" over each packet
	reportEvery = 100 * time.Millisecond
	lowDuty     = 0.04 // of each worker while DIR/full is absent
	frameW      = 320
	frameH      = 240
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: figure3_streamer stream ADDR RATE | process DIR")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "stream":
		if len(os.Args) != 4 {
			err = fmt.Errorf("stream wants ADDR RATE")
			break
		}
		err = stream(os.Args[2], os.Args[3])
	case "process":
		err = process(os.Args[2])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "figure3_streamer:", err)
		os.Exit(1)
	}
}

func stream(addr, rateArg string) error {
	rate, err := strconv.ParseFloat(rateArg, 64)
	if err != nil || rate <= 0 {
		return fmt.Errorf("rate %q: want bits per second", rateArg)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	defer conn.Close()
	perTick := int(rate / 8 * tickPeriod.Seconds())
	pkt := make([]byte, packetSize)
	next := time.Now()
	var seq uint64
	for {
		if late := time.Since(next); late > maxLate {
			// Skip the ticks past their budget: their data is stale.
			next = next.Add(late.Truncate(tickPeriod))
		}
		for sent := 0; sent < perTick; sent += len(pkt) {
			seq++
			encode(pkt, seq)
			// A full socket buffer or a refusal from the receiver is
			// a lost packet, as on a real link; the stream goes on.
			conn.Write(pkt[:min(len(pkt), perTick-sent)])
		}
		next = next.Add(tickPeriod)
		time.Sleep(time.Until(next))
	}
}

// encode fills pkt with the sequence number and pseudo-content worked
// over encodeLoops times: the per-byte CPU cost of a transcoding streamer.
func encode(pkt []byte, seq uint64) {
	x := uint32(seq) | 1
	for range encodeLoops {
		for i := range pkt {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			pkt[i] ^= byte(x)
		}
	}
	for i := range 8 {
		pkt[i] = byte(seq >> (8 * i))
	}
}

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
