package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// gzipper gzips a tar. Every gunzip reads what either one makes.
type gzipper func(raw []byte) ([]byte, error)

// gzipBest is Go's gzip -9.
func gzipBest(raw []byte) ([]byte, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return gz.Bytes(), nil
}

// zopfliIterations is zopfli's fewest: more iterations gain under 0.1% on
// the binary and cost a minute each per arch.
const zopfliIterations = "--i1"

// zopfli gzips with the zopfli tool at path: a deflate stream 4 to 5% smaller
// than gzip -9's (5.08 to 4.80 MiB for mipsle), which opkg's gunzip reads
// as any other, for about 40 s of CPU per arch. opkg-lede unpacks gzip only,
// so a stronger format (xz) is not an option for the .ipk.
func zopfli(path string) gzipper {
	return func(raw []byte) ([]byte, error) {
		dir, err := os.MkdirTemp("", "paradrop-zopfli")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		// zopfli reads files only, not stdin.
		in := filepath.Join(dir, "data.tar")
		if err := os.WriteFile(in, raw, 0o600); err != nil {
			return nil, err
		}
		var stderr bytes.Buffer
		cmd := exec.Command(path, "--gzip", zopfliIterations, "-c", in)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %s", path, err, bytes.TrimSpace(stderr.Bytes()))
		}
		return out, nil
	}
}
