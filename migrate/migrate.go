// Package migrate talks to the gateway a chute moves to: it turns a
// target (URL, token, pinned fingerprint) into the chute manager's
// Sender, which streams the chute to the target's import endpoint and
// returns once the target reports it running. The chute manager knows
// nothing of HTTP; the API joins the two.
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

// Sender checks t and returns the Sender that streams to it.
func (t Target) Sender() (chute.Sender, error) {
	hc, u, err := t.client()
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(u.String(), "/")
	return func(ctx context.Context, stream io.Reader, admitted func()) error {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
				if code == StatusAdmitted {
					admitted()
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
			return fmt.Errorf("target %s refused: %s", u.Host, answer.Error)
		}
		return nil
	}, nil
}
