// Package migrate talks to the gateway a chute moves to: it turns a
// target (URL, token, pinned fingerprint) into the chute manager's
// Destination, which streams the chute to the target's import endpoint
// and returns once the target reports it running, and which asks the
// target, for a migration whose answer was lost, whether the chute runs
// there. The chute manager knows nothing of HTTP; the API and the daemon
// join the two.
package migrate

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"paradrop/chute"
	"paradrop/tlscert"
)

// ImportPath is the target's endpoint a migration stream is POSTed to.
const ImportPath = "/api/v1/chutes/import"

// StatusAdmitted is the informational answer the target sends once the
// package passed its admission, before it reads /data: the source stops
// its chute only then.
const StatusAdmitted = http.StatusProcessing

// PackageHeader carries, on an import request, the SHA-256 of the chute's
// package; on the target's StatusHeld answer before the stream, "held":
// it holds that package, and the stream names it instead of carrying it.
const PackageHeader = "X-Paradrop-Package"

// StatusHeld is the informational answer saying the target holds the
// package.
const StatusHeld = http.StatusEarlyHints

// ErrTarget is a target that cannot be used: a bad URL, plain HTTP off
// loopback, HTTPS without a fingerprint to pin.
var ErrTarget = errors.New("migration target")

// Target is the gateway a chute moves to.
type Target struct {
	URL         string `json:"to"`
	Token       string `json:"token"`       // one the target accepts for the chute's owner
	Fingerprint string `json:"fingerprint"` // of the target's certificate; required over HTTPS
}

// maxAnswer bounds the target's error message the source repeats.
const maxAnswer = 512

// Timeout bounds a whole migration's transfer and the target's install.
const Timeout = 10 * time.Minute

// DropWait bounds how long a target that will not keep a chute waits for
// its removal before it answers the source, which then starts its copy.
const DropWait = 30 * time.Second

// Reopen is the Destination of a target the chute manager saved
// (Destination.Saved), for a migration a restart interrupted.
func Reopen(saved json.RawMessage) (chute.Destination, error) {
	var t Target
	if err := json.Unmarshal(saved, &t); err != nil {
		return chute.Destination{}, fmt.Errorf("%w: saved: %v", ErrTarget, err)
	}
	return t.Destination()
}

// client checks t and returns the client that talks to it alone, TLS
// pinned, and its base URL.
func (t Target) client() (*http.Client, *url.URL, error) {
	u, err := url.Parse(t.URL)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, nil, fmt.Errorf("%w: %q: want https://HOST:PORT", ErrTarget, t.URL)
	}
	if t.Token == "" {
		return nil, nil, fmt.Errorf("%w: a token the target accepts is required", ErrTarget)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		// With Expect: 100-continue (below) the stream waits for the
		// target to read it: a target that refuses the token or the
		// request at once answers before any of it is sent, instead of
		// resetting a connection the source is still writing to.
		ExpectContinueTimeout: 10 * time.Second,
	}
	switch u.Scheme {
	case "https":
		if t.Fingerprint == "" {
			return nil, nil, fmt.Errorf("%w: https needs the target's certificate fingerprint (its paradrop info)", ErrTarget)
		}
		fp, err := tlscert.ParseFingerprint(t.Fingerprint)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: fingerprint: %v", ErrTarget, err)
		}
		tr.TLSClientConfig = &tls.Config{
			// The certificate is checked against the pin, not a CA: a
			// gateway's is self-signed.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || tlscert.Of(cs.PeerCertificates[0].Raw) != fp {
					return fmt.Errorf("target's certificate is not the one pinned (%s)", fp)
				}
				return nil
			},
		}
	case "http":
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			return nil, nil, fmt.Errorf("%w: plain http only to a loopback address; use https://%s", ErrTarget, u.Host)
		}
	default:
		return nil, nil, fmt.Errorf("%w: %q: want https://HOST:PORT", ErrTarget, t.URL)
	}
	hc := &http.Client{
		Transport: tr,
		Timeout:   Timeout,
		// The token goes to the target named, nowhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return hc, u, nil
}

// Destination checks t and returns the Destination that streams to it.
func (t Target) Destination() (chute.Destination, error) {
	hc, u, err := t.client()
	if err != nil {
		return chute.Destination{}, err
	}
	base := strings.TrimRight(u.String(), "/")
	saved, err := json.Marshal(t)
	if err != nil {
		return chute.Destination{}, err
	}
	send := func(ctx context.Context, stream io.Reader, x chute.Exchange) error {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			// Called in the order the target answered: StatusHeld comes
			// before the 100 Continue that lets the stream be read.
			Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				switch {
				case code == StatusAdmitted:
					x.Admitted()
				case code == StatusHeld && h.Get(PackageHeader) == "held" && x.Held != nil:
					x.Held()
				}
				return nil
			},
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+ImportPath, stream)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+t.Token)
		req.Header.Set("Content-Type", "application/x-tar")
		req.Header.Set("Expect", "100-continue")
		if x.Package != "" {
			req.Header.Set(PackageHeader, x.Package)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("target %s: %w", u.Host, err)
		}
		defer resp.Body.Close()
		var answer struct {
			Error  string `json:"error"`
			Status string `json:"status"`
		}
		json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&answer)
		if resp.StatusCode != http.StatusOK {
			if answer.Error == "" {
				answer.Error = resp.Status
			}
			// The target's words go into the change's steps: a line.
			if len(answer.Error) > maxAnswer {
				answer.Error = answer.Error[:maxAnswer] + "..."
			}
			return fmt.Errorf("target %s %w: %s", u.Host, chute.ErrRefused, answer.Error)
		}
		return nil
	}
	landed := func(ctx context.Context, name, id string) (bool, error) {
		return t.landed(ctx, hc, base, name, id)
	}
	return chute.Destination{URL: t.URL, Send: send, Landed: landed, Saved: saved}, nil
}

// landed asks the target whether the chute name runs there, brought by
// the migration id and confirmed: yes; not there, or another chute of
// the name: no; anything else (unreachable, the import not yet decided,
// the token refused) is an error, for the source to ask again.
func (t Target) landed(ctx context.Context, hc *http.Client, base, name, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/chutes/"+url.PathEscape(name), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	resp, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("ask %s: %w", base, err)
	}
	defer resp.Body.Close()
	var in struct {
		State       chute.State `json:"state"`
		Migration   string      `json:"migration"`
		Unconfirmed bool        `json:"unconfirmed"`
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return false, nil
	case http.StatusOK:
	default:
		return false, fmt.Errorf("ask %s: %s", base, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&in); err != nil {
		return false, fmt.Errorf("ask %s: %w", base, err)
	}
	switch {
	case in.Migration != id:
		return false, nil
	case in.Unconfirmed:
		return false, fmt.Errorf("ask %s: its import of %s is not decided yet", base, name)
	}
	return true, nil
}
