package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"paradrop/usp/mqttmtp"
)

// The controller's state lives in retained messages on the broker, one
// topic per record, under a prefix (default paradrop/fleet):
//
//	PREFIX/gateways/GW                 a Gateway
//	PREFIX/rollouts/ID                 a rollout's Status (without results)
//	PREFIX/rollouts/ID/results/GW      one gateway's Result
//	PREFIX/rollouts/ID/control         "pause", "resume" or "abort"
//	PREFIX/controllers/CTRL            "online", or "offline" (its will)
//	PREFIX/packages/SHA256/meta        a PackageMeta
//	PREFIX/packages/SHA256/data, /sig  the package file and its signature
//
// The broker keeps them across a controller's crash and hands them to
// whoever subscribes: another controller process takes over from there.

// DefaultPrefix is where the state lives unless configured.
const DefaultPrefix = "paradrop/fleet"

// MaxRecord bounds one retained record: brokers bound a message (AWS IoT
// 128 KiB, HiveMQ and EMQX by configuration), so a rollout too large to
// store is refused at its start.
const MaxRecord = 128 << 10

// ErrTooLarge: a record over MaxRecord (or a package over its limit).
var ErrTooLarge = errors.New("fleet: record too large for a retained message")

// PackageMeta describes a stored package.
type PackageMeta struct {
	Package
	Size    int64     `json:"size"`
	SigSize int64     `json:"sig_size"`
	Added   time.Time `json:"added"`
}

// RetainedConfig configures the connection to the state.
type RetainedConfig struct {
	// Broker is tcp://HOST:PORT, or ssl://HOST:PORT verified with TLS
	// (nil: the system's roots).
	Broker string
	TLS    *tls.Config
	// Username and Password, if set, are sent in CONNECT.
	Username, Password string
	// ClientID is the MQTT client ID (unique on the broker).
	ClientID string
	Prefix   string
	// Controller, if set, is the controller endpoint this process runs:
	// it is marked online while connected, offline by its will once the
	// connection is lost, and it owns the rollouts it saves.
	Controller string
	Logf       func(string, ...any)
}

// Retained is the fleet's state as the broker's retained messages hold it,
// kept up to date while connected.
type Retained struct {
	cfg   RetainedConfig
	cl    mqtt.Client
	fetch sync.Mutex // PackageFile

	mu          sync.Mutex
	gateways    map[string]Gateway
	rollouts    map[string]Status
	results     map[string]map[string]Result
	controls    map[string]string
	controllers map[string]bool
	packages    map[string]PackageMeta
	changed     chan struct{} // closed and replaced at each change
	sync        map[string]chan struct{}
	lost        chan struct{} // closed when the connection is lost
	connected   time.Time     // when the connection was last made
	conn        net.Conn      // the connection now, for Kill
	killed      bool
}

// CheckName says whether s may be one level of a topic name.
func CheckName(s string) error {
	if s == "" || len(s) > 128 || strings.ContainsAny(s, "/+#\x00") {
		return fmt.Errorf("%q: want 1 to 128 characters, none of / + # NUL", s)
	}
	return nil
}

// OpenRetained connects to the broker and reads the state it holds.
func OpenRetained(ctx context.Context, cfg RetainedConfig) (*Retained, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Controller != "" {
		if err := CheckName(cfg.Controller); err != nil {
			return nil, fmt.Errorf("fleet: controller: %w", err)
		}
	}
	s := &Retained{cfg: cfg, gateways: map[string]Gateway{}, rollouts: map[string]Status{},
		results: map[string]map[string]Result{}, controls: map[string]string{}, controllers: map[string]bool{},
		packages: map[string]PackageMeta{}, changed: make(chan struct{}), sync: map[string]chan struct{}{},
		lost: make(chan struct{})}
	opts := mqtt.NewClientOptions().AddBroker(cfg.Broker).SetClientID(cfg.ClientID).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(false).
		SetMaxReconnectInterval(10 * time.Second).SetKeepAlive(10 * time.Second).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second).
		SetOrderMatters(true).
		SetOnConnectHandler(func(cl mqtt.Client) { s.subscribe(cl) }).
		SetConnectionLostHandler(func(mqtt.Client, error) {
			s.mu.Lock()
			close(s.lost)
			s.lost = make(chan struct{})
			s.mu.Unlock()
		})
	if cfg.Controller != "" {
		opts.SetWill(s.topic("controllers", cfg.Controller), "offline", 1, true)
	}
	opts.SetCustomOpenConnectionFn(func(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.killed {
			return nil, errors.New("killed")
		}
		d := net.Dialer{Timeout: o.ConnectTimeout}
		conn, err := d.Dial("tcp", u.Host)
		if err == nil && mqttmtp.Secure(cfg.Broker) {
			conn, err = mqttmtp.Handshake(context.Background(), conn, cfg.TLS, u.Hostname(), o.ConnectTimeout)
		}
		s.conn = conn
		return conn, err
	})
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username).SetPassword(cfg.Password)
	}
	s.cl = mqtt.NewClient(opts)
	if err := wait(ctx, s.cl.Connect()); err != nil {
		s.cl.Disconnect(0)
		return nil, fmt.Errorf("fleet: state on %s: %w", cfg.Broker, err)
	}
	s.mu.Lock()
	s.connected = time.Now()
	s.mu.Unlock()
	// The handler subscribes too, but later: the first sync needs the
	// subscription made.
	err := wait(ctx, s.cl.SubscribeMultiple(s.filters(), s.handler))
	if err == nil {
		err = s.Sync(ctx)
	}
	if err != nil {
		s.cl.Disconnect(0)
		return nil, err
	}
	return s, nil
}

func (s *Retained) topic(parts ...string) string {
	return s.cfg.Prefix + "/" + strings.Join(parts, "/")
}

// subscribe (again, after a reconnection) to the state's topics.
func (s *Retained) subscribe(cl mqtt.Client) {
	s.mu.Lock()
	s.connected = time.Now()
	s.mu.Unlock()
	cl.SubscribeMultiple(s.filters(), s.handler)
	if s.cfg.Controller != "" {
		cl.Publish(s.topic("controllers", s.cfg.Controller), 1, true, "online")
	}
}

func (s *Retained) filters() map[string]byte {
	return map[string]byte{
		s.topic("gateways", "+"): 1, s.topic("rollouts", "#"): 1, s.topic("controllers", "+"): 1,
		s.topic("packages", "+", "meta"): 1, s.topic("sync", s.cfg.ClientID): 1,
	}
}

func (s *Retained) handler(_ mqtt.Client, m mqtt.Message) { s.receive(m.Topic(), m.Payload()) }

// Sync returns once the state received what the broker held when it was
// called: it sends itself a message, which the broker delivers after
// the retained ones of the subscription made before.
func (s *Retained) Sync(ctx context.Context) error {
	tag := rand.Text()
	ch := make(chan struct{})
	s.mu.Lock()
	s.sync[tag] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sync, tag)
		s.mu.Unlock()
	}()
	if err := wait(ctx, s.cl.Publish(s.topic("sync", s.cfg.ClientID), 1, false, tag)); err != nil {
		return fmt.Errorf("fleet: state sync: %w", err)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fleet: state sync: %w", ctx.Err())
	}
}

// receive takes one retained (or live) record.
func (s *Retained) receive(topic string, payload []byte) {
	rest, ok := strings.CutPrefix(topic, s.cfg.Prefix+"/")
	if !ok {
		return
	}
	parts := strings.Split(rest, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := len(payload) == 0 // an empty retained message deletes
	switch {
	case len(parts) == 2 && parts[0] == "sync":
		if ch, ok := s.sync[string(payload)]; ok {
			close(ch)
			delete(s.sync, string(payload))
		}
		return
	case len(parts) == 2 && parts[0] == "gateways":
		var g Gateway
		if gone {
			delete(s.gateways, parts[1])
		} else if s.decode(topic, payload, &g) {
			s.gateways[parts[1]] = g
		}
	case len(parts) == 2 && parts[0] == "rollouts":
		var st Status
		if gone {
			delete(s.rollouts, parts[1])
		} else if s.decode(topic, payload, &st) {
			s.rollouts[parts[1]] = st
		}
	case len(parts) == 3 && parts[0] == "rollouts" && parts[2] == "control":
		s.controls[parts[1]] = string(payload)
	case len(parts) == 4 && parts[0] == "rollouts" && parts[2] == "results":
		var r Result
		if s.results[parts[1]] == nil {
			s.results[parts[1]] = map[string]Result{}
		}
		if gone {
			delete(s.results[parts[1]], parts[3])
		} else if s.decode(topic, payload, &r) {
			s.results[parts[1]][parts[3]] = r
		}
	case len(parts) == 2 && parts[0] == "controllers":
		s.controllers[parts[1]] = string(payload) == "online"
	case len(parts) == 3 && parts[0] == "packages" && parts[2] == "meta":
		var p PackageMeta
		if s.decode(topic, payload, &p) {
			s.packages[parts[1]] = p
		}
	default:
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Retained) decode(topic string, payload []byte, v any) bool {
	if err := json.Unmarshal(payload, v); err != nil {
		s.cfg.Logf("fleet: state %s: %v", topic, err)
		return false
	}
	return true
}

// Connected is when the connection to the broker was last made.
func (s *Retained) Connected() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected
}

// Lost is closed when the connection to the broker is next lost.
func (s *Retained) Lost() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// Changed is closed at the next change of the state.
func (s *Retained) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Close disconnects, as a controller that stops: it marks itself
// offline first, so that another may take over at once.
func (s *Retained) Close() {
	if s.cfg.Controller != "" {
		s.cl.Publish(s.topic("controllers", s.cfg.Controller), 1, true, "offline").WaitTimeout(5 * time.Second)
	}
	s.cl.Disconnect(250)
}

// Kill drops the connection without a word, as a crash would: the broker
// publishes the will.
func (s *Retained) Kill() {
	s.mu.Lock()
	s.killed = true
	if s.conn != nil {
		s.conn.Close()
	}
	s.mu.Unlock()
	s.cl.Disconnect(0)
}

func (s *Retained) put(ctx context.Context, topic string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxRecord {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrTooLarge, topic, len(b), MaxRecord)
	}
	return s.publish(ctx, topic, b)
}

func (s *Retained) publish(ctx context.Context, topic string, b []byte) error {
	if err := wait(ctx, s.cl.Publish(topic, 1, true, b)); err != nil {
		return fmt.Errorf("fleet: store %s: %w", topic, err)
	}
	return nil
}

// SaveGateway stores what is known of a gateway.
func (s *Retained) SaveGateway(ctx context.Context, g Gateway) error {
	if err := CheckName(g.ID); err != nil {
		return fmt.Errorf("fleet: gateway: %w", err)
	}
	return s.put(ctx, s.topic("gateways", g.ID), g)
}

// SaveRollout implements Store: the rollout is owned by this process's
// controller.
func (s *Retained) SaveRollout(ctx context.Context, st Status) error {
	if err := CheckName(st.Spec.ID); err != nil {
		return fmt.Errorf("fleet: rollout: %w", err)
	}
	st.Owner = s.cfg.Controller
	return s.put(ctx, s.topic("rollouts", st.Spec.ID), st)
}

// SaveResult implements Store.
func (s *Retained) SaveResult(ctx context.Context, id, gw string, r Result) error {
	if err := CheckName(gw); err != nil {
		return fmt.Errorf("fleet: gateway: %w", err)
	}
	return s.put(ctx, s.topic("rollouts", id, "results", gw), r)
}

// Control actions an operator sends a running rollout.
const (
	ActionPause  = "pause"
	ActionResume = "resume"
	ActionAbort  = "abort"
)

// SetControl asks the rollout's controller to pause, resume or abort it.
func (s *Retained) SetControl(ctx context.Context, id, action string) error {
	return s.publish(ctx, s.topic("rollouts", id, "control"), []byte(action))
}

// Gateways are the gateways stored, by ID.
func (s *Retained) Gateways() []Gateway {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Values(s.gateways), func(a, b Gateway) int { return strings.Compare(a.ID, b.ID) })
}

// Gateway is one gateway stored.
func (s *Retained) Gateway(id string) (Gateway, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.gateways[id]
	return g, ok
}

// Package is one package stored.
func (s *Retained) Package(sha string) (PackageMeta, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.packages[sha]
	return p, ok
}

// Rollouts are the rollouts stored, by ID.
func (s *Retained) Rollouts() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Values(s.rollouts), func(a, b Status) int { return strings.Compare(a.Spec.ID, b.Spec.ID) })
}

// Rollout is one rollout with its gateways' results and control.
func (s *Retained) Rollout(id string) (st Status, control string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok = s.rollouts[id]
	st.Result = map[string]Result{}
	st.Counts = map[GatewayState]int{}
	for _, gw := range st.Spec.Targets {
		r, found := s.results[id][gw]
		if !found {
			r.State = Pending
		}
		st.Result[gw] = r
		st.Counts[r.State]++
	}
	return st, s.controls[id], ok
}

// Online are the controllers connected now.
func (s *Retained) Online() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for c, on := range s.controllers {
		if on {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// Packages are the packages stored.
func (s *Retained) Packages() []PackageMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.packages))
}

// PutPackage stores a package and its signature, then its description.
func (s *Retained) PutPackage(ctx context.Context, p PackageMeta, data, sig []byte) error {
	if err := CheckName(p.SHA256); err != nil {
		return err
	}
	if err := s.publish(ctx, s.topic("packages", p.SHA256, "data"), data); err != nil {
		return err
	}
	if err := s.publish(ctx, s.topic("packages", p.SHA256, "sig"), sig); err != nil {
		return err
	}
	return s.put(ctx, s.topic("packages", p.SHA256, "meta"), p)
}

// PackageFile reads a stored package's file ("data" or "sig") from the
// broker: only while asked, so that packages do not stay in memory.
func (s *Retained) PackageFile(ctx context.Context, sha, part string) ([]byte, error) {
	if err := CheckName(sha); err != nil {
		return nil, err
	}
	// One at a time: a second subscription to the topic would replace
	// the first one's handler.
	s.fetch.Lock()
	defer s.fetch.Unlock()
	topic := s.topic("packages", sha, part)
	got := make(chan []byte, 1)
	if err := wait(ctx, s.cl.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})); err != nil {
		return nil, fmt.Errorf("fleet: read %s: %w", topic, err)
	}
	defer s.cl.Unsubscribe(topic)
	if err := s.Sync(ctx); err != nil {
		return nil, err
	}
	select {
	case b := <-got:
		return b, nil
	default:
		return nil, fmt.Errorf("fleet: package %s: %w", sha, errNoPackage)
	}
}

var errNoPackage = errors.New("not stored")

// wait waits for a paho token or ctx.
func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MaxPackage bounds a package stored on the broker (and the memory a
// controller spends serving it).
const MaxPackage = 32 << 20

// AddPackage stores a package file and its signature, named by the
// file's SHA-256.
func (s *Retained) AddPackage(ctx context.Context, name, version string, data, sig []byte) (Package, error) {
	if len(data) > MaxPackage || len(sig) > 64<<10 {
		return Package{}, fmt.Errorf("%w: package of %d bytes (at most %d) or signature of %d", ErrTooLarge, len(data), MaxPackage, len(sig))
	}
	if len(sig) == 0 {
		return Package{}, errors.New("fleet: empty signature")
	}
	sum := sha256.Sum256(data)
	p := Package{Name: name, Version: version, SHA256: hex.EncodeToString(sum[:])}
	err := s.PutPackage(ctx, PackageMeta{Package: p, Size: int64(len(data)), SigSize: int64(len(sig)), Added: time.Now().UTC()}, data, sig)
	return p, err
}

// ErrExists: a rollout of that ID exists.
var ErrExists = errors.New("fleet: a rollout of that ID exists")

// StartRollout stores a new rollout, which a controller online runs.
func (s *Retained) StartRollout(ctx context.Context, spec Spec) error {
	if _, err := spec.withDefaults(); err != nil {
		return err
	}
	if err := CheckName(spec.ID); err != nil {
		return fmt.Errorf("%w: ID %v", ErrBadSpec, err)
	}
	for _, gw := range spec.Targets {
		if err := CheckName(gw); err != nil {
			return fmt.Errorf("%w: target %v", ErrBadSpec, err)
		}
	}
	if _, _, ok := s.Rollout(spec.ID); ok {
		return fmt.Errorf("%w: %s", ErrExists, spec.ID)
	}
	return s.SaveRollout(ctx, Status{Spec: spec, State: Running, Update: time.Now().UTC()})
}

// Labelled are the gateways stored with a label.
func (s *Retained) Labelled(label string) []string {
	var out []string
	for _, g := range s.Gateways() {
		if slices.Contains(g.Labels, label) {
			out = append(out, g.ID)
		}
	}
	return out
}
