package main

// The figure3-demo suite records the paper's Figure 3 on a running demo
// gateway (`make demo`): SecCams and the HD stream chute sharing a CPU,
// the demo's LAN viewer reporting the rate the stream reaches it at. It
// plays the scene through the demo's own knobs (the camera's mode file,
// the operator API's resources policy), records it with the figure3
// suite's recorder and plot, and leaves the demo as it found it.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"paradrop/api"
	"paradrop/cgroup"
	"paradrop/chute"
	"paradrop/chute/manifest"
	"paradrop/examples/lan"
)

func init() {
	suites["figure3-demo"] = suite{manual: true, run: runFigure3Demo,
		summary: "the paper's Figure 3 on the running demo gateway (make demo): SecCams slows the HD stream, the operator lowers its CPU"}
}

// The scene's timeline.
const (
	fig3DemoWindow = time.Second // the viewer reports once a second
	fig3DemoAlone  = 8 * time.Second
	fig3DemoPhase  = 10 * time.Second // SecCams flat out, then limited
	fig3DemoCPUMax = 0.1
	fig3DemoGrace  = "1s"
	fig3DemoPoll   = 100 * time.Millisecond
)

// fig3Demo is the running demo as the recorder sees it.
type fig3Demo struct {
	api             *daemon
	secCams, stream string // http://IP of each chute
	cameraMode      string // the camera's mode file
	group           *cgroup.Group
	chutes          *http.Client // reaches the chutes' addresses
	mu              sync.Mutex
	reps            []fig3Report // SecCams: frames and CPU, every fig3DemoPoll
	reports         map[time.Time]float64
	cameraOK        bool
	lastFrames      uint64
}

func runFigure3Demo(ctx context.Context, o options) (string, error) {
	d, err := openFig3Demo(ctx, o)
	if err != nil {
		return "", err
	}
	// What the scene changes, put back however it ends.
	var before manifest.Resources
	if _, err := d.api.call(ctx, "GET", "/chutes/seccams/resources", nil, &before); err != nil {
		return "", err
	}
	oldMode, err := os.ReadFile(d.cameraMode)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	defer func() {
		restore := fmt.Sprintf(`{"cpu_max": %g, "grace": "0s"}`, before.CPUMax)
		if err := d.api.change(context.Background(), "PUT", "/chutes/seccams/resources", strings.NewReader(restore)); err != nil {
			fmt.Fprintln(os.Stderr, "figure3-demo: restore seccams' cpu_max:", err)
		}
		if len(oldMode) == 0 {
			oldMode = []byte("auto\n")
		}
		if err := os.WriteFile(d.cameraMode, oldMode, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "figure3-demo: restore the camera:", err)
		}
	}()
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	polling := make(chan struct{})
	go func() { d.poll(pollCtx); close(polling) }()

	fmt.Println("unplugging the camera: SecCams idles, the stream runs alone...")
	if err := os.WriteFile(d.cameraMode, []byte("off\n"), 0o644); err != nil {
		return "", err
	}
	if err := fig3WaitFor(ctx, 15*time.Second, "SecCams to see the camera gone", func() bool { return !d.state().cameraOK }); err != nil {
		return "", err
	}
	if err := fig3Sleep(ctx, time.Now().Add(2*time.Second)); err != nil {
		return "", err
	}
	t0 := time.Now()
	r := &fig3Run{n: 1, t0: t0, pinnedCPU: -1}
	if err := fig3Sleep(ctx, t0.Add(fig3DemoAlone)); err != nil {
		return "", err
	}
	fmt.Println("plugging it back in: SecCams processes flat out...")
	if err := os.WriteFile(d.cameraMode, []byte("still\n"), 0o644); err != nil {
		return "", err
	}
	// SecCams retries an unplugged camera with a backoff of up to 5 s:
	// full speed is when its frames count again.
	start := d.state().lastFrames
	if err := fig3WaitFor(ctx, 15*time.Second, "SecCams to process frames again", func() bool {
		st := d.state()
		return st.cameraOK && st.lastFrames > start
	}); err != nil {
		return "", err
	}
	r.fullAt = time.Since(t0).Seconds()
	full := math.Floor(r.fullAt)
	if err := fig3Sleep(ctx, t0.Add(fig3Secs(full)+fig3DemoPhase)); err != nil {
		return "", err
	}
	fmt.Printf("the operator lowers SecCams' CPU: cpu_max %g, grace %s...\n", fig3DemoCPUMax, fig3DemoGrace)
	r.requestAt = time.Since(t0).Seconds()
	var queued struct {
		ChangeID uint64 `json:"change_id"`
	}
	body := fmt.Sprintf(`{"cpu_max": %g, "grace": %q}`, fig3DemoCPUMax, fig3DemoGrace)
	if _, err := d.api.call(ctx, "PUT", "/chutes/seccams/resources", strings.NewReader(body), &queued); err != nil {
		return "", err
	}
	request := math.Floor(r.requestAt)
	end := request + fig3DemoPhase.Seconds()
	if err := fig3Sleep(ctx, t0.Add(fig3Secs(end)+1500*time.Millisecond)); err != nil {
		return "", err
	}
	stopPolling()
	<-polling
	var c chute.Change
	if _, err := d.api.call(ctx, "GET", fmt.Sprintf("/changes/%d", queued.ChangeID), nil, &c); err != nil {
		return "", err
	}
	if c.State != chute.ChangeDone {
		return "", fmt.Errorf("resources change %d: %s: %s", c.ID, c.State, c.Error)
	}
	r.scene = fig3Scene{window: fig3DemoWindow, full: full, request: request, end: end, cpuMax: fig3DemoCPUMax, grace: fig3DemoGrace,
		rateMbps: 20, subtitle: "the demo gateway, SecCams and the HD stream on one CPU",
		procAxis: "SecCams (frames/s)", fullLabel: "camera plugged in: SecCams flat out", fullNote: fmt.Sprintf("t=1–%.0f s", full)}
	windows := int(end)
	r.stream = d.streamWindows(t0, windows)
	r.fps = fig3FrameRates(d.reps, t0, windows, fig3DemoWindow)
	if err := r.analyse(c, d.reps); err != nil {
		return "", err
	}
	fmt.Printf("  %s\n", r.summary())
	for path, content := range map[string]string{"bench/figure3-demo.csv": r.csv(), "bench/figure3-demo.svg": r.svg()} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return fig3DemoMarkdown(r, before), nil
}

// openFig3Demo finds the demo's API, its two chutes and SecCams' group.
func openFig3Demo(ctx context.Context, o options) (*fig3Demo, error) {
	tok, err := os.ReadFile(filepath.Join(o.demoData, api.TokenFile))
	if err != nil {
		return nil, fmt.Errorf("is the demo running (make demo)? %w", err)
	}
	d := &fig3Demo{api: &daemon{base: "http://" + o.demoAPI + "/api/v1", token: strings.TrimSpace(string(tok)), client: &http.Client{Timeout: 10 * time.Second}},
		cameraMode: filepath.Join(o.demoData, "lan", "camera.mode"), reports: map[time.Time]float64{},
		chutes: &http.Client{Timeout: time.Second}}
	if o.demoNetNS != "" {
		d.chutes = (&lan.Device{NetNS: o.demoNetNS}).HTTPClient(time.Second)
	}
	for name, url := range map[string]*string{"seccams": &d.secCams, "hdstream": &d.stream} {
		in, err := d.api.chute(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("the demo's %s chute: %w", name, err)
		}
		if in.State != chute.Running || in.IP == "" {
			return nil, fmt.Errorf("the demo's %s chute is %s, with address %q", name, in.State, in.IP)
		}
		*url = "http://" + in.IP
	}
	if d.group, err = cgroup.Load(o.demoCgroup + "/seccams"); err != nil {
		return nil, err
	}
	return d, nil
}

// poll samples SecCams (frames, CPU) and the stream's viewer reports
// every fig3DemoPoll until ctx ends.
func (d *fig3Demo) poll(ctx context.Context) {
	hc := d.chutes
	tick := time.NewTicker(fig3DemoPoll)
	defer tick.Stop()
	for {
		var sc struct {
			Frames   uint64
			CameraOK bool `json:"camera_ok"`
		}
		secErr := fig3GetJSON(ctx, hc, d.secCams+"/api/status", &sc)
		st, err := d.group.Stats()
		now := time.Now()
		var hs struct {
			Reports []struct {
				Mbps float64
				At   time.Time
			}
		}
		// A missed sample is made up for by the next: the series are
		// interpolated (SecCams) or held (the stream).
		streamErr := fig3GetJSON(ctx, hc, d.stream+"/api/status", &hs)
		d.mu.Lock()
		if secErr == nil && err == nil {
			d.reps = append(d.reps, fig3Report{ns: now.UnixNano(), frames: int64(sc.Frames), cpuNs: int64(st.CPUUsageNs)})
			d.cameraOK, d.lastFrames = sc.CameraOK, sc.Frames
		}
		if streamErr == nil {
			for _, rep := range hs.Reports {
				d.reports[rep.At] = rep.Mbps
			}
		}
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type fig3DemoState struct {
	cameraOK   bool
	lastFrames uint64
}

func (d *fig3Demo) state() fig3DemoState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fig3DemoState{d.cameraOK, d.lastFrames}
}

// streamWindows is the stream's rate in each window from t0: the viewer's
// report that covers it (a report covers the second before it; the one
// made within half a second of the window's end), or the one before.
func (d *fig3Demo) streamWindows(t0 time.Time, windows int) []float64 {
	out := make([]float64, windows)
	last := 0.0
	for k := range out {
		end := t0.Add(time.Duration(k+1) * fig3DemoWindow)
		best := time.Duration(math.MaxInt64)
		for at, mbps := range d.reports {
			if off := at.Sub(end).Abs(); off < fig3DemoWindow/2 && off < best {
				best, last = off, mbps
			}
		}
		out[k] = last
	}
	return out
}

func fig3GetJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	dd := &daemon{base: url, client: hc}
	_, err := dd.call(ctx, "GET", "", nil, out)
	return err
}

// fig3DemoMarkdown is the README section of a demo recording.
func fig3DemoMarkdown(r *fig3Run, before manifest.Resources) string {
	var b strings.Builder
	fmt.Fprintf(&b, "![Figure 3 on the demo gateway](figure3-demo.svg)\n\nIts data is [figure3-demo.csv](figure3-demo.csv).\n\n")
	fmt.Fprintf(&b, "The stream reaches the demo's LAN viewer at %.1f Mbit/s while SecCams idles (its camera unplugged), at %.1f Mbit/s once it processes flat out (%.0f%% of its rate alone), and at %.1f Mbit/s after the operator's limit (%.0f%%). "+
		"SecCams: %.0f → %.0f → %.0f frames/s (cpu_max %g allows ≈ %.0f). Force applied %s after the grace; the stream back within 10%% of its rate alone %s after the force.\n\n",
		r.baseline, r.contended, 100*r.contended/r.baseline, r.after, 100*r.after/r.baseline,
		r.fpsLow, r.fpsFull, r.fpsLimited, r.scene.cpuMax, r.limitFPS, fig3Ms(r.forceDelay), fig3Dur(r.streamBack, r.back))
	b.WriteString("Steps of the change (times from the request):\n\n")
	for _, s := range r.steps {
		fmt.Fprintf(&b, "- +%s %s\n", fig3Ms(fig3Secs(r.rel(s.Time))-fig3Secs(r.requestAt)), s.Message)
	}
	fmt.Fprintf(&b, "\n"+fig3DemoNotes, before.CPUMax)
	return b.String()
}

const fig3DemoNotes = `How it is recorded:

- On the running demo (` + "`make demo`" + `, then ` + "`go run ./bench figure3-demo`" + ` as root
  from the module root). The demo's operator gave SecCams and the HD stream
  chute CPU 0 to share (a cpus policy of each, enforced by the cgroup
  cpuset controller); SecCams' manifest gives it cpu_weight 800 against the
  stream's 100 and a whole core: flat out it is the gateway's CPU-intensive
  application.
- The stream: what the demo's viewer (a namespace on the LAN pulling
  /stream from the gateway's port 8004) reports each second to the stream
  chute, read from the chute's /api/status every 100 ms; each 1 s window
  takes the report made at its end. SecCams: its frame count from its
  /api/status and its cgroup's CPU time, every 100 ms, interpolated at the
  window edges.
- The scene: the camera's mode file set to off (SecCams idles, after the
  first window the stream runs alone), then to still (SecCams processes
  flat out from its first frame, which its retry backoff delays up to 5 s),
  then, 10 s later, PUT {"cpu_max": 0.1, "grace": "1s"} to
  /api/v1/chutes/seccams/resources; 10 s more are recorded. SecCams
  ignores the published policy, so the limit is forced when the grace ends.
- Afterwards the camera's mode and SecCams' cpu_max (%g) are put back.
- The demo's chutes share the machine with whatever else runs: the figures
  vary with its load.
`
