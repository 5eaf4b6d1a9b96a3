package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"paradrop/chute"
)

// A peer is another gateway this one trusts with its operator's token
// (serve --follow-peer): follow-me asks it which LAN devices are active
// there, and for a short-lived token of a chute's developer, so that the
// chute moves there as that developer's, within its quota there, and only
// if it is a developer there.

// ErrNotDeveloper is a chute's developer that the peer does not know.
var ErrNotDeveloper = errors.New("not a developer on the peer")

// maxHostsAnswer bounds a peer's list of LAN hosts (at most 1024 of them).
const maxHostsAnswer = 1 << 20

// ActiveHosts returns the MACs of the LAN devices active on the target;
// t's token must be its operator's.
func (t Target) ActiveHosts(ctx context.Context) ([]string, error) {
	var answer struct {
		Hosts []chute.Host `json:"hosts"`
	}
	if err := t.call(ctx, http.MethodGet, "/api/v1/hosts", nil, maxHostsAnswer, &answer); err != nil {
		return nil, err
	}
	var macs []string
	for _, h := range answer.Hosts {
		if h.Active {
			macs = append(macs, h.MAC)
		}
	}
	return macs, nil
}

// ForDeveloper returns t with a new token of developer dev on the target,
// valid for ttl, and the function that revokes it; ErrNotDeveloper when
// dev is none there. t's token must be the target's operator's.
func (t Target) ForDeveloper(ctx context.Context, dev string, ttl time.Duration) (Target, func(context.Context) error, error) {
	expires := time.Now().Add(ttl).UTC()
	body, _ := json.Marshal(map[string]time.Time{"expires": expires})
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	path := "/api/v1/developers/" + url.PathEscape(dev) + "/tokens"
	err := t.call(ctx, http.MethodPost, path, body, 64<<10, &tok)
	var se statusError
	switch {
	case errors.As(err, &se) && se.code == http.StatusNotFound:
		return Target{}, nil, fmt.Errorf("%s: %w", dev, ErrNotDeveloper)
	case err != nil:
		return Target{}, nil, err
	case tok.Token == "" || tok.ID == "":
		return Target{}, nil, fmt.Errorf("target %s: no token in its answer", t.URL)
	}
	revoke := func(ctx context.Context) error {
		return t.call(ctx, http.MethodDelete, path+"/"+url.PathEscape(tok.ID), nil, 64<<10, nil)
	}
	dt := t
	dt.Token = tok.Token
	return dt, revoke, nil
}

// Migrate asks the gateway t (with its operator's token) to move its
// chute name to gateway to, and returns once the move has ended: nil when
// the chute runs there. This is the fleet's follow-me: the controller
// holds the gateways' tokens and the gateways move the chute themselves.
func (t Target) Migrate(ctx context.Context, name string, to Target) error {
	body, _ := json.Marshal(to)
	var change struct {
		State string `json:"state"`
		Error string `json:"error"`
	}
	path := "/api/v1/chutes/" + url.PathEscape(name) + "/migrate?wait=1"
	if err := t.call(ctx, http.MethodPost, path, body, 1<<20, &change); err != nil {
		return err
	}
	if change.State != "done" {
		return fmt.Errorf("migration of %s to %s: %s %s", name, to.URL, change.State, change.Error)
	}
	return nil
}

// statusError is a target's refusal.
type statusError struct {
	code int
	msg  string
}

func (e statusError) Error() string { return e.msg }

// call sends a JSON request to the target's API and decodes its answer,
// at most max bytes of it, into out (nil: ignored).
func (t Target) call(ctx context.Context, method, path string, body []byte, max int64, out any) error {
	hc, u, err := t.client()
	if err != nil {
		return err
	}
	// A client per call: its connection must not stay open, one more
	// every poll, until the peer's per-client limit refuses them all.
	defer hc.CloseIdleConnections()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(u.String(), "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("target %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fmt.Errorf("target %s: %w", u.Host, err)
	}
	if int64(len(data)) > max {
		return fmt.Errorf("target %s: %s %s: answer larger than %d bytes", u.Host, method, path, max)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		if len(e.Error) > maxAnswer {
			e.Error = e.Error[:maxAnswer] + "..."
		}
		return statusError{resp.StatusCode, fmt.Sprintf("target %s refused %s %s: %s", u.Host, method, path, e.Error)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("target %s: %s %s: %w", u.Host, method, path, err)
	}
	return nil
}
