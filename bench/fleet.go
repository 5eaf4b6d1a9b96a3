package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"golang.org/x/sys/unix"

	"paradrop/fleet"
	"paradrop/internal/uspsim"
)

// The fleet suite: N simulated USP agents (internal/uspsim: the
// controller's side of TR-369 is real, the agents' chute runtime is not)
// on one Mosquitto, and `paradrop fleet serve` as its own process rolling
// a package out to all of them at an unlimited rate.
func runFleet(ctx context.Context, o options) (string, error) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			return "", errors.New("mosquitto not installed (make deps)")
		}
	}
	// Each agent holds a connection, and so does the broker.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	dir, err := os.MkdirTemp("", "paradrop-bench-fleet-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "paradrop")
	if err := buildBinary(ctx, ".", bin); err != nil {
		return "", err
	}
	broker, stopBroker, err := startMosquitto(dir)
	if err != nil {
		return "", err
	}
	defer stopBroker()

	t := newTable("gateways", "total", "per gateway", "controller CPU", "controller RSS peak", "USP records per gateway", "state records per gateway")
	type round struct {
		n int
		fleetResult
	}
	var rounds []round
	for _, n := range o.gateways {
		r, err := fleetRound(ctx, bin, dir, broker, n)
		if err != nil {
			return "", fmt.Errorf("%d gateways: %w", n, err)
		}
		rounds = append(rounds, round{n, r})
		t.add(strconv.Itoa(n), r.total.Round(10*time.Millisecond).String(), ms(r.total/time.Duration(n)),
			r.cpu.Round(10*time.Millisecond).String(), fmt.Sprintf("%.1f MiB", float64(r.rss)/(1<<20)),
			fmt.Sprintf("%.1f", r.usp), fmt.Sprintf("%.1f", r.state))
	}
	t.print(os.Stdout)
	at := newTable("gateways", "abort stored after the crossing failure", "installs started after the abort",
		"last install received after the crossing failure", "installs received after it", "rolled back", "rollback took")
	for _, r := range rounds {
		at.add(strconv.Itoa(r.n), ms(r.abort.decided), strconv.Itoa(r.abort.lateStarts), ms(max(r.abort.lastAsked, 0)),
			strconv.Itoa(r.abort.askedAfter), strconv.Itoa(r.abort.rolledBack), r.abort.rollback.Round(10*time.Millisecond).String())
	}
	at.print(os.Stdout)
	without, with, err := agentCost(ctx, bin, dir, broker)
	if err != nil {
		return "", fmt.Errorf("agent's RSS: %w", err)
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	fmt.Printf("daemon RSS without the agent %s, with it %s\n", mib(without), mib(with))
	goal := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	last := rounds[len(rounds)-1]
	var worstStop time.Duration
	var peak int64
	for _, r := range rounds {
		worstStop, peak = max(worstStop, r.abort.lastAsked), max(peak, r.rss)
	}
	goals := fmt.Sprintf("Goals of the issue, this run:\n\n"+
		"- %d gateways in ≤ 30 s: **%s** (%s).\n"+
		"- controller RSS ≤ 100 MiB: **%s** (peak %s).\n"+
		"- the agent adds ≤ 3 MiB to the daemon's RSS: **%s** (%s: %s without --usp-broker, %s with it, the median of %d daemons each, "+
		"alternately, no chute, measured 3 s after start, the agent's after it connected and answered a Get of Device.).\n"+
		"- an abort threshold crossed stops new installs within 1 s: **%s** (the last install an agent received came %s after the "+
		"end of the failure that crossed the threshold, at worst; 0 when none came after it).\n",
		last.n, goal(last.n >= 1000 && last.total <= 30*time.Second), last.total.Round(10*time.Millisecond),
		goal(peak <= 100<<20), mib(peak),
		goal(with-without <= 3<<20), mib(with-without), mib(without), mib(with), agentRounds,
		goal(worstStop <= time.Second), ms(max(worstStop, 0)))
	fmt.Print(goals)
	return "A rollout of a small package (chute.yaml only) to N simulated agents on one Mosquitto, " +
		"unlimited rate, at most N in flight, canary 1; `paradrop fleet serve` is its own process. " +
		"Total: from the rollout stored to its completion. CPU: the controller's user and system time " +
		"during the rollout. RSS peak: the controller's over its whole life (discovery and the abort " +
		"round below included). USP records: sent and received by the agents, the Connect " +
		"Record included. State records: retained messages the controller stored per gateway.\n\n" + t.markdown() +
		"\nThen a version that one gateway in 20 fails, 50 in flight, no canary, abort at 3% failed after 20: " +
		"the time from the end of the failure that crossed the threshold to the abort stored (both as the " +
		"controller stamped them), installs started after it, the last install an agent received after the crossing failure " +
		"(the agents' clock is the controller's: one machine) and how many came after it, and the rollback of every gateway touched.\n\n" +
		at.markdown() + "\n" + goals, nil
}

type fleetResult struct {
	total      time.Duration
	cpu        time.Duration
	rss        int64
	usp, state float64
	abort      abortResult
}

func fleetRound(ctx context.Context, bin, dir, broker string, n int) (fleetResult, error) {
	var res fleetResult
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const ctrl = "self::bench-fleet"
	prefix := fmt.Sprintf("bench/fleet-%d", n)
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("controller-%d.log", n)))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "fleet", "serve", "--broker", broker, "--prefix", prefix, "--endpoint-id", ctrl,
		"--listen", "127.0.0.1:0", "--probe-every", "1h")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	st, err := fleet.OpenRetained(ctx, fleet.RetainedConfig{Broker: broker, Prefix: prefix, ClientID: "bench-fleet-client"})
	if err != nil {
		return res, err
	}
	defer st.Close()
	if err := waitFor(ctx, st, 30*time.Second, func() bool { return len(st.Online()) == 1 }); err != nil {
		return res, fmt.Errorf("controller online: %w", err)
	}
	// A controller starts rollouts 2 s after it connected (fleet's
	// settle): not part of a rollout's time.
	settled := time.Now().Add(2500 * time.Millisecond)
	agents := make([]*uspsim.Agent, n)
	done := make(chan struct{}, n)
	actx, stopAgents := context.WithCancel(context.Background())
	defer func() {
		stopAgents()
		for range agents {
			<-done
		}
	}()
	var targets []string
	for i := range agents {
		id := fmt.Sprintf("os::bench-%05d", i)
		a := &uspsim.Agent{ID: id, Topic: "usp/agents/" + id, Controllers: map[string]string{ctrl: "usp/controllers/" + ctrl}, Version: "sim"}
		if i%20 == 19 {
			a.FailVersion = "3.0.0" // for the abort round
		}
		a.Put("benchapp", "1.0.0")
		agents[i] = a
		targets = append(targets, id)
		go func() { a.Run(actx, broker); done <- struct{}{} }()
	}
	if err := waitFor(ctx, st, 120*time.Second, func() bool { return len(st.Gateways()) == n }); err != nil {
		return res, fmt.Errorf("%d of %d gateways found: %w", len(st.Gateways()), n, err)
	}
	p, err := st.AddPackage(ctx, "benchapp", "2.0.0", uspsim.Package("benchapp", "2.0.0"), []byte("untrusted comment: bench\n"))
	if err != nil {
		return res, err
	}
	time.Sleep(time.Until(settled))
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	id := fmt.Sprintf("bench-%d", n)
	var stateRecords atomic.Uint64
	counter := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("bench-fleet-counter"))
	if tok := counter.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return res, fmt.Errorf("counter: %v", tok.Error())
	}
	defer counter.Disconnect(0)
	results := prefix + "/rollouts/" + id + "/results/#"
	if tok := counter.Subscribe(results, 0, func(mqtt.Client, mqtt.Message) { stateRecords.Add(1) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return res, fmt.Errorf("counter: %v", tok.Error())
	}
	start := time.Now()
	if err := st.StartRollout(ctx, fleet.Spec{ID: id, Package: p, Targets: targets, MaxInFlight: n, Timeout: time.Minute}); err != nil {
		return res, err
	}
	if err := waitFor(ctx, st, 10*time.Minute, func() bool { s, _, _ := st.Rollout(id); return s.State.Done() }); err != nil {
		return res, err
	}
	res.total = time.Since(start)
	if s, _, _ := st.Rollout(id); s.State != fleet.Completed || s.Counts[fleet.Succeeded] != n {
		return res, fmt.Errorf("rollout %s %v: %s", s.State, s.Counts, s.Reason)
	}
	cpu1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	res.cpu = cpu1 - cpu0
	if res.rss, err = statusBytes(cmd.Process.Pid, "VmHWM"); err != nil {
		return res, err
	}
	var msgs uint64
	for _, a := range agents {
		msgs += a.Messages()
	}
	res.usp = float64(msgs) / float64(n)
	res.state = float64(stateRecords.Load()) / float64(n)
	res.abort, err = abortRound(ctx, st, broker, prefix, targets, agents)
	return res, err
}

// abortResult is how fast an abort threshold crossed stops a rollout.
type abortResult struct {
	decided    time.Duration // from the crossing failure's end to the abort stored
	lateStarts int           // installs started after the abort
	// lastAsked is from the crossing failure's end to the last install
	// an agent received (<= 0: none after it); askedAfter counts those
	// after it.
	lastAsked  time.Duration
	askedAfter int
	rolledBack int
	rollback   time.Duration // from the abort to the rollout's end
}

// abortRound rolls a version out that one gateway in 20 fails, 50 at a
// time, aborting at 3% failed after 20: how soon does it stop?
func abortRound(ctx context.Context, st *fleet.Retained, broker, prefix string, targets []string, agents []*uspsim.Agent) (abortResult, error) {
	var res abortResult
	n := len(agents)
	p, err := st.AddPackage(ctx, "benchapp", "3.0.0", uspsim.Package("benchapp", "3.0.0"), []byte("untrusted comment: bench\n"))
	if err != nil {
		return res, err
	}
	id := fmt.Sprintf("bench-abort-%d", n)
	// Each gateway's first "installing" record and every failure, as
	// the controller stored them.
	var mu sync.Mutex
	started := map[string]time.Time{}
	var failures []time.Time
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("bench-fleet-abort"))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return res, fmt.Errorf("watcher: %v", tok.Error())
	}
	defer cl.Disconnect(0)
	tok := cl.Subscribe(prefix+"/rollouts/"+id+"/results/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		var r fleet.Result
		if json.Unmarshal(m.Payload(), &r) != nil {
			return
		}
		gw := m.Topic()[strings.LastIndexByte(m.Topic(), '/')+1:]
		mu.Lock()
		defer mu.Unlock()
		switch r.State {
		case fleet.Installing:
			if _, ok := started[gw]; !ok {
				started[gw] = r.At
			}
		case fleet.Failed:
			failures = append(failures, r.At)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return res, fmt.Errorf("watcher: %v", tok.Error())
	}
	spec := fleet.Spec{ID: id, Package: p, Targets: targets, Canary: -1, MaxInFlight: 50, Timeout: time.Minute, AbortMin: 20, AbortPercent: 3}
	roundStart := time.Now()
	if err := st.StartRollout(ctx, spec); err != nil {
		return res, err
	}
	var abortedAt time.Time
	if err := waitFor(ctx, st, 5*time.Minute, func() bool {
		s, _, _ := st.Rollout(id)
		if abortedAt.IsZero() && (s.State == fleet.Aborting || s.State == fleet.Aborted) {
			abortedAt = s.Update
		}
		return s.State.Done()
	}); err != nil {
		return res, err
	}
	s, _, _ := st.Rollout(id)
	if s.State != fleet.Aborted {
		return res, fmt.Errorf("abort round: %s %v", s.State, s.Counts)
	}
	res.rollback = s.Update.Sub(abortedAt)
	res.rolledBack = s.Counts[fleet.RolledBack]
	mu.Lock()
	defer mu.Unlock()
	var crossing time.Time
	for _, f := range failures {
		if !f.After(abortedAt) && f.After(crossing) {
			crossing = f
		}
	}
	res.decided = abortedAt.Sub(crossing)
	for _, t := range started {
		if t.After(abortedAt) {
			res.lateStarts++
		}
	}
	// The installs as the agents received them (the rollback's updates,
	// forced, are not counted).
	var last time.Time
	for _, a := range agents {
		for _, t := range a.Asked() {
			if t.After(roundStart) && t.After(last) {
				last = t
			}
			if t.After(crossing) {
				res.askedAfter++
			}
		}
	}
	res.lastAsked = last.Sub(crossing)
	return res, nil
}

// waitFor waits for cond, checked at each change of the state.
func waitFor(ctx context.Context, st *fleet.Retained, d time.Duration, cond func() bool) error {
	deadline := time.After(d)
	for !cond() {
		select {
		case <-st.Changed():
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			return fmt.Errorf("not within %v", d)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// procCPU is a process's user and system time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command's closing parenthesis: utime and stime
	// are the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+s) * time.Second / 100, nil // USER_HZ
}

// startMosquitto runs Debian's mosquitto on a free loopback port.
func startMosquitto(dir string) (url string, stop func(), err error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\n"), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "tcp://" + addr, stop, nil
		}
	}
	stop()
	return "", nil, fmt.Errorf("mosquitto did not listen on %s", addr)
}
