package main

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"paradrop/api"
	"paradrop/netconf"
	"paradrop/netconf/nettest"
	"paradrop/tlscert"
)

// The gateway's LAN side, in a namespace of the test's own: TEST-NET-1 on
// a veth pair with both ends there, so nothing here reaches the host's
// network.
const (
	tlsLANAddr  = "192.0.2.1"
	tlsLANPort  = tlsLANAddr + ":8443"
	tlsLoopPort = "127.0.0.1:18080" // the namespace's own loopback
)

// lanDaemon is the real binary serving on a LAN address, and its loopback,
// in a network namespace; the test's clients run there too.
type lanDaemon struct {
	t    *testing.T
	bin  string
	host *nettest.Host
	data string
	log  string
	cmd  *exec.Cmd
	fp   string // the fingerprint its startup log printed
	// https is the address of its HTTPS listener; "" is tlsLANPort.
	https string
}

func newLANDaemon(t *testing.T) *lanDaemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	nettest.Require(t, "ip", "openssl")
	h := nettest.NewHost(t)
	nettest.Veth(t, nettest.End{Host: h, If: "lan0", Addr: netip.MustParsePrefix(tlsLANAddr + "/24")}, nettest.End{Host: h, If: "lan1"})
	top := t.TempDir()
	return &lanDaemon{t: t, bin: buildBinary(t), host: h, data: filepath.Join(top, "data"), log: filepath.Join(top, "daemon.log")}
}

var fingerprintLog = regexp.MustCompile(`TLS certificate .* SHA-256 fingerprint ([0-9A-F:]{95})`)

// start runs serve in the namespace and waits for its HTTPS listener.
func (d *lanDaemon) start(extra ...string) {
	d.t.Helper()
	os.Remove(d.log)
	https := cmp.Or(d.https, tlsLANPort)
	args := append([]string{"serve", "--data", d.data, "--listen", tlsLoopPort + "," + https,
		"--cgroup-parent", e2eCgroupParent, "--network=false"}, extra...)
	d.cmd = exec.Command(d.bin, args...)
	f, err := os.Create(d.log)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := netconf.InNetNS(d.host.NetNS, d.cmd.Start); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(d.stop)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(d.log)
		if bytes.Contains(b, []byte("API listening on "+https+" (HTTPS)")) {
			m := fingerprintLog.FindSubmatch(b)
			if m == nil {
				d.t.Fatalf("the startup log has no fingerprint:\n%s", b)
			}
			d.fp = string(m[1])
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon did not come up:\n%s", b)
		}
	}
}

func (d *lanDaemon) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	d.cmd = nil
}

func (d *lanDaemon) token() string {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.data, api.TokenFile))
	if err != nil {
		d.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// dial connects from inside the namespace.
func (d *lanDaemon) dial(addr string) net.Conn {
	d.t.Helper()
	c, err := nettest.Dial(d.t, d.host, addr, 5*time.Second)
	if err != nil {
		d.t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}

// handshake makes a TLS connection to the LAN listener and returns it with
// the fingerprint of the certificate it was shown.
func (d *lanDaemon) handshake() (*tls.Conn, tlscert.Fingerprint) {
	d.t.Helper()
	c := tls.Client(d.dial(tlsLANPort), &tls.Config{InsecureSkipVerify: true})
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		d.t.Fatalf("TLS handshake: %v", err)
	}
	c.SetDeadline(time.Time{})
	return c, tlscert.Of(c.ConnectionState().PeerCertificates[0].Raw)
}

// get sends one request on c and returns the status and body.
func get(t *testing.T, c net.Conn, path, token string) (int, string) {
	t.Helper()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n\r\n", path, token)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// cli runs the binary's CLI inside the namespace with home as $HOME.
func (d *lanDaemon) cli(home string, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	cmd := exec.Command("env", append([]string{"-i", "HOME=" + home, "PARADROP_TOKEN=" + d.token(), d.bin}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := netconf.InNetNS(d.host.NetNS, cmd.Start); err != nil {
		d.t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// The LAN listener serves HTTPS only, with the self-signed certificate whose
// fingerprint the daemon printed; loopback stays plain HTTP.
func TestTLSLANListener(t *testing.T) {
	d := newLANDaemon(t)
	d.start()

	// Plain HTTP on the LAN listener gets nothing of the API.
	c := d.dial(tlsLANPort)
	code, body := get(t, c, "/api/v1/info", d.token())
	if code != http.StatusBadRequest || strings.Contains(body, "version") {
		t.Errorf("plain HTTP on the LAN listener: %d %q, want 400 and no API", code, body)
	}

	tc, seen := d.handshake()
	if seen.String() != d.fp {
		t.Errorf("the client sees fingerprint %s, the startup log printed %s", seen, d.fp)
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("certificate key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if err := leaf.VerifyHostname(tlsLANAddr); err != nil {
		t.Errorf("certificate does not name the LAN address: %v", err)
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		t.Error("HTTP/2 negotiated: the connection limits count HTTP/1.1 connections")
	}
	code, body = get(t, tc, "/api/v1/info", d.token())
	var info gatewayInfo
	if err := json.Unmarshal([]byte(body), &info); code != http.StatusOK || err != nil || info.TLSFingerprint != d.fp {
		t.Errorf("info over HTTPS: %d %s %v, want tls_fingerprint %s", code, body, err, d.fp)
	}
	// The web UI over the same listener.
	if code, body := get(t, tc, "/", ""); code != http.StatusOK || !strings.Contains(body, "<html") {
		t.Errorf("web UI over HTTPS: %d", code)
	}

	// OpenSSL agrees.
	out := nettest.Exec(t, d.host, "sh", "-c", "openssl s_client -connect "+tlsLANPort+" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256")
	if got := strings.TrimSpace(out); !strings.EqualFold(got, "sha256 Fingerprint="+d.fp) {
		t.Errorf("openssl s_client: %q, want the logged %s", got, d.fp)
	}

	// Loopback is plain HTTP.
	if code, _ := get(t, d.dial(tlsLoopPort), "/api/v1/health", ""); code != http.StatusOK {
		t.Errorf("plain HTTP on loopback: %d", code)
	}

	// A restart keeps the certificate.
	d.stop()
	before := d.fp
	d.start()
	if d.fp != before {
		t.Errorf("restart made a new certificate: %s, was %s", d.fp, before)
	}
	fi, err := os.Stat(filepath.Join(d.data, tlscert.Dir, "key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v, want 0600", fi, err)
	}
}

// The CLI pins the certificate on first use, shows the same fingerprint as
// the gateway, and refuses the gateway once its certificate is replaced,
// until told the new fingerprint.
func TestTLSCLIPinning(t *testing.T) {
	d := newLANDaemon(t)
	d.start()
	home := t.TempDir()
	lan := "https://" + tlsLANPort

	out, errs, code := d.cli(home, "info", "--server", lan)
	if code != 0 || !strings.Contains(out, d.fp) || !strings.Contains(errs, "pinned its certificate, SHA-256 fingerprint "+d.fp) {
		t.Fatalf("first use: %d\n%s\n%s", code, out, errs)
	}
	// On the gateway itself, over loopback, info shows the same.
	if out, errs, code := d.cli(home, "info", "--server", "http://"+tlsLoopPort); code != 0 || !strings.Contains(out, d.fp) {
		t.Errorf("info over loopback: %d\n%s\n%s", code, out, errs)
	}
	if _, errs, code := d.cli(home, "chute", "list", "--server", lan); code != 0 || errs != "" {
		t.Errorf("second use: %d %s", code, errs)
	}
	if _, errs, code := d.cli(home, "chute", "list", "--server", "http://"+tlsLANPort); code != 2 || !strings.Contains(errs, "HTTPS only") {
		t.Errorf("plain http to the LAN address: %d %s", code, errs)
	}

	// The certificate is replaced (its files removed: a new one is made).
	old := d.fp
	d.stop()
	if err := os.RemoveAll(filepath.Join(d.data, tlscert.Dir)); err != nil {
		t.Fatal(err)
	}
	d.start()
	if d.fp == old {
		t.Fatal("no new certificate")
	}
	_, errs, code = d.cli(home, "chute", "list", "--server", lan)
	if code != 1 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, d.fp) || !strings.Contains(errs, old) || !strings.Contains(errs, "--fingerprint "+d.fp) {
		t.Errorf("changed certificate: %d %q, want one line naming both fingerprints and --fingerprint", code, errs)
	}
	if _, errs, code := d.cli(home, "chute", "list", "--server", lan, "--fingerprint", d.fp); code != 0 {
		t.Errorf("--fingerprint of the new certificate: %d %s", code, errs)
	}
	if _, errs, code := d.cli(home, "chute", "list", "--server", lan); code != 0 {
		t.Errorf("after accepting the new certificate: %d %s", code, errs)
	}
}

// --tls-cert/--tls-key serve the operator's own certificate.
func TestTLSOperatorCert(t *testing.T) {
	d := newLANDaemon(t)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	nettest.Exec(t, nil, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", keyPath, "-out", certPath, "-days", "2", "-subj", "/CN=operator's gateway", "-addext", "subjectAltName=IP:"+tlsLANAddr)
	raw, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	want := tlscert.Of(block.Bytes)

	d.start("--tls-cert", certPath, "--tls-key", keyPath)
	if d.fp != want.String() {
		t.Errorf("startup log fingerprint %s, want the operator's %s", d.fp, want)
	}
	if _, seen := d.handshake(); seen != want {
		t.Errorf("served %s, want the operator's %s", seen, want)
	}
	if _, err := os.Stat(filepath.Join(d.data, tlscert.Dir)); err == nil {
		t.Error("a self-signed certificate was made although the operator gave one")
	}
}

// The connection limits hold on the HTTPS listener: a handshake that does
// not come is cut at the header timeout, and a client over its connection
// cap is refused.
func TestTLSLimitsOnLAN(t *testing.T) {
	d := newLANDaemon(t)
	const headerTimeout = time.Second
	d.start("--header-timeout", headerTimeout.String(), "--max-conns-per-client", "3")

	silent := d.dial(tlsLANPort)
	start := time.Now()
	silent.SetReadDeadline(time.Now().Add(10 * headerTimeout))
	_, err := silent.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a connection that never starts its handshake is still open after %v", 10*headerTimeout)
	}
	if took := time.Since(start); took < headerTimeout/2 || took > 3*headerTimeout {
		t.Errorf("silent connection closed after %v, want about the header timeout %v", took, headerTimeout)
	}

	var conns []*tls.Conn
	for range 3 {
		c, _ := d.handshake()
		conns = append(conns, c)
	}
	extra := tls.Client(d.dial(tlsLANPort), &tls.Config{InsecureSkipVerify: true})
	extra.SetDeadline(time.Now().Add(3 * time.Second))
	if err := extra.Handshake(); err == nil {
		t.Error("a 4th TLS connection from a client capped at 3 completed its handshake")
	}
	for _, c := range conns {
		if code, _ := get(t, c, "/api/v1/health", ""); code != http.StatusOK {
			t.Errorf("a connection within the cap: %d", code)
		}
	}
}
