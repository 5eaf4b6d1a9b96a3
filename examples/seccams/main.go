// Command seccams is the SecCams chute, the ParaDrop paper's security
// camera service: it polls a LAN camera's JPEG snapshots flat out, finds
// motion by differencing each downscaled grayscale frame against a
// background, stores each motion event's frames in /data within a quota
// (oldest events dropped first), alerts a cloud notification host by name,
// retrying while the WAN is down, and serves its owner a page with the
// live view and the events, and a JSON API.
//
// It is a static Go binary in a busybox image: Python's standard library,
// which EnvSense shows moving unchanged, has no JPEG decoder.
//
// Its configuration is its environment, set by its chute.yaml:
//
//	SECCAMS_CAMERA_URL       the camera's snapshot URL
//	SECCAMS_CAMERA_USER      its basic authentication (a DCS-931L's
//	SECCAMS_CAMERA_PASSWORD  default user is admin, with no password)
//	SECCAMS_CAMERA_NAME      the camera's name in alerts
//	SECCAMS_ALERT_URL        where alerts are POSTed ("" for none)
//	SECCAMS_DATA             where events are stored
//	SECCAMS_QUOTA            bytes the events may take (suffix Ki, Mi)
//	SECCAMS_RESERVE          bytes of the filesystem kept free
//	SECCAMS_MAX_FPS          most frames processed a second, 0 for flat out
//	SECCAMS_FETCHERS         snapshots asked of the camera at once (1 to
//	                         16, default 4): enough that flat out, the CPU
//	                         bounds the rate, not the camera's answers
//	SECCAMS_LISTEN           the page's and API's address
//	SECCAMS_OWNER_PASSWORD   if set, asked for the page and API (basic
//	                         authentication, any user name)
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	cameraURL, user, password, name string
	alertURL                        string
	data                            string
	quota, reserve                  int64
	maxFPS                          float64
	fetchers                        int
	listen                          string
	ownerPassword                   string
}

func configFromEnv(getenv func(string) string) (config, error) {
	get := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	c := config{
		cameraURL: get("SECCAMS_CAMERA_URL", "http://198.51.100.30/image.jpg"),
		user:      get("SECCAMS_CAMERA_USER", "admin"),
		password:  getenv("SECCAMS_CAMERA_PASSWORD"),
		name:      get("SECCAMS_CAMERA_NAME", "camera"),
		alertURL:  getenv("SECCAMS_ALERT_URL"),
		data:      get("SECCAMS_DATA", "/data/events"),
		listen:    get("SECCAMS_LISTEN", ":80"),

		ownerPassword: getenv("SECCAMS_OWNER_PASSWORD"),
	}
	var errs []error
	var err error
	if c.quota, err = parseSize(get("SECCAMS_QUOTA", "16Mi")); err != nil {
		errs = append(errs, fmt.Errorf("SECCAMS_QUOTA: %w", err))
	}
	if c.reserve, err = parseSize(get("SECCAMS_RESERVE", "1Mi")); err != nil {
		errs = append(errs, fmt.Errorf("SECCAMS_RESERVE: %w", err))
	}
	if c.maxFPS, err = strconv.ParseFloat(get("SECCAMS_MAX_FPS", "0"), 64); err != nil || c.maxFPS < 0 {
		errs = append(errs, fmt.Errorf("SECCAMS_MAX_FPS: want a number of frames a second, 0 for no limit"))
	}
	if c.fetchers, err = strconv.Atoi(get("SECCAMS_FETCHERS", "4")); err != nil || c.fetchers < 1 || c.fetchers > 16 {
		errs = append(errs, fmt.Errorf("SECCAMS_FETCHERS: want 1 to 16 snapshots asked at once"))
	}
	return c, errors.Join(errs...)
}

// parseSize reads bytes: a number, optionally with Ki or Mi.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = n, m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<40/mult {
		return 0, fmt.Errorf("%q is not a size in bytes (suffix Ki or Mi)", s)
	}
	return n * mult, nil
}

func main() {
	log.SetFlags(0)
	cfg, err := configFromEnv(os.Getenv)
	if err != nil {
		log.Fatal("seccams: ", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		log.Fatal("seccams: ", err)
	}
	if err := run(ctx, cfg, ln); err != nil {
		log.Fatal("seccams: ", err)
	}
}

// run is the service, serving its page on ln, until ctx is done.
func run(ctx context.Context, cfg config, ln net.Listener) error {
	store, err := OpenStore(cfg.data, cfg.quota, cfg.reserve)
	if err != nil {
		return err
	}
	alerts := &Alerter{URL: cfg.alertURL, Camera: cfg.name, Store: store, Min: time.Second, Max: 30 * time.Second,
		Client: &http.Client{Timeout: 10 * time.Second}, wake: make(chan struct{}, 1)}
	p := &processor{
		cam: &cameraClient{url: cfg.cameraURL, user: cfg.user, password: cfg.password,
			client: &http.Client{Timeout: 5 * time.Second, CheckRedirect: noRedirects}},
		det: NewDetector(),
		rec: &Recorder{Store: store, FrameEvery: 500 * time.Millisecond, MaxFrames: 6, Quiet: 2 * time.Second},
	}
	var wg sync.WaitGroup
	if cfg.alertURL != "" {
		p.rec.Opened = func(Event) { alerts.Notify() }
		wg.Go(func() { alerts.Run(ctx) })
	}
	svc := &service{store: store, live: p.lastJPEG, password: cfg.ownerPassword, status: func() Status {
		st := p.status()
		st.Camera = cfg.cameraURL
		st.Store = store.Usage()
		st.Alerts = alerts.Status()
		return st
	}}
	srv := &http.Server{Handler: svc.handler(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	wg.Go(func() { p.meter(ctx) })
	wg.Go(func() { p.run(ctx, cfg.maxFPS, cfg.fetchers) })
	log.Printf("seccams: camera %s, events in %s (quota %d bytes), alerts to %q, page on %s", cfg.cameraURL, cfg.data, cfg.quota, cfg.alertURL, ln.Addr())
	select {
	case <-ctx.Done():
	case err = <-srvErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// noRedirects keeps the camera's answer: a camera redirecting its
// snapshot elsewhere is broken or hostile, and the chute fetches nothing
// but from the camera its manifest names.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// processor is the camera loop and what it knows.
type processor struct {
	cam *cameraClient
	det *Detector
	rec *Recorder

	frames atomic.Uint64

	mu      sync.Mutex
	last    []byte
	lastAt  time.Time
	motion  bool
	camErr  string
	fps     float64
	samples []sample // of frames, one a second, for fps
}

type sample struct {
	t time.Time
	n uint64
}

// run processes snapshots as fast as the CPU it is given allows (or
// maxFPS a second), until ctx is done. The next snapshots are fetched,
// fetchers at once, while one is processed, so that the rate is the
// CPU's, not the time the camera takes to answer.
func (p *processor) run(ctx context.Context, maxFPS float64, fetchers int) {
	snaps := make(chan []byte, 1)
	var fetching sync.WaitGroup
	for range fetchers {
		fetching.Go(func() { p.fetch(ctx, snaps) })
	}
	go func() {
		fetching.Wait()
		close(snaps)
	}()
	var backoff backoff
	var storeErr string
	for jpg := range snaps {
		begin := time.Now()
		err := p.process(jpg, &storeErr)
		p.cameraState(err)
		wait := backoff.next(err)
		if err == nil && maxFPS > 0 {
			wait = time.Duration(float64(time.Second)/maxFPS) - time.Since(begin)
		}
		sleep(ctx, wait)
	}
}

// fetch sends the camera's snapshots to out until ctx is done.
func (p *processor) fetch(ctx context.Context, out chan<- []byte) {
	var backoff backoff
	for ctx.Err() == nil {
		jpg, err := p.cam.snapshot(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.cameraState(err)
			}
			sleep(ctx, backoff.next(err))
			continue
		}
		backoff.next(nil)
		select {
		case out <- jpg:
		case <-ctx.Done():
		}
	}
}

// backoff is the wait after a failure: 250 ms, doubling to 5 s, back to
// none after a success; its zero value is ready.
type backoff struct{ d time.Duration }

func (b *backoff) next(err error) time.Duration {
	if err == nil {
		b.d = 0
		return 0
	}
	b.d = min(max(2*b.d, 250*time.Millisecond), 5*time.Second)
	return b.d
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// cameraState records (and logs, when it changes) whether the camera's
// last snapshot could be fetched and decoded.
func (p *processor) cameraState(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil && p.camErr != err.Error():
		log.Printf("seccams: %v", err)
		p.camErr = err.Error()
	case err == nil && p.camErr != "":
		log.Printf("seccams: the camera answers again")
		p.camErr = ""
	}
}

// process decodes and looks at one snapshot. An error storing it is
// logged once, not returned: the camera is fine.
func (p *processor) process(jpg []byte, storeErr *string) error {
	img, err := decodeFrame(jpg)
	if err != nil {
		return err
	}
	now := time.Now()
	changed := p.det.Observe(now, cellsOf(img))
	motion := p.det.Motion(changed)
	if err := p.rec.Observe(now, motion, changed, jpg, img); err != nil && err.Error() != *storeErr {
		log.Printf("seccams: %v", err)
		*storeErr = err.Error()
	} else if err == nil {
		*storeErr = ""
	}
	p.frames.Add(1)
	p.mu.Lock()
	p.last, p.lastAt, p.motion = jpg, now, motion
	p.mu.Unlock()
	return nil
}

// meter samples the frame count every second; fps is the rate over the
// last five.
func (p *processor) meter(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		now := time.Now()
		p.mu.Lock()
		p.samples = append(p.samples, sample{now, p.frames.Load()})
		if len(p.samples) > 6 {
			p.samples = p.samples[1:]
		}
		if first, last := p.samples[0], p.samples[len(p.samples)-1]; last.t.After(first.t) {
			p.fps = float64(last.n-first.n) / last.t.Sub(first.t).Seconds()
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *processor) lastJPEG() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *processor) status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{FPS: p.fps, Frames: p.frames.Load(), CameraOK: p.camErr == "" && p.last != nil, CameraError: p.camErr, Motion: p.motion}
	if !p.lastAt.IsZero() {
		t := p.lastAt
		st.LastFrame = &t
	}
	return st
}
