// Package api owns the daemon's HTTP interface: a JSON REST API over the
// chute manager, authenticated with the operator's bearer token or a
// developer's (package tenant).
//
// Scope (scope.go): the operator may do everything. A developer installs
// chutes it then owns, and reaches only its own chutes and their changes:
// any other answers exactly as one that does not exist (404); GET chutes,
// changes and info show only its own. The operator's routes (developers,
// password, flows of the gateway, gateway usage, metrics) answer it 403.
// A running chute, with the token of its current run (self.go), may only
// GET /api/v1/self and acknowledge a policy request or its handover: 403 elsewhere, 404 on a route naming another chute;
// ForChute serves its own socket, /paradrop/api.sock, to that token alone;
// ForChuteNetwork serves the chutes' listener on their network to chute
// tokens alone, each from its own chute's address.
// Every change records its actor ("operator", "developer:NAME"); every
// refusal of a developer or a chute is logged with it.
//
// Every response is JSON except a chute's logs (text/plain). Errors are
// always {"error": "..."} with a 4xx status that says whose fault it is:
// 400 bad request, 401 no or wrong token (or one revoked or expired while
// the request ran: a developer's or a chute's requests under way end with
// its token, live.go), 403 not for this identity or beyond its developer's
// quota, 404 no such chute/change/route, 405 wrong method, 408 a body sent
// too slowly, 409 the chute exists or is busy, 413 package too large,
// 422 a waited change that failed, 429 too many attempts or uploads from
// this client, 503 too many uploads in all.
// A 500 is the daemon's own failure.
//
// Endpoints (all but health need "Authorization: Bearer TOKEN"):
//
//	GET    /api/v1/health                     {"status":"ok"}
//	GET    /api/v1/info                       version, uptime, kernel, cgroup mode, TLS fingerprint, LAN address
//	GET    /api/v1/chutes                     {"chutes":[...]}
//	POST   /api/v1/chutes                     body: package; installs it
//	GET    /api/v1/chutes/NAME
//	PUT    /api/v1/chutes/NAME[?force=1]      body: package; updates to it
//	DELETE /api/v1/chutes/NAME[?keep_data=1]
//	POST   /api/v1/chutes/NAME/start|stop|restart
//	GET    /api/v1/chutes/NAME/logs[?tail=N][&follow=1]   text/plain
//	POST   /api/v1/chutes/NAME/migrate[?wait=1]  {"to","token","fingerprint"}: moves it to that gateway (migrate.go)
//	POST   /api/v1/chutes/import              body: a migration stream (chute/transfer); 102 once its package is
//	                                          admitted, 200 and the install change once the chute runs here
//	GET    /api/v1/self                       a chute's own info, resources, policy request, usage; its token only
//	POST   /api/v1/self/policy/ack            [{"deadline"}]: the chute complies with the request waiting (409 if none); its token only
//	POST   /api/v1/self/migrate/ack           the chute told it moves has saved what it wants kept: its grace ends (409 if not told); its token only
//	GET    /api/v1/changes                    {"changes":[...]}
//	GET    /api/v1/changes/ID
//	POST   /api/v1/login                      {"password"} -> {"token","expires"}; no token needed
//	PUT    /api/v1/password                   {"password"}; operator token only
//	GET    /api/v1/gateway/usage[?window=S]   gateway and per-chute usage (usage.go)
//	GET    /api/v1/chutes/NAME/usage[?window=S]
//	GET    /api/v1/chutes/NAME/resources      the limits in force
//	PUT    /api/v1/chutes/NAME/resources      body: JSON policy; a two-phase change
//	GET    /api/v1/flows                      {"rules":[...]}: the switch's rules, readable, with counters
//	GET    /api/v1/chutes/NAME/flows          the rules of one chute (404 when networking is off)
//	GET    /metrics                           Prometheus; no token with serve --metrics-open
//	GET    /api/v1/whoami                     the caller's identity; a developer's own quota and usage
//	.../developers...                          the operator's; see developers.go
//
// A login's session token (see login.go) works like the operator token for
// 12 hours, except that it cannot set the password.
//
// A change-making call answers 202 {"change_id":N,"chute":NAME} at once,
// or with ?wait=1, the change when it has ended: 200 if done, 422 if it
// failed (its "error" says why).
// Unknown query parameters are refused rather than ignored.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"paradrop/chute"
	"paradrop/chute/manifest"
	"paradrop/chute/signature"
	"paradrop/migrate"
	"paradrop/store"
	"paradrop/tenant"
	"paradrop/usage"
)

// Chutes is what the API needs of the chute manager; *chute.Manager
// satisfies it.
type Chutes interface {
	List() []chute.Info
	Get(name string) (chute.Info, error)
	Install(ctx context.Context, pkg io.Reader, o chute.Origin) (chute.Change, error)
	OwnerOf(name string) (chute.Owner, error)
	Update(ctx context.Context, name string, pkg io.Reader, force bool, o chute.Origin) (chute.Change, error)
	Remove(name string, keepData bool, actor chute.Actor) (chute.Change, error)
	Start(name string, actor chute.Actor) (chute.Change, error)
	Stop(name string, actor chute.Actor) (chute.Change, error)
	Restart(name string, actor chute.Actor) (chute.Change, error)
	Changes() []chute.Change
	Change(id uint64) (chute.Change, error)
	WaitChange(ctx context.Context, id uint64) (chute.Change, error)
	// Logs, Update and the calls taking an actor refuse a chute the actor
	// may not act on (chute.Actor.MayAct) as one that does not exist.
	Logs(ctx context.Context, name string, actor chute.Actor, tail int, follow bool, w io.Writer) error
	Usage(window time.Duration) (usage.Series, error)
	Resources(name string) (manifest.Resources, error)
	SetResources(name string, req chute.ResourceRequest, actor chute.Actor) (chute.Change, error)
	// ChuteOfToken is the running chute whose token is token.
	ChuteOfToken(token string) (string, bool)
	// HeldBy is what the chutes of a developer hold against its quota.
	HeldBy(owner chute.Owner) chute.Quota
	// PendingPolicy is the resources change waiting for the chute to
	// comply; AckPolicy is the chute's word that it does (chute/ack.go).
	PendingPolicy(name string) (chute.PolicyRequest, bool)
	AckPolicy(name string, deadline time.Time) (chute.PolicyRequest, error)
	// AckHandover is the word of a chute told it moves that it is
	// ready: its grace ends (chute/migrate.go).
	AckHandover(name string) error
	// DropKept deletes the data kept by the removed chutes of a developer
	// being deleted, returning their names.
	DropKept(owner chute.Owner) ([]string, error)
	// Migrate moves a chute to another gateway; Import installs one
	// moved here, kept for good once ConfirmImport has been told (just
	// before the source is) (chute/migrate.go, chute/migrate_phase.go).
	Migrate(name string, actor chute.Actor, from string, to chute.Destination) (chute.Change, error)
	Import(ctx context.Context, stream io.Reader, o chute.Origin, admitted func()) (chute.Change, error)
	ConfirmImport(name, id string) error
	// HoldsPackage is whether a chute of owner that left holds the
	// package of that SHA-256 here (chute/held.go).
	HoldsPackage(owner chute.Owner, sum string) bool
	// Hosts are the LAN devices the gateway sees (chute/hosts.go).
	Hosts() []chute.Host
}

var _ Chutes = (*chute.Manager)(nil)

// Config is what the API needs from the daemon.
type Config struct {
	Chutes    Chutes
	DB        *store.DB // holds the operator token's hash
	Version   string
	Started   time.Time
	MaxUpload int64 // bytes of a request body; larger ones get 413
	Logf      func(format string, args ...any)
	// Network serves the flow endpoints; nil answers them 404
	// "networking disabled".
	Network Network
	// Metrics is served on /metrics if set; MetricsOpen serves it without
	// a token, for a Prometheus on a trusted network.
	Metrics     func(*metrics.Set)
	MetricsOpen bool
	// TLSFingerprint is that of the HTTPS listeners' certificate (OpenSSL's
	// form), shown by GET /api/v1/info; empty when none serves HTTPS.
	TLSFingerprint string
	// Limits caps concurrent uploads (MaxUploads, MaxUploadsPerClient); the
	// rest of it applies to the Server.
	Limits Limits
	// Signing is the rule for the signatures of packages the operator
	// uploads (upload_sealed.go).
	Signing Signing
	// LANAddr is the gateway's address on the LAN, where LAN users reach
	// chutes' exposed ports (GET /api/v1/info, for the UI's links to their
	// pages); invalid for none.
	LANAddr netip.Addr
}

const healthPattern = "GET /api/v1/health"

type server struct {
	cfg     Config
	mux     *http.ServeMux
	logins  *logins  // password sessions and the login rate limit (login.go)
	uploads *uploads // concurrent package uploads (uploads.go)
	tenants *tenant.Registry
	scopes  map[string]scope // by mux pattern (scope.go)
	live    live             // requests under way of developers and chutes (live.go)
}

// New returns the API handler.
func New(cfg Config) http.Handler {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	s := &server{
		cfg: cfg, mux: http.NewServeMux(), logins: newLogins(), uploads: newUploads(cfg.Limits.withDefaults()),
		scopes: map[string]scope{},
	}
	if cfg.DB != nil {
		s.tenants = tenant.New(cfg.DB)
	}
	s.handle(healthPattern, scopeOpen, s.health)
	s.handle("GET /api/v1/info", scopeAny, s.info)
	s.handle("GET /api/v1/chutes", scopeAny, s.listChutes)
	s.handle("POST /api/v1/chutes", scopeAny, s.install)
	s.handle("GET /api/v1/chutes/{name}", scopeChute, s.getChute)
	s.handle("PUT /api/v1/chutes/{name}", scopeChute, s.update)
	s.handle("DELETE /api/v1/chutes/{name}", scopeChute, s.remove)
	s.handle("POST /api/v1/chutes/{name}/start", scopeChute, s.action(Chutes.Start))
	s.handle("POST /api/v1/chutes/{name}/stop", scopeChute, s.action(Chutes.Stop))
	s.handle("POST /api/v1/chutes/{name}/restart", scopeChute, s.action(Chutes.Restart))
	s.handle("GET /api/v1/chutes/{name}/logs", scopeChute, s.logs)
	s.handle("POST /api/v1/chutes/{name}/migrate", scopeChute, s.migrate)
	s.handle("POST "+migrate.ImportPath, scopeAny, s.importChute)
	s.handle("GET /api/v1/self", scopeSelf, s.self)
	s.handle("POST /api/v1/self/policy/ack", scopeSelf, s.ackPolicy)
	s.handle("POST /api/v1/self/migrate/ack", scopeSelf, s.ackHandover)
	s.handle("GET /api/v1/changes", scopeAny, s.listChanges)
	s.handle("GET /api/v1/changes/{id}", scopeAny, s.getChange)
	s.routeLogin()
	s.routeFlows()
	s.routeHosts()
	s.routeDevelopers()
	s.handle("GET /api/v1/gateway/usage", scopeOperator, s.gatewayUsage)
	s.handle("GET /api/v1/chutes/{name}/usage", scopeChute, s.chuteUsage)
	s.handle("GET /api/v1/chutes/{name}/resources", scopeChute, s.getResources)
	s.handle("PUT /api/v1/chutes/{name}/resources", scopeChute, s.setResources)
	if cfg.Metrics != nil {
		s.handle(metricsPattern, scopeOperator, metricsHandler(cfg.Metrics, cfg.Version, cfg.Started).ServeHTTP)
	}
	return s
}

// ServeHTTP logs the request, checks the token on everything but health,
// and turns the mux's own plain-text 404/405 into JSON errors.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	var id identity
	// Until its token says otherwise, a caller is nobody known.
	who := "anonymous"
	defer func() {
		s.cfg.Logf("%s %q %d %s", r.Method, r.URL.Path, sw.status(), time.Since(start).Round(time.Microsecond))
		if who != "operator" && sw.status() >= 400 {
			// The audit of refusals of all but the operator: who, and
			// why.
			s.cfg.Logf("refused %s: %s %q: %d %s", who, r.Method, r.URL.Path, sw.status(), sw.reason)
		}
	}()

	h, pattern := s.mux.Handler(r)
	sc := s.scopes[pattern]
	open := sc == scopeOpen || pattern == metricsPattern && s.cfg.MetricsOpen
	if !open {
		token, _ := bearerToken(r)
		var expires *time.Time
		var err error
		id, expires, err = s.authorize(r)
		if err != nil {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="paradrop"`)
			if r.ContentLength != 0 {
				// Do not read a stranger's body to keep the connection.
				sw.Header().Set("Connection", "close")
			}
			writeError(sw, http.StatusUnauthorized, err.Error())
			return
		}
		who = id.String()
		if ok, code, msg := chuteReach(id, sc); !ok {
			if r.ContentLength != 0 {
				sw.Header().Set("Connection", "close")
			}
			writeError(sw, code, msg)
			return
		}
		// A route without a scope is the operator's: a route added
		// carelessly fails closed.
		if id.developer != "" && pattern != "" && sc != scopeAny && sc != scopeChute {
			if r.ContentLength != 0 {
				sw.Header().Set("Connection", "close")
			}
			writeError(sw, http.StatusForbidden, "only the operator may do this")
			return
		}
		r = withIdentity(r, id)
		if !id.operator() {
			// What a developer or a chute has under way ends with
			// its token.
			var untrack func()
			r, untrack = s.track(sw, r, token, id, expires)
			defer untrack()
		}
	}
	if pattern == "" {
		// No route: let the mux decide between 404 and 405 (and set Allow),
		// but answer in JSON like every other error.
		c := &codeCapture{header: sw.Header()}
		h.ServeHTTP(c, r)
		code := c.code
		if code == 0 || code < 400 {
			code = http.StatusNotFound
		}
		msg := "no such endpoint"
		if code == http.StatusMethodNotAllowed {
			msg = r.Method + " not allowed here"
		}
		sw.Header().Del("Content-Type")
		sw.Header().Del("X-Content-Type-Options")
		writeError(sw, code, msg)
		return
	}
	if r.Body != nil && s.cfg.MaxUpload > 0 {
		if r.ContentLength > s.cfg.MaxUpload {
			writeError(sw, http.StatusRequestEntityTooLarge, tooLarge(s.cfg.MaxUpload))
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, s.cfg.MaxUpload)
	}
	s.mux.ServeHTTP(sw, r)
}

// statusWriter remembers the status for the request log. Unwrap lets
// http.ResponseController reach the real writer's Flush.
type statusWriter struct {
	http.ResponseWriter
	code   int
	reason string // the error answered, for the log
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 { // a 1xx is not the answer
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// codeCapture records the status the mux's fallback handler picks and
// drops its plain-text body.
type codeCapture struct {
	header http.Header
	code   int
}

func (c *codeCapture) Header() http.Header         { return c.header }
func (c *codeCapture) Write(p []byte) (int, error) { return len(p), nil }
func (c *codeCapture) WriteHeader(code int)        { c.code = code }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// The status is sent; an encode error here is a client gone away.
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	if sw, ok := w.(*statusWriter); ok {
		sw.reason = msg
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

// fail answers with the status that err's kind calls for.
func fail(w http.ResponseWriter, err error) {
	writeError(w, statusOf(err), err.Error())
}

func statusOf(err error) int {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, chute.ErrNotFound), errors.Is(err, tenant.ErrNotFound), errors.Is(err, tenant.ErrNoToken):
		return http.StatusNotFound
	case errors.Is(err, chute.ErrExists), errors.Is(err, chute.ErrConflict), errors.Is(err, tenant.ErrExists):
		return http.StatusConflict
	case errors.Is(err, chute.ErrQuota):
		return http.StatusForbidden
	case errors.Is(err, chute.ErrInvalid), errors.Is(err, tenant.ErrInvalid), errors.Is(err, signature.ErrMalformed), errors.Is(err, migrate.ErrTarget):
		return http.StatusBadRequest
	case errors.Is(err, chute.ErrForbidden),
		errors.Is(err, signature.ErrMissing), errors.Is(err, signature.ErrUnknownKey), errors.Is(err, signature.ErrBadSignature):
		return http.StatusForbidden
	case errors.Is(err, chute.ErrTooLarge), errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errCredentialEnded):
		return http.StatusUnauthorized
	case errors.Is(err, ErrStalled):
		return http.StatusRequestTimeout
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The client hung up mid-body: its fault, not ours.
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}
