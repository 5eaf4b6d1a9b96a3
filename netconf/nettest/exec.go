package nettest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"paradrop/netconf"
)

// cmdTimeout bounds Run and Exec so a hung ping or nc fails the test instead
// of hanging it.
const cmdTimeout = 60 * time.Second

// Run runs argv inside h (nil: the test's namespace) and returns its
// combined output. Use it where failure is expected; Exec otherwise.
func Run(h *Host, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := start(h, cmd); err != nil {
		return "", fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	if err := cmd.Wait(); err != nil {
		return out.String(), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return out.String(), nil
}

// Exec is Run that fails the test if the command fails.
func Exec(t testing.TB, h *Host, argv ...string) string {
	t.Helper()
	out, err := Run(h, argv...)
	if err != nil {
		t.Fatalf("nettest: in %s: %v\n%s", name(h), err, out)
	}
	return out
}

// Start starts argv inside h in the background (a server such as
// `iperf3 -s`) and kills it when the test ends.
func Start(t testing.TB, h *Host, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := start(h, cmd); err != nil {
		t.Fatalf("nettest: start %s in %s: %v", strings.Join(argv, " "), name(h), err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// start forks cmd from a thread inside h: a child inherits the namespaces
// of the thread that forks it.
func start(h *Host, cmd *exec.Cmd) error {
	if h == nil {
		return cmd.Start()
	}
	return netconf.InNetNS(h.NetNS, cmd.Start)
}

// StartTCPServer listens on addr ("IP:port", port 0 for any) inside h and
// returns the address it listens on. For each connection the server first
// writes the client's address as it sees it ("IP:port\n", which shows
// whether NAT happened on the way) and then echoes everything it receives.
// It stops when the test ends.
func StartTCPServer(t testing.TB, h *Host, addr string) net.Addr {
	t.Helper()
	var ln net.Listener
	// The listening socket belongs to the namespace it was created in, so
	// only its creation has to run there; accepting can run anywhere.
	err := netconf.InNetNS(h.NetNS, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("nettest: listen on %s in %s: %v", addr, h.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", c.RemoteAddr())
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr()
}

// Dial opens a TCP connection from inside h to addr, closed when the test
// ends. It returns the error instead of failing the test so that tests can
// check that a connection is impossible.
func Dial(t testing.TB, h *Host, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := netconf.InNetNS(h.NetNS, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// PeerAddr dials addr from h, where a StartTCPServer must listen, and returns
// the client address the server saw. timeout bounds the connection attempt.
func PeerAddr(t testing.TB, h *Host, addr string, timeout time.Duration) (string, error) {
	c, err := Dial(t, h, addr, timeout)
	if err != nil {
		return "", err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func name(h *Host) string {
	if h == nil {
		return "test namespace"
	}
	return h.Name
}
