package main

// The figure3 testbed: a gateway whose network side lives in a namespace
// of its own, a LAN client namespace behind it, the real chute manager and
// the real API handler in this process. Only TEST-NET addresses inside
// these namespaces are used; the host's interfaces are never touched.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"paradrop/api"
	"paradrop/cgroup"
	"paradrop/chute"
	"paradrop/netconf"
	"paradrop/sdn"
	"paradrop/store"
)

var (
	fig3LANAddr   = netip.MustParsePrefix("198.51.100.1/24")  // the gateway on the LAN
	fig3LANClient = netip.MustParsePrefix("198.51.100.20/24") // the stream's receiver
)

const fig3StreamPort = 5001

// fig3Bed is the running testbed; close undoes everything it made.
type fig3Bed struct {
	dir, gwNS, lanNS string
	cgroupParent     string
	db               *store.DB
	net              *sdn.Network
	m                *chute.Manager
	stopManager      context.CancelFunc
	managerDone      chan struct{}
	srv              *http.Server
	api              *daemon // the client side of the in-process API
	recv             *fig3Receiver
	logFile          *os.File
}

// newFig3Bed builds the testbed under dir; on error, what was built is
// undone.
func newFig3Bed(ctx context.Context, dir, exe string) (_ *fig3Bed, err error) {
	suffix := make([]byte, 4)
	rand.Read(suffix)
	id := hex.EncodeToString(suffix)
	b := &fig3Bed{
		dir:          dir,
		gwNS:         "/run/netns/pdf3gw-" + id,
		lanNS:        "/run/netns/pdf3lan-" + id,
		cgroupParent: "/paradrop-fig3-" + id,
	}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.logFile, err = os.Create(filepath.Join(dir, "gateway.log")); err != nil {
		return nil, fmt.Errorf("gateway log: %w", err)
	}
	logf := log.New(b.logFile, "", log.Lmicroseconds).Printf
	for _, p := range []string{b.gwNS, b.lanNS} {
		if err := netconf.EnsureNetNS(p); err != nil {
			return nil, err
		}
	}
	if err := b.wireLAN(); err != nil {
		return nil, fmt.Errorf("wire the LAN: %w", err)
	}
	openCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	b.net, err = sdn.Open(openCtx, sdn.Config{DataDir: filepath.Join(dir, "sdn"), NetNS: b.gwNS,
		LANPorts: []string{"lan0"}, LANAddr: fig3LANAddr, Logf: logf})
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o711); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if b.db, err = store.Open(filepath.Join(dataDir, "paradrop.db")); err != nil {
		return nil, err
	}
	// The chutes' parent group outweighs the rest of this shared machine,
	// so that the figure shows the two chutes contending with each other
	// rather than with whatever else runs on the pinned CPU.
	if _, err := cgroup.Open(b.cgroupParent, cgroup.Resources{CPUWeight: 10000}); err != nil {
		return nil, err
	}
	b.m, err = chute.NewManager(chute.Config{DataDir: dataDir, DB: b.db, Executable: exe,
		CgroupParent: b.cgroupParent, Logf: logf, Network: b.net, Subnet: sdn.DefaultSubnet})
	if err != nil {
		return nil, err
	}
	mctx, stop := context.WithCancel(context.Background())
	b.stopManager, b.managerDone = stop, make(chan struct{})
	go func() { b.m.Run(mctx); close(b.managerDone) }()
	if err := b.serveAPI(dataDir, logf); err != nil {
		return nil, err
	}
	b.recv, err = newFig3Receiver(b.lanNS, netip.AddrPortFrom(fig3LANClient.Addr(), fig3StreamPort))
	return b, err
}

// wireLAN joins the LAN client to the gateway with a veth pair whose ends
// are born in their namespaces: lan0 (a port of the gateway's bridge) and
// the client's eth0, routed through the gateway.
func (b *fig3Bed) wireLAN() error {
	gw, err := netns.GetFromPath(b.gwNS)
	if err != nil {
		return err
	}
	defer gw.Close()
	lan, err := netns.GetFromPath(b.lanNS)
	if err != nil {
		return err
	}
	defer lan.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0", Namespace: netlink.NsFd(gw)},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(lan)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	// The OVS userspace datapath needs checksums done in software.
	if err := netconf.DisableTxOffload("lan0", b.gwNS); err != nil {
		return err
	}
	if err := netconf.DisableTxOffload("eth0", b.lanNS); err != nil {
		return err
	}
	if err := linkUp(gw, "lan0", netip.Prefix{}); err != nil {
		return err
	}
	if err := linkUp(lan, "eth0", fig3LANClient); err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(lan)
	if err != nil {
		return err
	}
	defer h.Close()
	gwIP := fig3LANAddr.Addr().AsSlice()
	if err := h.RouteAdd(&netlink.Route{Gw: gwIP}); err != nil {
		return fmt.Errorf("LAN client's default route: %w", err)
	}
	return nil
}

// linkUp gives ifname in ns its address (if valid) and brings it up.
func linkUp(ns netns.NsHandle, ifname string, addr netip.Prefix) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return err
	}
	if addr.IsValid() {
		ipn := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
			return fmt.Errorf("address %s on %s: %w", addr, ifname, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s up: %w", ifname, err)
	}
	return nil
}

// serveAPI serves the daemon's real API handler over the manager on
// loopback, with the operator token, and points b.api at it.
func (b *fig3Bed) serveAPI(dataDir string, logf func(string, ...any)) error {
	tokenPath, _, err := api.EnsureOperatorToken(b.db, dataDir)
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(tokenPath)
	if err != nil {
		return fmt.Errorf("operator token: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	b.srv = &http.Server{Handler: api.New(api.Config{Chutes: b.m, DB: b.db, Version: "bench", Started: time.Now(), Logf: logf})}
	go b.srv.Serve(ln)
	b.api = &daemon{base: "http://" + ln.Addr().String() + "/api/v1", token: strings.TrimSpace(string(tok)),
		client: &http.Client{Timeout: 2 * time.Minute}}
	return nil
}

// dataPath is a file in a chute's /data, seen from the host.
func (b *fig3Bed) dataPath(chuteName, file string) string {
	return filepath.Join(b.dir, "data", "chutes", chuteName, "data", file)
}

// close removes the chutes and everything the testbed made.
func (b *fig3Bed) close() error {
	var errs []error
	if b.m != nil {
		for _, in := range b.m.List() {
			errs = append(errs, b.remove(in.Name))
		}
	}
	if b.srv != nil {
		b.srv.Close()
	}
	if b.stopManager != nil {
		b.stopManager()
		<-b.managerDone
	}
	if b.db != nil {
		errs = append(errs, b.db.Close())
	}
	if b.recv != nil {
		b.recv.close()
	}
	if b.net != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, b.net.Close(ctx))
		cancel()
	}
	for _, p := range []string{b.lanNS, b.gwNS} {
		errs = append(errs, netconf.DeleteNetNS(p))
	}
	if g, err := cgroup.Load(b.cgroupParent); err == nil {
		errs = append(errs, g.Delete())
	}
	if b.logFile != nil {
		b.logFile.Close()
	}
	return errors.Join(errs...)
}

// remove removes a chute through the manager and waits for it.
func (b *fig3Bed) remove(name string) error {
	ch, err := b.m.Remove(name, false, "")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := b.m.WaitChange(ctx, ch.ID)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if c.State != chute.ChangeDone {
		return fmt.Errorf("remove %s: %s", name, c.Error)
	}
	return nil
}

// fig3Receiver is the LAN client: it counts the stream's bytes per window
// of fig3Window by the kernel's receive timestamps, so that a late reader
// (the bench is not pinned and the machine is shared) still files each
// datagram under the time it arrived.
type fig3Receiver struct {
	conn *net.UDPConn
	done chan struct{}

	mu    sync.Mutex
	base  time.Time
	bytes []int64 // per window since base
}

const fig3Window = 100 * time.Millisecond

func newFig3Receiver(lanNS string, addr netip.AddrPort) (*fig3Receiver, error) {
	var conn *net.UDPConn
	// The socket belongs to the namespace it is created in.
	err := netconf.InNetNS(lanNS, func() error {
		var err error
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("LAN client: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("LAN client: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20))
	})
	if err = errors.Join(err, serr); err != nil {
		conn.Close()
		return nil, fmt.Errorf("LAN client: socket options: %w", err)
	}
	r := &fig3Receiver{conn: conn, done: make(chan struct{}), base: time.Now()}
	go r.read()
	return r, nil
}

func (r *fig3Receiver) read() {
	defer close(r.done)
	buf, oob := make([]byte, 65536), make([]byte, 128)
	for {
		n, oobn, _, _, err := r.conn.ReadMsgUDP(buf, oob)
		if err != nil {
			return // closed
		}
		at := time.Now()
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
					sec, nsec := binary.NativeEndian.Uint64(m.Data), binary.NativeEndian.Uint64(m.Data[8:])
					at = time.Unix(int64(sec), int64(nsec))
				}
			}
		}
		r.mu.Lock()
		if k := int(at.Sub(r.base) / fig3Window); k >= 0 {
			for len(r.bytes) <= k {
				r.bytes = append(r.bytes, 0)
			}
			r.bytes[k] += int64(n)
		}
		r.mu.Unlock()
	}
}

// windows returns the bytes received in n windows from t0, which must be
// base plus a whole number of windows.
func (r *fig3Receiver) windows(t0 time.Time, n int) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := int(t0.Sub(r.base) / fig3Window)
	out := make([]int64, n)
	for i := range out {
		if k := first + i; k >= 0 && k < len(r.bytes) {
			out[i] = r.bytes[k]
		}
	}
	return out
}

// total is the bytes received so far.
func (r *fig3Receiver) total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s int64
	for _, b := range r.bytes {
		s += b
	}
	return s
}

// nextWindow is the first window boundary after t.
func (r *fig3Receiver) nextWindow(t time.Time) time.Time {
	return r.base.Add((t.Sub(r.base)/fig3Window + 1) * fig3Window)
}

func (r *fig3Receiver) close() {
	r.conn.Close()
	<-r.done
}
