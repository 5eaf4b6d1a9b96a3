package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"paradrop/sdn/ofp"
)

func init() {
	register("ofp", command{summary: "decode binary OpenFlow messages", run: runOfp})
}

const ofpUsage = "usage: paradrop ofp decode [--roundtrip] FILE|-"

// runOfp decodes a stream of concatenated OpenFlow 1.3 messages, printing
// each as one JSON object per line. With --roundtrip it also checks that
// re-encoding reproduces every message's bytes, for use against captures
// from real switches.
func runOfp(args []string) int {
	return ofpDecode(args, os.Stdin, os.Stdout, os.Stderr)
}

func ofpDecode(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "decode" {
		fmt.Fprintln(stderr, ofpUsage)
		return 2
	}
	args = args[1:]
	roundtrip := false
	if len(args) > 0 && args[0] == "--roundtrip" {
		roundtrip = true
		args = args[1:]
	}
	if len(args) != 1 {
		fmt.Fprintln(stderr, ofpUsage)
		return 2
	}
	in := stdin
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			fmt.Fprintf(stderr, "paradrop ofp: %v\n", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	data, err := io.ReadAll(in)
	if err != nil {
		fmt.Fprintf(stderr, "paradrop ofp: reading input: %v\n", err)
		return 1
	}
	r := bytes.NewReader(data)
	status := 0
	for n := 0; ; n++ {
		off := len(data) - r.Len()
		m, err := ofp.ReadMessage(r)
		if errors.Is(err, io.EOF) {
			return status
		}
		if err != nil {
			fmt.Fprintf(stderr, "paradrop ofp: message %d at byte %d: %v\n", n, off, err)
			return 1
		}
		line, err := json.Marshal(m)
		if err != nil {
			fmt.Fprintf(stderr, "paradrop ofp: message %d at byte %d: %v\n", n, off, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", line)
		if roundtrip {
			raw := data[off : len(data)-r.Len()]
			enc, err := m.MarshalBinary()
			if err != nil || !bytes.Equal(enc, raw) {
				fmt.Fprintf(stderr, "paradrop ofp: message %d at byte %d does not re-encode to its bytes (%v)\n", n, off, err)
				status = 1
			}
		}
	}
}
