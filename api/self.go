package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"paradrop/chute"
	"paradrop/chute/manifest"
)

// selfInfo is what GET /api/v1/self tells a chute of itself: what it needs
// to run and comply with its policy, named field by field so that nothing
// of the host (its pid there, paths, cgroup, owner, signer, the manifest as
// the gateway keeps it, errors that name host files) reaches it by way of
// a field added to chute.Info.
type selfInfo struct {
	Name      string      `json:"name"`
	Version   string      `json:"version"`
	State     chute.State `json:"state"`
	StartedAt *time.Time  `json:"started_at,omitempty"`
	Restarts  int         `json:"restarts"`
	// IP is its address on the chute network, if it has one.
	IP         string `json:"ip,omitempty"`
	IPv6       string `json:"ipv6,omitempty"`
	IPv6Global string `json:"ipv6_global,omitempty"`
	// Resources are those it is held to now: its manifest's under the
	// operator's current policy.
	Resources manifest.Resources `json:"resources"`
	// PolicyRequest is a change of them waiting for the chute to comply
	// (and ack) before its deadline, as in /paradrop/policy.json.
	PolicyRequest *chute.PolicyRequest `json:"policy_request,omitempty"`
	// Usage is its latest usage sample, if it has one yet.
	Usage *selfUsage `json:"usage,omitempty"`
}

// selfUsage is a chute's own usage sample, without what it would tell of
// the gateway (its share of the whole gateway's CPU).
type selfUsage struct {
	T        int64   `json:"t"`
	CPU      float64 `json:"cpu"` // % of one core
	Mem      uint64  `json:"mem"`
	MemLimit uint64  `json:"mem_limit"`
	Pids     uint64  `json:"pids"`
	Disk     uint64  `json:"disk"`
	RxBps    float64 `json:"rx_bps"`
	TxBps    float64 `json:"tx_bps"`
	OOMKills uint64  `json:"oom_kills"`
}

// selfUsageWindow is how far back the latest sample is looked for.
const selfUsageWindow = time.Minute

// self answers a chute about itself.
func (s *server) self(w http.ResponseWriter, r *http.Request) {
	name := identityOf(r).chute
	info, err := s.cfg.Chutes.Get(name)
	if err != nil {
		fail(w, err)
		return
	}
	res, err := s.cfg.Chutes.Resources(name)
	if err != nil {
		fail(w, err)
		return
	}
	out := selfInfo{
		Name: info.Name, Version: info.Version, State: info.State, StartedAt: info.StartedAt,
		Restarts: info.Restarts, IP: info.IP, IPv6: info.IPv6, IPv6Global: info.IPv6Global, Resources: res,
	}
	if req, ok := s.cfg.Chutes.PendingPolicy(name); ok {
		out.PolicyRequest = &req
	}
	series, err := s.cfg.Chutes.Usage(selfUsageWindow)
	if err != nil {
		fail(w, err)
		return
	}
	for i := len(series.Samples) - 1; i >= 0; i-- {
		if c, ok := series.Samples[i].Chutes[name]; ok {
			out.Usage = &selfUsage{
				T: series.Samples[i].T, CPU: c.CPU, Mem: c.Mem, MemLimit: c.MemLimit, Pids: c.Pids,
				Disk: c.Disk, RxBps: c.RxBps, TxBps: c.TxBps, OOMKills: c.OOMKills,
			}
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// policyAck is the body of POST /api/v1/self/policy/ack; empty, it
// acknowledges whatever request waits.
type policyAck struct {
	// Deadline names the request acknowledged, as policy.json and
	// policy_request give it: an ack of an older one is refused (409).
	Deadline *time.Time `json:"deadline"`
}

// maxAckBody is the largest ack body read.
const maxAckBody = 4 << 10

// ackPolicy is a chute's word that it complies with the resources change
// waiting for it: the gateway judges it at once instead of at the
// deadline. 409 when no such change waits.
func (s *server) ackPolicy(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxAckBody))
	if err != nil {
		badBody(w, fmt.Errorf("ack: %w", err))
		return
	}
	var ack policyAck
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeObject(bytes.NewReader(raw), maxAckBody, "ack", &ack); err != nil {
			badBody(w, err)
			return
		}
	}
	var deadline time.Time
	if ack.Deadline != nil {
		if ack.Deadline.IsZero() {
			writeError(w, http.StatusBadRequest, "ack: deadline: zero time")
			return
		}
		deadline = *ack.Deadline
	}
	req, err := s.cfg.Chutes.AckPolicy(identityOf(r).chute, deadline)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Acknowledged chute.PolicyRequest `json:"acknowledged"`
	}{req})
}

// ackHandover is a chute's word, while it is told it moves, that it has
// saved what it wants kept: its grace ends at once. 409 when it is not
// being told.
func (s *server) ackHandover(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(nil, r.Body, maxAckBody)); err != nil {
		badBody(w, fmt.Errorf("ack: %w", err))
		return
	}
	if err := s.cfg.Chutes.AckHandover(identityOf(r).chute); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Acknowledged bool `json:"acknowledged"`
	}{true})
}

// chuteReach refuses a chute's request for any route but its own info: 403,
// and 404 for a route naming another chute, which it may not learn exists
// (ownChute answers those). Other identities pass.
func chuteReach(id identity, sc scope) (ok bool, code int, msg string) {
	switch {
	case id.chute == "" && sc == scopeSelf:
		return false, http.StatusForbidden, "only a chute may use /api/v1/self, about itself"
	case id.chute == "", sc == scopeSelf, sc == scopeChute:
		return true, 0, ""
	}
	return false, http.StatusForbidden, chuteOnlySelf(id.chute)
}

// chuteOnlySelf is why a chute is refused a route.
func chuteOnlySelf(name string) string {
	return fmt.Sprintf("chute %s may only GET /api/v1/self and POST /api/v1/self/policy/ack or /api/v1/self/migrate/ack", name)
}

// ForChute serves h to the running chute name alone, as on its own socket:
// a request without that chute's token is refused before h sees it.
func ForChute(h http.Handler, name string, chutes Chutes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token, ok := bearerToken(r); ok {
			if c, ok := chutes.ChuteOfToken(token); ok && c == name {
				h.ServeHTTP(w, r)
				return
			}
		}
		refuseChute(w, "this socket serves chute "+name+" with its token (/paradrop/token)")
	})
}

// ForChuteNetwork serves h to the chutes over the chute network: a request
// must carry a running chute's token and come from that chute's own
// address. Anything else, the operator's and developers' tokens and
// password logins included, is refused before h sees it.
func ForChuteNetwork(h http.Handler, chutes Chutes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		name, isChute := chutes.ChuteOfToken(token)
		if !ok || !isChute {
			refuseChute(w, "this listener serves chutes with their own token (/paradrop/token)")
			return
		}
		// A token taken from a chute is no use from anywhere else: only
		// from its own addresses (the switch lets no chute send from
		// another's).
		from, err := netip.ParseAddrPort(r.RemoteAddr)
		info, gerr := chutes.Get(name)
		if err != nil || gerr != nil || !slices.ContainsFunc([]string{info.IP, info.IPv6, info.IPv6Global}, func(own string) bool {
			a, err := netip.ParseAddr(own)
			return err == nil && from.Addr().Unmap() == a
		}) {
			refuseChute(w, "a chute's token is accepted from that chute's own address only")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// refuseChute answers 401 a request the chute listeners do not serve.
func refuseChute(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="paradrop"`)
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusUnauthorized, msg)
}
