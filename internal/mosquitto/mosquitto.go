// Package mosquitto starts Debian's mosquitto broker on a loopback port
// for a test, and can stop and restart it there.
package mosquitto

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"paradrop/tlscert"
)

// Broker is a mosquitto run by a test.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	addr string
	// tlsAddr is the listener of MQTT over TLS, if any, and caFile
	// verifies it.
	tlsAddr, caFile string
	cmd             *exec.Cmd
	exited          chan struct{} // closed when cmd has exited
}

// Start runs mosquitto on a free loopback port until the test ends. The
// test is skipped when mosquitto is not installed (CI installs it: make
// deps).
func Start(t testing.TB) *Broker {
	t.Helper()
	return start(t, nil)
}

// StartTLS runs mosquitto as Start does, with a second listener at
// TLSURL: MQTT over TLS, with a self-signed certificate for 127.0.0.1 (the
// CA file is CAFile), for users given by name and password only.
func StartTLS(t testing.TB, users map[string]string) *Broker {
	t.Helper()
	dir := t.TempDir()
	if _, err := tlscert.EnsureSelfSigned(dir, tlscert.Names{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return start(t, &tlsListener{cert: filepath.Join(dir, tlscert.Dir, "cert.pem"), key: filepath.Join(dir, tlscert.Dir, "key.pem"), users: users})
}

type tlsListener struct {
	cert, key string
	users     map[string]string
}

func start(t testing.TB, tls *tlsListener) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/mosquitto"); err != nil {
			t.Skip("mosquitto not installed (apt-get install mosquitto)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	dir := t.TempDir()
	b := &Broker{t: t, bin: bin, addr: freePort(t), conf: filepath.Join(dir, "mosquitto.conf")}
	_, port, _ := net.SplitHostPort(b.addr)
	// No persistence, no file log: nothing outside the test's directory.
	conf := fmt.Sprintf("per_listener_settings true\npersistence false\nlog_dest stderr\nlog_type error\nlistener %s 127.0.0.1\nallow_anonymous true\n", port)
	if tls != nil {
		b.tlsAddr = freePort(t)
		_, tport, _ := net.SplitHostPort(b.tlsAddr)
		passwd := filepath.Join(dir, "passwd")
		if err := os.WriteFile(passwd, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for user, pass := range tls.users {
			if out, err := exec.Command("mosquitto_passwd", "-b", passwd, user, pass).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v: %s", err, out)
			}
		}
		conf += fmt.Sprintf("listener %s 127.0.0.1\ncertfile %s\nkeyfile %s\nallow_anonymous false\npassword_file %s\n",
			tport, tls.cert, tls.key, passwd)
		b.caFile = tls.cert
		if os.Geteuid() == 0 {
			// Run as root, mosquitto becomes user mosquitto before it
			// reads the password file, in the test's private directory.
			conf = "user root\n" + conf
		}
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.Stop)
	return b
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TLSURL is the ssl:// address of StartTLS's TLS listener.
func (b *Broker) TLSURL() string { return "ssl://" + b.tlsAddr }

// CAFile is the PEM file that verifies the TLS listener's certificate.
func (b *Broker) CAFile() string { return b.caFile }

// URL is the broker's tcp:// address.
func (b *Broker) URL() string { return "tcp://" + b.addr }

func (b *Broker) start() {
	b.t.Helper()
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	b.cmd.Stderr = os.Stderr
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("mosquitto: %v", err)
	}
	b.exited = make(chan struct{})
	go func() { b.cmd.Wait(); close(b.exited) }()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-b.exited:
			b.t.Fatalf("mosquitto exited (port %s taken?): %v", b.addr, b.cmd.ProcessState)
		default:
		}
		if c, err := net.Dial("tcp", b.addr); err == nil {
			c.Close()
			return
		}
	}
	b.t.Fatalf("mosquitto did not listen on %s", b.addr)
}

// Stop kills the broker, as a crash would.
func (b *Broker) Stop() {
	b.cmd.Process.Kill()
	<-b.exited
}

// Restart starts the broker again on the same port.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

// Client connects a plain MQTT client (a controller, an attacker) to the
// broker until the test ends; with a filter, what it receives on it goes
// to got. It reconnects and subscribes again after a Restart.
func (b *Broker) Client(t testing.TB, id, filter string, got chan<- mqtt.Message) mqtt.Client {
	t.Helper()
	subscribed := make(chan error, 1)
	opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(id).SetMaxReconnectInterval(time.Second).
		SetOnConnectHandler(func(cl mqtt.Client) {
			if filter == "" {
				return
			}
			tok := cl.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m })
			tok.WaitTimeout(5 * time.Second)
			select {
			case subscribed <- tok.Error():
			default:
			}
		})
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt client %s: connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	if filter != "" {
		select {
		case err := <-subscribed:
			if err != nil {
				t.Fatalf("mqtt client %s: subscribe: %v", id, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("mqtt client %s: subscribe: no answer", id)
		}
	}
	return cl
}
