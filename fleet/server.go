package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"paradrop/usp/mqttmtp"
)

// ServerConfig configures a controller process.
type ServerConfig struct {
	Broker     string // tcp://HOST:PORT or ssl://HOST:PORT
	EndpointID string
	Topic      string // default usp/controllers/ENDPOINT-ID
	Prefix     string // of the state's topics, default DefaultPrefix
	// TLS verifies an ssl:// broker (nil: the system's roots), as the
	// agents do; Username and Password, if set, are sent in CONNECT.
	TLS                *tls.Config
	Username, Password string
	// Agents are gateways known beforehand (endpoint ID -> topic); others
	// are found when they connect.
	Agents map[string]string
	// Listen is where gateways download packages; PublicURL is how they
	// reach it (default http://LISTEN).
	Listen, PublicURL string
	// ProbeEvery is how often every known gateway is asked its state
	// (default 1 min; 0 after the first: never).
	ProbeEvery time.Duration
	Logf       func(string, ...any)

	// Follow, if set, moves chutes after the devices they follow
	// (follow.go).
	Follow *FollowConfig
}

// Server is a controller process: it keeps the gateways' state, serves
// the packages, and runs the rollouts it owns, taking over those whose
// controller went offline.
type Server struct {
	cfg  ServerConfig
	st   *Retained
	ctl  *Controller
	mtp  *mqttmtp.Client
	inst *USPInstaller
	http net.Listener

	mu      sync.Mutex
	runs    map[string]*Run
	applied map[string]string // the control last applied to each run
	cache   map[string][2][]byte
	fetch   sync.Mutex // one package read from the broker at a time
	probing map[string]bool
}

// Messages counts the USP records the controller sent and received.
func (s *Server) Messages() uint64 { return s.ctl.Messages() }

// Ready is closed once the controller is connected to the broker.
func (s *Server) Ready() <-chan struct{} { return s.ctl.Ready() }

// URL is where gateways download packages.
func (s *Server) URL() string { return s.cfg.PublicURL }

// NewServer connects to the broker and reads the state; Run serves.
func NewServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Topic == "" {
		cfg.Topic = "usp/controllers/" + cfg.EndpointID
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.ProbeEvery == 0 {
		cfg.ProbeEvery = time.Minute
	}
	if err := CheckName(cfg.EndpointID); err != nil {
		return nil, fmt.Errorf("fleet: endpoint ID: %w", err)
	}
	mtp, err := mqttmtp.New(mqttmtp.Config{Broker: cfg.Broker, ClientID: cfg.EndpointID, Topic: cfg.Topic,
		TLS: cfg.TLS, Username: cfg.Username, Password: cfg.Password,
		MaxPacket: 1 << 20, Rate: 20000, Burst: 20000, Queue: 8192, Logf: cfg.Logf})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("fleet: package server: %w", err)
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + ln.Addr().String()
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	st, err := OpenRetained(ctx, RetainedConfig{Broker: cfg.Broker, ClientID: "fleet-state-" + cfg.EndpointID,
		TLS: cfg.TLS, Username: cfg.Username, Password: cfg.Password, Prefix: cfg.Prefix, Controller: cfg.EndpointID, Logf: cfg.Logf})
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, st: st, mtp: mtp, http: ln, runs: map[string]*Run{}, applied: map[string]string{},
		cache: map[string][2][]byte{}, probing: map[string]bool{}}
	s.ctl = NewController(ControllerConfig{EndpointID: cfg.EndpointID, MTP: mtp, Agents: cfg.Agents, Seen: s.seen, Logf: cfg.Logf})
	for _, g := range st.Gateways() {
		s.ctl.Learn(g.ID, g.Topic)
	}
	s.inst = &USPInstaller{C: s.ctl, URL: s.packageURL, Previous: s.previous}
	return s, nil
}

// State is the state the server keeps.
func (s *Server) State() *Retained { return s.st }

// Run serves until ctx ends; then it marks itself offline.
func (s *Server) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	srv := &http.Server{Handler: http.HandlerFunc(s.servePackage), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 10 * time.Minute, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	g.Go(func() error {
		if err := srv.Serve(s.http); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error { return s.ctl.Run(ctx) })
	g.Go(func() error {
		select {
		case <-s.ctl.Ready():
		case <-ctx.Done():
			return nil
		}
		s.probeAll(ctx)
		t := time.NewTicker(s.cfg.ProbeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				s.probeAll(ctx)
			}
		}
	})
	if s.cfg.Follow != nil {
		g.Go(func() error {
			select {
			case <-s.ctl.Ready():
				s.followLoop(ctx, *s.cfg.Follow)
			case <-ctx.Done():
			}
			return nil
		})
	}
	g.Go(func() error {
		select {
		case <-s.ctl.Ready():
		case <-ctx.Done():
			return nil
		}
		for {
			s.supervise(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-s.st.Changed():
			case <-time.After(time.Second):
			}
		}
	})
	<-ctx.Done()
	srv.Close()
	err := g.Wait()
	s.mu.Lock()
	runs := make([]*Run, 0, len(s.runs))
	for _, r := range s.runs {
		runs = append(runs, r)
	}
	s.mu.Unlock()
	for _, r := range runs {
		<-r.Done()
	}
	s.st.Close()
	return err
}

// Kill stops the server's state connection as a crash would (tests).
func (s *Server) Kill() { s.st.Kill() }

// seen is told of every record an agent sends: a gateway not known yet,
// moved to another topic, or with news is probed and stored.
func (s *Server) seen(agent, topic string, news bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.st.Gateway(agent); ok && g.Topic == topic && g.Online && !news {
		return
	}
	if s.probing[agent] || topic == "" {
		return
	}
	s.probing[agent] = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.probe(ctx, agent)
		s.mu.Lock()
		delete(s.probing, agent)
		s.mu.Unlock()
	}()
}

// probe asks a gateway its state and stores it, keeping its labels.
func (s *Server) probe(ctx context.Context, agent string) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	g, err := s.ctl.Probe(pctx, agent)
	old, _ := s.st.Gateway(agent)
	g.Labels = old.Labels
	if err != nil {
		g = old
		g.ID, g.Topic, g.Online, g.Error = agent, s.ctl.Agents()[agent], false, err.Error()
	}
	if err := s.st.SaveGateway(ctx, g); err != nil {
		s.cfg.Logf("fleet: %v", err)
	}
}

// probeAll probes every gateway known, a few at a time.
func (s *Server) probeAll(ctx context.Context) {
	var g errgroup.Group
	g.SetLimit(32)
	for agent := range s.ctl.Agents() {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			s.probe(ctx, agent)
			return nil
		})
	}
	g.Wait()
}

// supervise starts the rollouts this controller should run and applies
// the operators' controls to those it runs.
func (s *Server) supervise(ctx context.Context) {
	online := s.st.Online()
	// Just (re)connected, a controller lets a takeover by another, made
	// while it was away, reach it before it runs anything: MQTT has no
	// compare-and-set to claim a rollout with.
	settled := time.Since(s.st.Connected()) >= settle
	for _, st := range s.st.Rollouts() {
		id := st.Spec.ID
		s.mu.Lock()
		r := s.runs[id]
		s.mu.Unlock()
		if r != nil && isDone(r.Done()) {
			s.mu.Lock()
			delete(s.runs, id)
			delete(s.applied, id)
			s.mu.Unlock()
			r = nil
		}
		if r == nil && (st.State.Done() || !settled || !s.shouldRun(st, online)) {
			continue
		}
		full, control, _ := s.st.Rollout(id)
		if r == nil {
			// A controller that lost the broker stops its rollouts at
			// once: another may take them over meanwhile. Once back, it
			// runs again those still its own.
			rctx, cancel := context.WithCancel(ctx)
			lost := s.st.Lost()
			var err error
			r, err = Start(rctx, st.Spec, s.inst, s.st, st.State, full.Result, s.cfg.Logf)
			if err != nil {
				cancel()
				s.cfg.Logf("fleet: rollout %s: %v", id, err)
				continue
			}
			go func() {
				defer cancel()
				select {
				case <-lost:
				case <-r.Done():
				}
			}()
			s.cfg.Logf("fleet: %s runs rollout %s (was %q's)", s.cfg.EndpointID, id, st.Owner)
			s.mu.Lock()
			s.runs[id] = r
			s.mu.Unlock()
		}
		s.mu.Lock()
		if control != s.applied[id] {
			s.applied[id] = control
			switch control {
			case ActionPause:
				r.Pause()
			case ActionResume:
				r.Resume()
			case ActionAbort:
				r.Abort("aborted by the operator")
			}
		}
		s.mu.Unlock()
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// shouldRun says whether this controller runs a rollout it does not:
// its own (from before a restart), or one whose owner is offline, when
// this is the first controller online by endpoint ID.
func (s *Server) shouldRun(st Status, online []string) bool {
	if st.Owner == s.cfg.EndpointID {
		return true
	}
	if st.Owner != "" && slices.Contains(online, st.Owner) {
		return false
	}
	return len(online) > 0 && online[0] == s.cfg.EndpointID
}

// packageURL is where gateways download a package from this controller.
func (s *Server) packageURL(p Package) (string, error) {
	if CheckName(p.SHA256) != nil {
		return "", fmt.Errorf("fleet: package %s %s has no digest", p.Name, p.Version)
	}
	return s.cfg.PublicURL + "/packages/" + p.SHA256 + ".tar", nil
}

// previous finds the package of an earlier version of a chute.
func (s *Server) previous(name, version string) (Package, bool) {
	for _, p := range s.st.Packages() {
		if p.Name == name && p.Version == version {
			return p.Package, true
		}
	}
	return Package{}, false
}

// settle is how long a controller waits after connecting to the state
// before it starts a rollout.
const settle = 2 * time.Second

// maxCached bounds the packages kept in memory to serve them.
const maxCached = 4

// servePackage serves /packages/SHA256.tar and its .tar.minisig from the
// broker's retained messages, keeping the last few in memory.
func (s *Server) servePackage(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/packages/")
	part := 0
	if n, sig := strings.CutSuffix(name, ".tar.minisig"); sig {
		name, part = n, 1
	} else if n, tar := strings.CutSuffix(name, ".tar"); tar {
		name = n
	} else {
		ok = false
	}
	if !ok || r.Method != http.MethodGet || CheckName(name) != nil {
		http.NotFound(w, r)
		return
	}
	// Only what the state lists: a made-up name costs no broker read.
	if _, stored := s.st.Package(name); !stored {
		http.NotFound(w, r)
		return
	}
	files, err := s.packageFiles(r.Context(), name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(files[part])
}

// packageFiles are a package and its signature, from the cache or the
// broker.
func (s *Server) packageFiles(ctx context.Context, name string) ([2][]byte, error) {
	s.fetch.Lock()
	defer s.fetch.Unlock()
	s.mu.Lock()
	files, cached := s.cache[name]
	s.mu.Unlock()
	if cached {
		return files, nil
	}
	data, err := s.st.PackageFile(ctx, name, "data")
	if err != nil {
		return files, err
	}
	sig, err := s.st.PackageFile(ctx, name, "sig")
	if err != nil {
		return files, err
	}
	files = [2][]byte{data, sig}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= maxCached {
		for k := range s.cache {
			delete(s.cache, k)
			break
		}
	}
	s.cache[name] = files
	return files, nil
}
