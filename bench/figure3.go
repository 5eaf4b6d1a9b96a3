package main

// The figure3 suite reproduces Figure 3 of the ParaDrop paper (MobiArch
// 2014): two chutes share a gateway, a streamer sending a constant-rate
// stream to a LAN client and a CPU-hungry image processor. When the
// processor goes full speed the stream suffers; the operator lowers the
// processor's CPU through the API, the change goes through the two phases
// (ask, grace, force) and the stream recovers.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"paradrop/chute"
	"paradrop/examples"
)

func init() {
	suites["figure3"] = suite{summary: "the paper's Figure 3: a stream and a CPU hog on one CPU, the operator's CPU limit (ask, grace, force)", run: runFigure3}
}

// The timeline of one run, from t=0, and the operator's request.
const (
	fig3Runs     = 3
	fig3FullAt   = 4 * time.Second  // the processor goes full speed
	fig3Request  = 9 * time.Second  // the operator lowers its CPU
	fig3End      = 15 * time.Second // end of the recording
	fig3CPUMax   = 0.2              // cores: the operator's new limit
	fig3Grace    = "1s"
	fig3RateBits = 20_000_000 // the stream's rate, bit/s
	// fig3ProcWeight is the processor's cpu_weight (the streamer has the
	// default 100). The CPU controller shares a CPU between cgroups, not
	// threads, so a processor of equal weight could take at most half of
	// it however many threads it ran; the manifest makes it the gateway's
	// priority application, as the paper's "CPU-intensive" chute is.
	fig3ProcWeight = 800
	fig3Settle     = 1500 * time.Millisecond // both chutes running before t=0
)

// Goals and the definitions of "back to normal".
const (
	fig3ForceGoal   = 100 * time.Millisecond // force applied after the grace's end
	fig3StreamGoal  = time.Second            // stream back after the force
	fig3StableRun   = 3                      // consecutive windows that make "stable"
	fig3FPSMargin   = 1.15                   // over the limit's expected frame rate
	fig3StreamSlack = 0.10                   // of the pre-t=4 stream rate
)

const fig3Helper = "hdstream" // examples/hdstream, in the chutes' rootfs, at /

var fig3Manifests = map[string]string{
	"streamer": fmt.Sprintf(`name: streamer
version: 1.0.0
command: ["/%s", "stream", "%s:%d", "%d"]
net:
  lan: [{ip: %s}]
resources: {cpus: "%d"}
stop_grace: 0s
`, fig3Helper, fig3LANClient.Addr(), fig3StreamPort, fig3RateBits, fig3LANClient.Addr(), fig3SharedCPU),
	"processor": fmt.Sprintf(`name: processor
version: 1.0.0
command: ["/%s", "process", "/data"]
env: {GOMAXPROCS: "4"}
resources: {cpu_weight: %d, pids: 128, cpus: "%d"}
stop_grace: 0s
`, fig3Helper, fig3ProcWeight, fig3SharedCPU),
}

// fig3SharedCPU is the one CPU both chutes share (their manifests' cpus, which
// the cgroup cpuset enforces), so that they contend on a 2-core machine.
var fig3SharedCPU = runtime.NumCPU() - 1

// fig3Run is one run's recording and what was measured from it. Times
// are seconds since t=0.
type fig3Run struct {
	n             int
	t0            time.Time
	stream, fps   []float64 // Mbit/s and frames/s per window
	fullAt        float64
	requestAt     float64
	graceEnd      float64
	forceAt       float64
	forceDelay    time.Duration // after the grace, as the change's step says
	steps         []chute.Step
	baseline      float64 // Mbit/s, t in [1, 4)
	contended     float64 // Mbit/s, t in [5, 9)
	after         float64 // Mbit/s, the last 3 s
	fpsLow        float64 // t in [1, 4)
	fpsFull       float64 // t in [5, 9)
	fpsLimited    float64 // the last 3 s
	limitFPS      float64 // what cpu_max allows: frames per CPU-second × cpu_max
	toStable      time.Duration
	stable        bool
	streamBack    time.Duration
	back          bool
	pinnedCPU     int
	csvPath, plot string
	scene         fig3Scene
}

// fig3Scene is what a recording shows and how: the bench's own two
// chutes, or the demo gateway's SecCams and HD stream (figure3-demo).
type fig3Scene struct {
	window              time.Duration // of each point of the series
	full, request, end  float64       // the timeline (s from t=0) the means are taken over
	cpuMax              float64       // the operator's new limit
	grace               string
	rateMbps            float64 // the stream's own rate
	subtitle, procAxis  string  // the plot's second line, the lower panel's title
	fullLabel, fullNote string  // the marker of full speed; "t=1–4 s" in the legend
}

// fig3BenchScene is the bench's own timeline.
func fig3BenchScene(n int) fig3Scene {
	return fig3Scene{window: fig3Window, full: fig3FullAt.Seconds(), request: fig3Request.Seconds(), end: fig3End.Seconds(),
		cpuMax: fig3CPUMax, grace: fig3Grace, rateMbps: fig3RateBits / 1e6, procAxis: "image processor (frames/s)",
		subtitle: fmt.Sprintf("paradrop, run %d of %d (median time to a stable limit)", n, fig3Runs), fullLabel: "processor goes full speed", fullNote: "t=1–4 s"}
}

func runFigure3(ctx context.Context, o options) (string, error) {
	tmp, remove, err := chuteTempDir("paradrop-fig3-")
	if err != nil {
		return "", err
	}
	defer remove()
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	fmt.Println("building the chutes' static helper...")
	helper := filepath.Join(tmp, fig3Helper)
	if err := buildBinary(ctx, "./examples/hdstream", helper); err != nil {
		return "", err
	}
	pkgs, err := fig3Packages(helper)
	if err != nil {
		return "", err
	}
	fmt.Println("starting the gateway (OVS in its own namespace), the manager and the API...")
	bed, err := newFig3Bed(ctx, tmp, exe)
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := bed.close(); cerr != nil {
			fmt.Fprintln(os.Stderr, "figure3: cleanup:", cerr)
		}
	}()
	outDir := filepath.Join("bench", "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("output dir: %w", err)
	}
	var runs []*fig3Run
	for i := 1; i <= fig3Runs; i++ {
		fmt.Printf("run %d/%d (%s)...\n", i, fig3Runs, fig3End)
		r, err := bed.runFigure3Once(ctx, i, pkgs)
		if err != nil {
			return "", fmt.Errorf("run %d: %w", i, err)
		}
		r.csvPath = filepath.Join(outDir, fmt.Sprintf("figure3-run%d.csv", i))
		r.plot = filepath.Join(outDir, fmt.Sprintf("figure3-run%d.svg", i))
		if err := os.WriteFile(r.csvPath, []byte(r.csv()), 0o644); err != nil {
			return "", fmt.Errorf("write CSV: %w", err)
		}
		if err := os.WriteFile(r.plot, []byte(r.svg()), 0o644); err != nil {
			return "", fmt.Errorf("write plot: %w", err)
		}
		fmt.Printf("  %s\n", r.summary())
		runs = append(runs, r)
	}
	shown := fig3MedianRun(runs)
	for src, dst := range map[string]string{shown.csvPath: "bench/figure3.csv", shown.plot: "bench/figure3.svg"} {
		if err := fig3Copy(src, dst); err != nil {
			return "", err
		}
	}
	return fig3Markdown(runs, shown), nil
}

// fig3Packages builds both chutes' packages around the helper binary.
func fig3Packages(helper string) (map[string][]byte, error) {
	bin, err := os.ReadFile(helper)
	if err != nil {
		return nil, fmt.Errorf("helper: %w", err)
	}
	pkgs := map[string][]byte{}
	for name, man := range fig3Manifests {
		p, err := examples.Package(man, map[string]string{fig3Helper: string(bin)})
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", name, err)
		}
		if pkgs[name], err = makeExecutable(p, "rootfs/"+fig3Helper); err != nil {
			return nil, fmt.Errorf("package %s: %w", name, err)
		}
	}
	return pkgs, nil
}

// makeExecutable rewrites a package (tar.gz) with file mode 0755 for
// name: examples.Package makes only shell scripts executable.
func makeExecutable(pkg []byte, name string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(pkg))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Name == name {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// runFigure3Once installs both chutes through the API, plays the timeline
// and removes them.
func (b *fig3Bed) runFigure3Once(ctx context.Context, n int, pkgs map[string][]byte) (*fig3Run, error) {
	for _, name := range []string{"streamer", "processor"} {
		if err := b.api.change(ctx, "POST", "/chutes", bytes.NewReader(pkgs[name])); err != nil {
			return nil, fmt.Errorf("install %s: %w", name, err)
		}
	}
	defer func() {
		for _, name := range []string{"streamer", "processor"} {
			if err := b.api.change(context.Background(), "DELETE", "/chutes/"+name, nil); err != nil {
				fmt.Fprintln(os.Stderr, "figure3:", err)
			}
		}
	}()
	frames := b.dataPath("processor", "frames.log")
	if err := fig3WaitFor(ctx, 30*time.Second, "the stream and the processor's first report", func() bool {
		_, err := os.Stat(frames)
		return err == nil && b.recv.total() > 0
	}); err != nil {
		return nil, err
	}
	if err := fig3Sleep(ctx, time.Now().Add(fig3Settle)); err != nil {
		return nil, err
	}
	t0 := b.recv.nextWindow(time.Now())
	r := &fig3Run{n: n, t0: t0, pinnedCPU: fig3SharedCPU, scene: fig3BenchScene(n)}
	if err := fig3Sleep(ctx, t0.Add(fig3FullAt)); err != nil {
		return nil, err
	}
	r.fullAt = time.Since(t0).Seconds()
	if err := os.WriteFile(b.dataPath("processor", "full"), nil, 0o644); err != nil {
		return nil, fmt.Errorf("switch the processor to full speed: %w", err)
	}
	if err := fig3Sleep(ctx, t0.Add(fig3Request)); err != nil {
		return nil, err
	}
	body := fmt.Sprintf(`{"cpu_max": %g, "grace": %q}`, fig3CPUMax, fig3Grace)
	r.requestAt = time.Since(t0).Seconds()
	var queued struct {
		ChangeID uint64 `json:"change_id"`
	}
	if _, err := b.api.call(ctx, "PUT", "/chutes/processor/resources", strings.NewReader(body), &queued); err != nil {
		return nil, err
	}
	if err := fig3Sleep(ctx, t0.Add(fig3End)); err != nil {
		return nil, err
	}
	var c chute.Change
	if _, err := b.api.call(ctx, "GET", fmt.Sprintf("/changes/%d", queued.ChangeID), nil, &c); err != nil {
		return nil, err
	}
	if c.State != chute.ChangeDone {
		return nil, fmt.Errorf("resources change %d: %s: %s (steps %v)", c.ID, c.State, c.Error, c.Steps)
	}
	windows := int(fig3End / fig3Window)
	for _, by := range b.recv.windows(t0, windows) {
		r.stream = append(r.stream, float64(by)*8/fig3Window.Seconds()/1e6)
	}
	// The processor's first report after the end closes the last window.
	var reps []fig3Report
	var readErr error
	if err := fig3WaitFor(ctx, 5*time.Second, "the processor's report after the end", func() bool {
		reps, readErr = fig3ReadReports(frames)
		return readErr == nil && reps[len(reps)-1].ns >= t0.Add(fig3End).UnixNano()
	}); err != nil {
		return nil, errors.Join(err, readErr)
	}
	r.fps = fig3FrameRates(reps, t0, windows, fig3Window)
	if err := r.analyse(c, reps); err != nil {
		return nil, err
	}
	return r, nil
}

// fig3Report is one line of the processor's frames.log.
type fig3Report struct{ ns, frames, cpuNs int64 }

func fig3ReadReports(path string) ([]fig3Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("processor reports: %w", err)
	}
	defer f.Close()
	var reps []fig3Report
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r fig3Report
		if _, err := fmt.Sscan(sc.Text(), &r.ns, &r.frames, &r.cpuNs); err != nil {
			return nil, fmt.Errorf("processor reports: line %q: %w", sc.Text(), err)
		}
		reps = append(reps, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("processor reports: %w", err)
	}
	if len(reps) < 2 {
		return nil, errors.New("processor reports: fewer than two")
	}
	return reps, nil
}

// fig3At interpolates a report field linearly at t.
func fig3At(reps []fig3Report, t time.Time, field func(fig3Report) int64) float64 {
	ns := t.UnixNano()
	i, _ := slices.BinarySearchFunc(reps, ns, func(r fig3Report, ns int64) int { return cmp.Compare(r.ns, ns) })
	switch {
	case i == 0:
		return float64(field(reps[0]))
	case i == len(reps):
		return float64(field(reps[len(reps)-1]))
	}
	a, b := reps[i-1], reps[i]
	f := float64(ns-a.ns) / float64(b.ns-a.ns)
	return float64(field(a)) + f*float64(field(b)-field(a))
}

func fig3Frames(r fig3Report) int64 { return r.frames }
func fig3CPU(r fig3Report) int64    { return r.cpuNs }

// fig3FrameRates is the processor's frame rate in each window from t0.
func fig3FrameRates(reps []fig3Report, t0 time.Time, windows int, window time.Duration) []float64 {
	out := make([]float64, windows)
	for k := range out {
		from := t0.Add(time.Duration(k) * window)
		out[k] = (fig3At(reps, from.Add(window), fig3Frames) - fig3At(reps, from, fig3Frames)) / window.Seconds()
	}
	return out
}

// afterGrace finds the force step's "(D after the grace)".
var afterGrace = regexp.MustCompile(`\((-?[0-9.]+[a-zµ]+) after the grace\)`)

// analyse finds the phases in the change's steps and measures the run.
func (r *fig3Run) analyse(c chute.Change, reps []fig3Report) error {
	r.steps = c.Steps
	found := false
	for _, s := range c.Steps {
		if m := afterGrace.FindStringSubmatch(s.Message); m != nil && strings.HasPrefix(s.Message, "force:") {
			d, err := time.ParseDuration(m[1])
			if err != nil {
				return fmt.Errorf("force step %q: %w", s.Message, err)
			}
			r.forceDelay, r.forceAt, r.graceEnd = d, r.rel(s.Time), r.rel(s.Time.Add(-d))
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no force step in change %d (did the processor comply?): %v", c.ID, c.Steps)
	}
	full, req, end := r.scene.full, r.scene.request, r.scene.end
	r.baseline, r.fpsLow = r.mean(r.stream, 1, full), r.mean(r.fps, 1, full)
	r.contended, r.fpsFull = r.mean(r.stream, full+1, req), r.mean(r.fps, full+1, req)
	r.after, r.fpsLimited = r.mean(r.stream, end-3, end), r.mean(r.fps, end-3, end)

	// What cpu_max allows: the processor's own frames per CPU-second at
	// full speed, times the limit.
	from, to := r.t0.Add(fig3Secs(full+1)), r.t0.Add(fig3Secs(req))
	frames := fig3At(reps, to, fig3Frames) - fig3At(reps, from, fig3Frames)
	cpuSecs := (fig3At(reps, to, fig3CPU) - fig3At(reps, from, fig3CPU)) / 1e9
	if cpuSecs <= 0 {
		return errors.New("the processor used no CPU at full speed")
	}
	r.limitFPS = frames / cpuSecs * r.scene.cpuMax

	limited := func(k int) bool { return r.fps[k] <= r.limitFPS*fig3FPSMargin }
	if k, ok := r.firstRun(r.fps, r.requestAt, limited); ok {
		r.toStable, r.stable = fig3Secs(r.windowEnd(k)-r.requestAt), true
	}
	normal := func(k int) bool { return math.Abs(r.stream[k]-r.baseline) <= fig3StreamSlack*r.baseline }
	if k, ok := r.firstRun(r.stream, r.forceAt, normal); ok {
		r.streamBack, r.back = fig3Secs(max(0, r.windowEnd(k)-r.forceAt)), true
	}
	return nil
}

// rel is t in seconds since the run's t=0.
func (r *fig3Run) rel(t time.Time) float64 { return t.Sub(r.t0).Seconds() }

// firstRun is the first window, from the one holding time from (s),
// that starts fig3StableRun consecutive windows meeting ok.
func (r *fig3Run) firstRun(series []float64, from float64, ok func(int) bool) (int, bool) {
	run := 0
	for k := int(from / r.scene.window.Seconds()); k < len(series); k++ {
		if !ok(k) {
			run = 0
			continue
		}
		run++
		if run == fig3StableRun {
			return k - fig3StableRun + 1, true
		}
	}
	return 0, false
}

func (r *fig3Run) windowEnd(k int) float64 { return float64(k+1) * r.scene.window.Seconds() }

func fig3Secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// mean is the mean of the windows starting in [from, to) seconds.
func (r *fig3Run) mean(series []float64, from, to float64) float64 {
	var sum float64
	n := 0
	for k, v := range series {
		if t := float64(k) * r.scene.window.Seconds(); t >= from-1e-9 && t < to-1e-9 {
			sum += v
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// fig3Sleep sleeps until t or until ctx ends.
func fig3Sleep(ctx context.Context, t time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(t)):
		return nil
	}
}

// fig3WaitFor polls cond every 50ms until it holds, d passes or ctx ends.
func fig3WaitFor(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", d, what)
		}
		if err := fig3Sleep(ctx, time.Now().Add(50*time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}

func fig3Copy(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return nil
}
