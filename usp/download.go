package usp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"paradrop/chute/signature"
)

// Download bounds the fetch of a package a controller names.
type Download struct {
	MaxSize int64         // bytes; default 256 MiB
	Timeout time.Duration // for the package and its signature; default 10 minutes
	// Client fetches for the operator's controllers (default: one of its
	// own); Public for developers' (default: one that connects to public
	// addresses only, so that a developer cannot have the gateway reach
	// itself or the home's LAN).
	Client, Public *http.Client
}

func (d Download) withDefaults() Download {
	if d.MaxSize <= 0 {
		d.MaxSize = 256 << 20
	}
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Minute
	}
	if d.Client == nil {
		d.Client = &http.Client{}
	}
	if d.Public == nil {
		dialer := &net.Dialer{Timeout: 30 * time.Second, Control: publicOnly}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil // the proxy would connect for us, anywhere
		tr.DialContext = dialer.DialContext
		d.Public = &http.Client{Transport: tr}
	}
	return d
}

// errPrivate is an address a developer's download may not reach.
var errPrivate = errors.New("not a public address")

// publicOnly refuses a connection to what is not a public unicast address:
// checked on the address dialled, after name resolution, so that a name
// resolving to the LAN is refused too.
func publicOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || !publicPrefix(ip) {
		return fmt.Errorf("%w: %s", errPrivate, ip)
	}
	return nil
}

// nonPublic are ranges IsPrivate does not cover that no package is
// served from: shared address space (RFC 6598), benchmarking, and the
// TEST-NETs.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

func publicPrefix(ip netip.Addr) bool {
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// client is the HTTP client of a controller's downloads.
func (d Download) client(developer bool) *http.Client {
	if developer {
		return d.Public
	}
	return d.Client
}

// errDownload is a package or signature that could not be fetched.
var errDownload = errors.New("download failed")

// maxURL bounds a URL a controller names.
const maxURL = 2048

// checkURL refuses what is not an http(s) URL: a controller must not make
// the gateway read its own files.
func checkURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || len(s) > maxURL || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: URL %.100q: want http:// or https://, at most %d bytes", errArgs, s, maxURL)
	}
	return u, nil
}

// open starts the download of u: its body, bounded by max bytes. A 404 is
// reported as errNotThere.
func (d Download) open(ctx context.Context, c *http.Client, u string, max int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errDownload, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errDownload, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s: %w", errDownload, u, errNotThere)
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s: %s", errDownload, u, resp.Status)
	case resp.ContentLength > max:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s: %d bytes, more than %d", errDownload, u, resp.ContentLength, max)
	}
	return struct {
		io.Reader
		io.Closer
	}{&capped{r: resp.Body, left: max, url: u}, resp.Body}, nil
}

var errNotThere = errors.New("not found")

// capped fails a body longer than its bound, rather than cut it short.
type capped struct {
	r    io.Reader
	left int64
	url  string
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, fmt.Errorf("%w: %s: longer than its limit", errDownload, c.url)
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, fmt.Errorf("%w: %s: longer than its limit", errDownload, c.url)
	}
	return n, err
}

// signature fetches the package's signature: from sigURL when the
// controller names one (then it must be there), else from the package's
// URL with .minisig added to its path, where none is no signature.
func (d Download) signature(ctx context.Context, c *http.Client, pkg *url.URL, sigURL string) ([]byte, error) {
	explicit := sigURL != ""
	if !explicit {
		u := *pkg
		u.Path += ".minisig"
		u.RawPath = ""
		sigURL = u.String()
	} else if _, err := checkURL(sigURL); err != nil {
		return nil, err
	}
	body, err := d.open(ctx, c, sigURL, signature.MaxSize)
	if errors.Is(err, errNotThere) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return b, nil
}
