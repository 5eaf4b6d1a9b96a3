package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/chute"
	"paradrop/store"
	"paradrop/tenant"
	"paradrop/usp"
	"paradrop/usp/mqttmtp"
)

// uspOptions configure the TR-369 agent; it runs when broker is set.
type uspOptions struct {
	broker      string
	endpointID  string                    // default os:: + the machine's serial
	topic       string                    // default usp/agents/<endpoint ID>
	controllers map[string]usp.Controller // by endpoint ID
	// MQTT over TLS (an ssl:// broker): the CA file (default the
	// system's), and the user name and the file holding its password.
	ca, username, passwordFile string
	// developersReachAll lets developers' controllers download from any
	// address, loopback too: for tests, whose packages are served there.
	developersReachAll bool
}

func uspFlags(fs *flag.FlagSet, o *uspOptions) {
	fs.StringVar(&o.broker, "usp-broker", "", "MQTT broker of the TR-369 (USP) agent, tcp://HOST:PORT or ssl://HOST:PORT (default: no agent)")
	fs.StringVar(&o.endpointID, "usp-endpoint-id", "", "the agent's USP endpoint ID (default os:: and an ID derived from the machine)")
	fs.StringVar(&o.topic, "usp-topic", "", "the agent's MQTT topic (default usp/agents/ENDPOINT-ID)")
	fs.StringVar(&o.ca, "usp-ca", "", "PEM file of the CAs that sign an ssl:// broker's certificate (default the system's)")
	fs.StringVar(&o.username, "usp-username", "", "user name the agent gives the broker")
	fs.StringVar(&o.passwordFile, "usp-password-file", "", "file holding the password the agent gives the broker (needs --usp-username)")
	fs.Func("usp-controller", "a USP controller the agent answers, ENDPOINT_ID=TOPIC, the operator's, or ENDPOINT_ID=TOPIC,developer=NAME, acting for developer NAME on its chutes only (repeatable)", func(s string) error {
		id, c, err := parseController(s)
		if err != nil {
			return err
		}
		if o.controllers == nil {
			o.controllers = map[string]usp.Controller{}
		}
		o.controllers[id] = c
		return nil
	})
}

// parseController reads --usp-controller's ENDPOINT_ID=TOPIC[,developer=NAME].
func parseController(s string) (string, usp.Controller, error) {
	id, topic, ok := strings.Cut(s, "=")
	if !ok {
		return "", usp.Controller{}, errors.New("want ENDPOINT_ID=TOPIC[,developer=NAME]")
	}
	if err := usp.CheckEndpointID(id); err != nil {
		return "", usp.Controller{}, err
	}
	c := usp.Controller{Topic: topic}
	if i := strings.LastIndex(topic, ",developer="); i >= 0 {
		c.Topic, c.Developer = topic[:i], topic[i+len(",developer="):]
		if err := (&tenant.Spec{Name: c.Developer}).Validate(); err != nil {
			return "", usp.Controller{}, err
		}
	}
	if err := mqttmtp.CheckTopic(c.Topic); err != nil {
		return "", usp.Controller{}, fmt.Errorf("topic %q: %w", c.Topic, err)
	}
	return id, c, nil
}

// check refuses USP flags that cannot work, before anything starts.
func (o *uspOptions) check() error {
	if o.broker == "" {
		if o.endpointID != "" || o.topic != "" || len(o.controllers) > 0 || o.ca != "" || o.username != "" || o.passwordFile != "" {
			return errors.New("the --usp-* flags need --usp-broker")
		}
		return nil
	}
	if o.ca != "" && !mqttmtp.Secure(o.broker) {
		return errors.New("--usp-ca needs an ssl:// --usp-broker")
	}
	if o.passwordFile != "" && o.username == "" {
		return errors.New("--usp-password-file needs --usp-username")
	}
	if _, err := o.tlsConfig(); err != nil {
		return err
	}
	if o.passwordFile != "" {
		if _, err := os.ReadFile(o.passwordFile); err != nil {
			return fmt.Errorf("--usp-password-file: %w", err)
		}
	}
	if len(o.controllers) == 0 {
		return errors.New("--usp-broker needs at least one --usp-controller ENDPOINT_ID=TOPIC")
	}
	if o.endpointID != "" {
		if err := usp.CheckEndpointID(o.endpointID); err != nil {
			return err
		}
	}
	if o.topic != "" {
		if err := mqttmtp.CheckTopic(o.topic); err != nil {
			return fmt.Errorf("--usp-topic %q: %w", o.topic, err)
		}
	}
	return mqttmtp.CheckBroker(o.broker)
}

// newUSP makes the agent, if configured, and has it told of the chute
// manager's changes: before the manager runs, so that it hears how the
// changes a restart interrupted end. The returned start runs it until
// the stop start returns is called. The gateway never depends on the
// broker: the agent reconnects on its own and serve does not wait for it.
func newUSP(o uspOptions, dataDir string, db *store.DB, mgr *chute.Manager, origin func(string, chute.Actor) (chute.Origin, error), maxUpload int64, logf func(string, ...any)) (start func() (stop func()), err error) {
	if o.broker == "" {
		return func() func() { return func() {} }, nil
	}
	serial, err := machineSerial(dataDir)
	if err != nil {
		return nil, err
	}
	id := o.endpointID
	if id == "" {
		id = "os::" + serial
	}
	topic := o.topic
	if topic == "" {
		topic = "usp/agents/" + id
	}
	vendor, model := hardware()
	agent, err := usp.New(usp.Config{
		EndpointID: id, Controllers: o.controllers, Chutes: mgr, Origin: origin, Logf: logf, DB: db,
		Available: func() (uint64, uint64) { return available(dataDir) },
		InUse:     func() map[string]usp.Use { return inUse(mgr) },
		Hosts:     mgr.Hosts,
		Download:  usp.Download{MaxSize: maxUpload, Public: o.publicClient()},
		Device: usp.DeviceInfo{Manufacturer: vendor, ModelName: model, SerialNumber: serial,
			SoftwareVersion: buildVersion(), UpTime: upTime},
	})
	if err != nil {
		return nil, err
	}
	mgr.OnChangeEnd(agent.ChangeEnded)
	mc := mqttmtp.Config{Broker: o.broker, ClientID: id, Topic: topic, Logf: logf, Username: o.username}
	if mc.TLS, err = o.tlsConfig(); err != nil {
		return nil, err
	}
	if o.passwordFile != "" {
		if mc.Password, err = brokerPassword("--usp-password-file", o.passwordFile); err != nil {
			return nil, err
		}
	}
	client, err := mqttmtp.New(mc)
	if err != nil {
		return nil, err
	}
	return func() func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			agent.Serve(ctx, client)
		}()
		logf("USP agent %s on %s, topic %s", id, o.broker, topic)
		return func() { cancel(); <-done }
	}, nil
}

// publicClient is the client of developers' downloads: nil, the agent's
// own that reaches public addresses only, except in tests.
func (o *uspOptions) publicClient() *http.Client {
	if o.developersReachAll {
		return &http.Client{}
	}
	return nil
}

// tlsConfig is the TLS of an ssl:// broker: its certificate verified
// with --usp-ca's CAs, or the system's.
func (o *uspOptions) tlsConfig() (*tls.Config, error) {
	return brokerTLS("--usp-ca", o.ca)
}

// brokerTLS is the TLS of an ssl:// broker whose certificate is verified
// with the CAs in the PEM file ca only (flag names it in errors); nil,
// the system's roots, when ca is "".
func brokerTLS(flag, ca string) (*tls.Config, error) {
	if ca == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate", flag, ca)
	}
	return &tls.Config{RootCAs: pool}, nil
}

// brokerPassword reads a password file (flag names it in errors): its
// first line.
func brokerPassword(flag, path string) (string, error) {
	pw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	return strings.TrimRight(string(pw), "\r\n"), nil
}

// machineSerial is a stable ID of this machine: a hash of systemd's
// machine ID (not the ID itself, as machine-id(5) asks), or of one made
// in the data directory where there is none (OpenWrt).
func machineSerial(dataDir string) (string, error) {
	id, err := os.ReadFile("/etc/machine-id")
	if err != nil || len(strings.TrimSpace(string(id))) == 0 {
		own := filepath.Join(dataDir, "machine-id")
		if id, err = os.ReadFile(own); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("machine ID: %w", err)
			}
			id = []byte(rand.Text() + "\n")
			if err := os.WriteFile(own, id, 0o600); err != nil {
				return "", fmt.Errorf("machine ID: %w", err)
			}
		}
	}
	sum := sha256.Sum256([]byte("paradrop usp serial\n" + strings.TrimSpace(string(id))))
	return hex.EncodeToString(sum[:8]), nil
}

// hardware is the machine's maker and model as firmware tells them:
// DMI on PCs, the device tree on routers; empty when unknown.
func hardware() (vendor, model string) {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
	}
	vendor, model = read("/sys/class/dmi/id/sys_vendor"), read("/sys/class/dmi/id/product_name")
	if model == "" {
		model = read("/proc/device-tree/model")
	}
	return vendor, model
}

func upTime() time.Duration {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return time.Duration(si.Uptime) * time.Second
}

// inUse is what each chute used in the usage sampler's latest sample.
func inUse(mgr *chute.Manager) map[string]usp.Use {
	series, err := mgr.Usage(3 * time.Second)
	if err != nil || len(series.Samples) == 0 {
		return nil
	}
	last := series.Samples[len(series.Samples)-1]
	out := make(map[string]usp.Use, len(last.Chutes))
	for name, c := range last.Chutes {
		out[name] = usp.Use{Memory: c.Mem, Disk: c.Disk}
	}
	return out
}

// available is the memory (MemAvailable) and the data filesystem's space
// left, in KiB; 0 when unknown.
func available(dataDir string) (mem, disk uint64) {
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
				mem, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	var st unix.Statfs_t
	if unix.Statfs(dataDir, &st) == nil {
		disk = st.Bavail * uint64(st.Bsize) >> 10
	}
	return mem, disk
}
