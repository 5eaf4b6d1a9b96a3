package main

// The figure3 suite's outputs: a run's CSV and SVG plot, and the README
// section over all runs.

import (
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// phase names the policy phase a window starts in, for the CSV.
func (r *fig3Run) phase(t float64) string {
	switch {
	case t < r.fullAt:
		return "low_duty"
	case t < r.requestAt:
		return "full_speed"
	case t < r.graceEnd:
		return "asked_grace"
	case t < r.forceAt:
		return "forcing"
	}
	return "forced"
}

// events are the timeline's markers, in order.
func (r *fig3Run) events() []struct {
	name string
	t    float64
} {
	return []struct {
		name string
		t    float64
	}{{"processor_full_speed", r.fullAt}, {"request", r.requestAt}, {"grace_end", r.graceEnd}, {"force_applied", r.forceAt}}
}

func (r *fig3Run) csv() string {
	var b strings.Builder
	b.WriteString("t_s,streamer_mbps,processor_fps,phase,events\n")
	w := r.scene.window.Seconds()
	for k := range r.stream {
		t := float64(k) * w
		var evs []string
		for _, e := range r.events() {
			if e.t >= t && e.t < t+w {
				evs = append(evs, fmt.Sprintf("%s@%.3f", e.name, e.t))
			}
		}
		fmt.Fprintf(&b, "%.1f,%.3f,%.1f,%s,%s\n", t, r.stream[k], r.fps[k], r.phase(t), strings.Join(evs, ";"))
	}
	return b.String()
}

func (r *fig3Run) summary() string {
	return fmt.Sprintf("stream %.1f → %.1f → %.1f Mbit/s; processor %.0f → %.0f → %.0f fps (limit ≈ %.0f); request→stable %s; force %s after grace; stream back %s after force",
		r.baseline, r.contended, r.after, r.fpsLow, r.fpsFull, r.fpsLimited, r.limitFPS,
		fig3Dur(r.toStable, r.stable), fig3Ms(r.forceDelay), fig3Dur(r.streamBack, r.back))
}

// fig3Dur formats a measured time, or says it never happened.
func fig3Dur(d time.Duration, ok bool) string {
	if !ok {
		return "never"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fig3Ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// Plot geometry: two stacked panels over one time axis.
const (
	svgW, svgH       = 960, 640
	plotL, plotR     = 80, 930
	topY0, topY1     = 90, 300 // stream panel, top and bottom
	botY0, botY1     = 340, 550
	colStream        = "#1f5fa8"
	colFPS           = "#c8501e"
	colMark          = "#555"
	colForce         = "#b00020"
	colRequest       = "#6a3d9a"
	fontFamily       = "DejaVu Sans, Helvetica, Arial, sans-serif"
	markerLabelSize  = 12
	axisLabelSize    = 13
	tickLabelSize    = 11
	svgTitleFontSize = 16
)

// svg draws the run: the stream at the LAN client on top, the processor's
// frame rate below, the timeline's markers across both.
func (r *fig3Run) svg() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	end := r.scene.end
	tickEvery := 1 // s, between the time axis' ticks
	if end > 20 {
		tickEvery = 5
	}
	x := func(t float64) float64 { return plotL + (plotR-plotL)*t/end }
	streamMax, streamStep := axisMax(max(slices.Max(r.stream), r.scene.rateMbps) * 1.05)
	fpsMax, fpsStep := axisMax(slices.Max(r.fps) * 1.05)
	yS := func(v float64) float64 { return topY1 - (topY1-topY0)*v/streamMax }
	yF := func(v float64) float64 { return botY1 - (botY1-botY0)*v/fpsMax }

	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s">`, svgW, svgH, svgW, svgH, fontFamily)
	p(`<rect width="100%%" height="100%%" fill="white"/>`)
	p(`<text x="%d" y="24" font-size="%d" font-weight="bold">Figure 3: a stream and a CPU-hungry chute on one CPU; the operator limits the CPU hog</text>`, plotL, svgTitleFontSize)
	p(`<text x="%d" y="42" font-size="%d" fill="#333">%s; two-phase policy change: ask (policy.json), grace %s, force (cgroup)</text>`, plotL, tickLabelSize+1, html.EscapeString(r.scene.subtitle), r.scene.grace)

	// The grace period, shaded across both panels.
	for _, y := range [][2]float64{{topY0, topY1}, {botY0, botY1}} {
		p(`<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s" fill-opacity="0.10"/>`, x(r.requestAt), y[0], x(r.graceEnd)-x(r.requestAt), y[1]-y[0], colRequest)
	}
	p(`<text x="%.1f" y="%d" font-size="%d" fill="%s" text-anchor="middle">grace</text>`, (x(r.requestAt)+x(r.graceEnd))/2, topY0+14, tickLabelSize, colRequest)

	// Reference lines: the stream's normal rate ±10% and the frame rate
	// the new limit allows (+15%, the "stable" threshold).
	p(`<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s" fill-opacity="0.10"/>`, plotL, yS(r.baseline*(1+fig3StreamSlack)), plotR-plotL,
		yS(r.baseline*(1-fig3StreamSlack))-yS(r.baseline*(1+fig3StreamSlack)), colStream)
	p(`<text x="%d" y="%.1f" font-size="%d" fill="%s">normal rate (%s) ±10%%</text>`, plotL+6, yS(r.baseline*(1-fig3StreamSlack))+14, tickLabelSize, colStream, r.scene.fullNote)
	thr := r.limitFPS * fig3FPSMargin
	p(`<line x1="%.1f" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>`, x(r.requestAt), yF(thr), plotR, yF(thr), colForce)
	// Left of the line's start, where the processor runs far above it.
	p(`<text x="%.1f" y="%.1f" font-size="%d" fill="%s" text-anchor="end">cpu_max %g allows ≈ %.0f fps; +15%%: stable →</text>`, x(r.requestAt)-6, yF(thr)+4, tickLabelSize, colForce, r.scene.cpuMax, r.limitFPS)

	panel := func(y0, y1 int, vmax, step float64, y func(float64) float64, title string) {
		for v := 0.0; v <= vmax+step/2; v += step {
			p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e4e4e4"/>`, plotL, y(v), plotR, y(v))
			p(`<text x="%d" y="%.1f" font-size="%d" text-anchor="end">%s</text>`, plotL-6, y(v)+4, tickLabelSize, trimFloat(v))
		}
		for t := 0; t <= int(end); t += tickEvery {
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999"/>`, x(float64(t)), y1, x(float64(t)), y1+4)
		}
		p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`, plotL, y0, plotR-plotL, y1-y0)
		p(`<text transform="translate(%d %d) rotate(-90)" font-size="%d" text-anchor="middle">%s</text>`, 22, (y0+y1)/2, axisLabelSize, html.EscapeString(title))
	}
	panel(topY0, topY1, streamMax, streamStep, yS, "stream at the LAN client (Mbit/s)")
	panel(botY0, botY1, fpsMax, fpsStep, yF, r.scene.procAxis)
	for t := 0; t <= int(end); t += tickEvery {
		p(`<text x="%.1f" y="%d" font-size="%d" text-anchor="middle">%d</text>`, x(float64(t)), botY1+18, tickLabelSize, t)
	}
	p(`<text x="%d" y="%d" font-size="%d" text-anchor="middle">time (s), %s windows</text>`, (plotL+plotR)/2, botY1+38, axisLabelSize, r.scene.window)

	line := func(series []float64, y func(float64) float64, color string) {
		pts := make([]string, len(series))
		for k, v := range series {
			pts[k] = fmt.Sprintf("%.1f,%.1f", x((float64(k)+0.5)*r.scene.window.Seconds()), y(v))
		}
		p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8" stroke-linejoin="round"/>`, strings.Join(pts, " "), color)
	}
	line(r.stream, yS, colStream)
	line(r.fps, yF, colFPS)

	// Markers across both panels, labelled above the top one on two rows.
	marker := func(t float64, color, dash, label, anchor string, row int) {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.4" stroke-dasharray="%s"/>`, x(t), topY0-4-14*row, x(t), botY1, color, dash)
		// A label that would run off the right edge goes left of its
		// line, a row higher (about 6.5 px a character).
		if anchor == "start" && x(t)+6.5*float64(len([]rune(label))) > svgW {
			anchor, row = "end", row+1
		}
		dx := 4.0
		if anchor == "end" {
			dx = -4
		}
		p(`<text x="%.1f" y="%d" font-size="%d" fill="%s" text-anchor="%s">%s</text>`, x(t)+dx, topY0-8-14*row, markerLabelSize, color, anchor, html.EscapeString(label))
	}
	marker(r.fullAt, colMark, "4 3", fmt.Sprintf("t=%.1f s: %s", r.fullAt, r.scene.fullLabel), "start", 1)
	marker(r.requestAt, colRequest, "4 3", fmt.Sprintf("t=%.1f s: operator PUT cpu_max %g (ask)", r.requestAt, r.scene.cpuMax), "end", 0)
	marker(r.graceEnd, colRequest, "1 3", "", "start", 0)
	marker(r.forceAt, colForce, "", fmt.Sprintf("t=%.2f s: grace ends, force applied %s later", r.forceAt, fig3Ms(r.forceDelay)), "start", 1)

	p(`<text x="%d" y="%d" font-size="%d" fill="#333">request → stable limited processor: %s · force after grace end: %s · stream back to normal after force: %s</text>`,
		plotL, svgH-24, tickLabelSize+1, fig3Dur(r.toStable, r.stable), fig3Ms(r.forceDelay), fig3Dur(r.streamBack, r.back))
	p(`</svg>`)
	return b.String()
}

// axisMax returns a round top for an axis showing values up to v, and
// the step of its gridlines (1, 2, 2.5 or 5 times a power of ten, about
// six of them).
func axisMax(v float64) (top, step float64) {
	if v <= 0 {
		return 1, 0.2
	}
	raw := v / 6
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * pow
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*pow >= raw {
			step = m * pow
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

func trimFloat(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
}

// fig3MedianRun is the run with the median time to a stable limit (a run
// that never got there counts as the longest).
func fig3MedianRun(runs []*fig3Run) *fig3Run {
	key := func(r *fig3Run) time.Duration {
		if !r.stable {
			return math.MaxInt64
		}
		return r.toStable
	}
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b *fig3Run) int { return int(max(-1, min(1, key(a)-key(b)))) })
	return sorted[len(sorted)/2]
}

// fig3MedianOf is the median of f over the runs where it measured
// something (any), and whether every run did (all).
func fig3MedianOf(runs []*fig3Run, f func(*fig3Run) (time.Duration, bool)) (med time.Duration, any, all bool) {
	var s sample
	for _, r := range runs {
		if d, ok := f(r); ok {
			s = append(s, d)
		}
	}
	return s.median(), len(s) > 0, len(s) == len(runs)
}

func fig3MedianFloat(runs []*fig3Run, f func(*fig3Run) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// fig3Markdown is the README section: the figure, the medians against
// the goals, every run, and how it is measured.
func fig3Markdown(runs []*fig3Run, shown *fig3Run) string {
	stable, anyStable, allStable := fig3MedianOf(runs, func(r *fig3Run) (time.Duration, bool) { return r.toStable, r.stable })
	force, _, _ := fig3MedianOf(runs, func(r *fig3Run) (time.Duration, bool) { return r.forceDelay, true })
	back, anyBack, allBack := fig3MedianOf(runs, func(r *fig3Run) (time.Duration, bool) { return r.streamBack, r.back })
	maxForce, maxBack := time.Duration(0), time.Duration(0)
	for _, r := range runs {
		maxForce = max(maxForce, r.forceDelay)
		maxBack = max(maxBack, r.streamBack)
	}
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	medianOf := func(f func(*fig3Run) float64) float64 { return fig3MedianFloat(runs, f) }
	var b strings.Builder
	fmt.Fprintf(&b, "![Figure 3: stream and processor over time](figure3.svg)\n\n")
	fmt.Fprintf(&b, "The plot is run %d of %d (the median by time to a stable limit); its data is [figure3.csv](figure3.csv), every run's CSV and SVG are in bench/out/. Both chutes were pinned to CPU %d.\n\n",
		shown.n, len(runs), shown.pinnedCPU)
	fmt.Fprintf(&b, "Medians of %d runs: the stream reaches the LAN client at %.1f Mbit/s while the processor idles along, at %.1f Mbit/s once it runs flat out (%.0f%% of normal), and at %.1f Mbit/s after the limit. ",
		len(runs), medianOf(func(r *fig3Run) float64 { return r.baseline }), medianOf(func(r *fig3Run) float64 { return r.contended }),
		100*medianOf(func(r *fig3Run) float64 { return r.contended / r.baseline }), medianOf(func(r *fig3Run) float64 { return r.after }))
	fmt.Fprintf(&b, "From the operator's request to a stable, limited processor: **%s** (%s of it the grace period)", fig3Dur(stable, anyStable), fig3Grace)
	if !allStable {
		b.WriteString(", but not every run got there")
	}
	fmt.Fprintf(&b, ". Force applied after the grace period's end: **%s** (goal ≤ %s: %s; worst run %s). ",
		fig3Ms(force), fig3Ms(fig3ForceGoal), met(force <= fig3ForceGoal), fig3Ms(maxForce))
	worstBack := fig3Dur(maxBack, allBack)
	fmt.Fprintf(&b, "Stream back to normal after the force: **%s** (goal ≤ %s: %s; worst run %s).\n\n",
		fig3Dur(back, anyBack), fig3Dur(fig3StreamGoal, true), met(allBack && back <= fig3StreamGoal), worstBack)

	t := newTable("run", "stream before t=4", "stream t=5–9 s", "stream last 3 s", "processor fps: low / full / limited", "fps cpu_max allows", "request → stable", "force after grace", "stream back after force")
	for _, r := range runs {
		t.add(fmt.Sprint(r.n), fmt.Sprintf("%.1f Mbit/s", r.baseline), fmt.Sprintf("%.1f Mbit/s", r.contended), fmt.Sprintf("%.1f Mbit/s", r.after),
			fmt.Sprintf("%.0f / %.0f / %.0f", r.fpsLow, r.fpsFull, r.fpsLimited), fmt.Sprintf("%.0f", r.limitFPS),
			fig3Dur(r.toStable, r.stable), fig3Ms(r.forceDelay), fig3Dur(r.streamBack, r.back))
	}
	t.add("**median**", "", "", "", "", "", fig3Dur(stable, anyStable), fig3Ms(force), fig3Dur(back, anyBack))
	t.print(os.Stdout)
	b.WriteString(t.markdown())
	b.WriteString("\nSteps of the change in the plotted run (times from the request):\n\n")
	for _, s := range shown.steps {
		fmt.Fprintf(&b, "- +%s %s\n", fig3Ms(fig3Secs(shown.rel(s.Time))-fig3Secs(shown.requestAt)), s.Message)
	}
	b.WriteString("\n" + fig3Notes)
	return b.String()
}

const fig3Notes = `How it is measured:

- The gateway is the real chute manager (chute.NewManager) with the real
  chute network (sdn.Open: Open vSwitch, our OpenFlow controller) in a
  network namespace of the bench's own, and the real API handler served on
  loopback; the LAN client is another namespace behind the gateway's LAN
  port. Addresses are TEST-NET (198.51.100.0/24) inside those namespaces
  only; everything is removed at the end.
- Both chutes run one static Go helper (examples/hdstream, the demo's HD
  stream chute, in its bench modes, built at
  run time). The streamer sends a live UDP stream of 20 Mbit/s to the LAN
  client, paced by itself in 5 ms ticks, each tick's data "encoded" (fixed
  CPU work per byte, about 0.25 core at full rate) before it is sent. Like
  a live stream it has a playout budget: data up to 50 ms late is sent at
  once, catching up; later data is stale and skipped, so a streamer starved
  of CPU sends less. The LAN client counts bytes per 100 ms window by the
  kernel's receive time.
- The processor runs 4 worker threads (GOMAXPROCS=4), each blurring
  320×240 frames; until t=4 s each sleeps 96% of the time, then the bench
  drops /data/full and they run flat out. It appends its frame count and
  CPU time to /data/frames.log every 100 ms; the bench reads it from the
  host and interpolates the count at the window edges.
- Both manifests hold their chute to the last CPU (resources.cpus, which
  the cgroup cpuset controller enforces), so that they contend on a
  2-core machine. The CPU controller shares a CPU between cgroups, not
  threads, so the processor's manifest gives it cpu_weight 800 against the
  streamer's default 100: it is the gateway's priority application, and
  at full speed it leaves the streamer too little CPU for its stream. The
  chutes' parent cgroup gets cpu weight 10000, so that the machine's other
  work takes little of the pinned CPU while both chutes want it.
- At t=9 s the bench PUTs {"cpu_max": 0.2, "grace": "1s"} to
  /api/v1/chutes/processor/resources. The processor ignores the published
  policy.json (it declares no hook), so the manager forces the limit
  through the cgroup when the grace period ends. Grace end and force come
  from the change's steps ("force: ... (D after the grace)").
- Stable, limited processor: the first of 3 consecutive 100 ms windows
  whose frame rate is at most 115% of what cpu_max allows (the processor's
  own frames per CPU-second between t=5 and 9 s, times 0.2), measured from
  the request to that window's end. Stream back to normal: the first of 3
  consecutive windows within 10% of the stream's rate between t=1 and 4 s,
  measured from the force to that window's end.
- t=0 is a window edge 1.5 s after both chutes were seen running (the
  stream arriving, the first frame report).
`
