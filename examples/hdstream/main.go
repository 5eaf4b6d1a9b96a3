// Command hdstream is the HD stream chute of the demo, the other half of
// the ParaDrop paper's Figure 3: a live video stream from the gateway to a
// LAN viewer, which a CPU-hungry chute on the same CPU slows down until
// the operator lowers that chute's CPU. With no arguments it is the chute:
//
//	hdstream                     serve the stream over HTTP (below)
//
// Two more modes serve the figure3 bench, which copies this binary into
// its own two chutes:
//
//	hdstream stream ADDR RATE    a live UDP stream of RATE bit/s to ADDR
//	hdstream process DIR         an "image processor" reporting to DIR
//
// The stream is paced by the chute itself, in ticks of tickPeriod; each
// tick's chunk is "encoded" (fixed CPU work per byte) before it is sent.
// Like a live video stream, data later than its playout budget (maxLate)
// is skipped, not sent: a streamer starved of CPU sends less. Within the
// budget, late ticks are sent at once, catching up.
//
// As a chute its configuration is its environment (its chute.yaml):
//
//	HDSTREAM_RATE     the stream's rate in bit/s (default 20000000)
//	HDSTREAM_LISTEN   the page's, API's and stream's address (default :80)
//
// and it serves:
//
//	GET  /stream         the live stream, to each of at most maxViewers viewers
//	POST /api/report     a viewer's report of the rate it receives: {"viewer":ID,"mbps":X}
//	GET  /api/status     the stream's rate, what it sent over the last second,
//	                     and each viewer's last report
//	GET  /               a page showing them live
//	GET  /healthz        200 while it serves
package main

import (
	"fmt"
	"os"
)

func main() {
	var err error
	switch {
	case len(os.Args) == 1:
		err = serveFromEnv()
	case os.Args[1] == "stream" && len(os.Args) == 4:
		err = streamUDP(os.Args[2], os.Args[3])
	case os.Args[1] == "process" && len(os.Args) == 3:
		err = process(os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "usage: hdstream | hdstream stream ADDR RATE | hdstream process DIR")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hdstream:", err)
		os.Exit(1)
	}
}
