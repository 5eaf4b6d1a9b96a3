package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
)

// Bounds on what the camera may send: a snapshot's bytes, and its pixels,
// checked in the JPEG's header before its image is allocated.
const (
	maxFrameBytes = 4 << 20
	// Full HD, three times the DCS-931L's 640x480. A progressive JPEG's
	// decoder holds every coefficient, 6 bytes a pixel: 12 MiB at this
	// size, within the chute's memory.
	maxFramePixels = 1920 * 1080
)

// errCameraAuth is the camera refusing the credentials.
var errCameraAuth = errors.New("the camera refused the credentials (SECCAMS_CAMERA_USER, SECCAMS_CAMERA_PASSWORD)")

// cameraClient fetches snapshots.
type cameraClient struct {
	url, user, password string
	client              *http.Client
}

// snapshot GETs one JPEG from the camera.
func (c *cameraClient) snapshot(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, errCameraAuth
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("camera: %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFrameBytes+1))
	if err != nil {
		return nil, fmt.Errorf("camera: %w", err)
	}
	if len(b) > maxFrameBytes {
		return nil, fmt.Errorf("camera: snapshot over %d bytes", maxFrameBytes)
	}
	return b, nil
}

// decodeFrame decodes a snapshot, refusing one that is not a JPEG, is
// larger than maxFramePixels or smaller than the motion grid.
func decodeFrame(b []byte) (image.Image, error) {
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if cfg.Width < gridW || cfg.Height < gridH || int64(cfg.Width)*int64(cfg.Height) > maxFramePixels {
		return nil, fmt.Errorf("snapshot: %dx%d pixels, want %dx%d to %d pixels", cfg.Width, cfg.Height, gridW, gridH, maxFramePixels)
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return img, nil
}
