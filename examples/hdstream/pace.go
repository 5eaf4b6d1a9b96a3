package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

const (
	tickPeriod  = 5 * time.Millisecond
	maxLate     = 50 * time.Millisecond
	packetSize  = 1250 // bytes of UDP payload, and of each encoded unit
	encodeLoops = 40   // passes of the "encoder" over each packet
)

// parseRate reads a stream rate in bit/s.
func parseRate(s string) (float64, error) {
	rate, err := strconv.ParseFloat(s, 64)
	if err != nil || !(rate > 0 && rate <= 1e9) {
		return 0, fmt.Errorf("rate %q: want bits per second, at most 1e9", s)
	}
	return rate, nil
}

// pace produces a live stream of rate bit/s until ctx ends or send fails:
// every tick a chunk of packets, each encoded, handed to send. Ticks past
// the playout budget are skipped (their count goes to skipped, if set).
func pace(ctx context.Context, rate float64, skipped func(int), send func(pkt []byte) error) error {
	perTick := int(rate / 8 * tickPeriod.Seconds())
	pkt := make([]byte, packetSize)
	next := time.Now()
	var seq uint64
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if late := time.Since(next); late > maxLate {
			// Skip the ticks past their budget: their data is stale.
			if skipped != nil {
				skipped(int(late / tickPeriod))
			}
			next = next.Add(late.Truncate(tickPeriod))
		}
		for sent := 0; sent < perTick; sent += len(pkt) {
			seq++
			encode(pkt, seq)
			if err := send(pkt[:min(len(pkt), perTick-sent)]); err != nil {
				return err
			}
		}
		next = next.Add(tickPeriod)
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
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

// streamUDP is the bench's streamer: a UDP stream of rate bit/s to addr.
func streamUDP(addr, rateArg string) error {
	rate, err := parseRate(rateArg)
	if err != nil {
		return err
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	defer conn.Close()
	return pace(context.Background(), rate, nil, func(pkt []byte) error {
		// A full socket buffer or a refusal from the receiver is a lost
		// packet, as on a real link; the stream goes on.
		conn.Write(pkt)
		return nil
	})
}
