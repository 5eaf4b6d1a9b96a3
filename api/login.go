package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/time/rate"

	"paradrop/store"
)

// Password login, for the web UI: the operator sets a password with
// `paradrop password` (PUT /api/v1/password, operator token only), and
// POST /api/v1/login trades it for a session token that expires after
// SessionTTL. The operator token itself is never handed out, so a browser
// only ever holds a token that expires and that a new password revokes.
//
// Only the password's argon2id hash (random salt, parameters stored with
// it) is kept in store.Meta; session tokens are kept as SHA-256 hashes in
// memory, so a restart logs every browser out.
//
// Guessing is limited three ways, all answered 429 with Retry-After: per
// client address (a token bucket), for all clients together (a global rate,
// since a LAN attacker has many addresses), and by lockout: after
// lockoutAfter wrong passwords in a row, from anywhere, password logins stop
// for lockoutBase, doubled at each further lockout up to lockoutMax, until a
// login succeeds. A lockout refuses the right password too, or it would not
// stop guessing. The operator token is not a password login and keeps
// working throughout: it is 256 random bits, not guessable, and it is how
// the operator gets in while someone hammers the login.

const (
	loginPattern    = "POST /api/v1/login"
	passwordPattern = "PUT /api/v1/password"

	passwordKey = "operator_password_argon2id" // store.Meta

	// SessionTTL is how long a session token from a login is valid.
	SessionTTL = 12 * time.Hour

	// MinPasswordLen is the shortest password PUT /api/v1/password accepts.
	MinPasswordLen = 8
	maxPasswordLen = 1024 // the hash reads it all; bound the work

	maxSessions = 256 // a cap, so that logins cannot grow memory without end

	// A client gets loginBurst attempts, then one more per loginRefill.
	loginBurst  = 5
	loginRefill = 12 * time.Second
	maxClients  = 1024 // rate-limit entries kept before the oldest go

	// All clients together get globalBurst attempts, then one per
	// globalRefill.
	globalBurst  = 10
	globalRefill = 3 * time.Second

	// lockoutAfter wrong passwords in a row lock password logins out for
	// lockoutBase, doubled at each further lockout, at most lockoutMax.
	lockoutAfter = 10
	lockoutBase  = time.Minute
	lockoutMax   = time.Hour
)

// loginFailDelay is how long a wrong password waits before its 401, so
// that guessing is slow and a fast answer reveals nothing. Tests shorten it.
var loginFailDelay = time.Second

// argon2id parameters for new hashes: RFC 9106's second recommendation
// scaled down to a gateway with little memory (19 MiB, as OWASP suggests).
var defaultParams = passwordHash{Time: 2, Memory: 19 * 1024, Threads: 1, KeyLen: 32}

// passwordHash is the stored password: the argon2id key, its salt and the
// parameters that made it, so that they can change without locking anyone out.
type passwordHash struct {
	Time    uint32 `json:"time"`
	Memory  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
	KeyLen  uint32 `json:"key_len"`
	Salt    []byte `json:"salt"`
	Key     []byte `json:"key"`
}

func newPasswordHash(password string) (passwordHash, error) {
	h := defaultParams
	h.Salt = make([]byte, 16)
	if _, err := rand.Read(h.Salt); err != nil {
		return passwordHash{}, fmt.Errorf("password salt: %w", err)
	}
	h.Key = argon2.IDKey([]byte(password), h.Salt, h.Time, h.Memory, h.Threads, h.KeyLen)
	return h, nil
}

func (h passwordHash) matches(password string) bool {
	key := argon2.IDKey([]byte(password), h.Salt, h.Time, h.Memory, h.Threads, h.KeyLen)
	return subtle.ConstantTimeCompare(key, h.Key) == 1
}

// logins holds the sessions and the login rate limits.
type logins struct {
	mu       sync.Mutex
	sessions map[string]time.Time // SHA-256 of the token -> expiry
	clients  map[string]*bucket   // client IP -> its attempts
	global   *rate.Limiter        // all clients' attempts
	failures int                  // wrong passwords since the last login
	lockouts int                  // lockouts since the last login
	until    time.Time            // end of the current lockout
	hashing  sync.Mutex           // one argon2 at a time: each takes 19 MiB
	now      func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLogins() *logins {
	return &logins{sessions: map[string]time.Time{}, clients: map[string]*bucket{},
		global: rate.NewLimiter(rate.Every(globalRefill), globalBurst), now: time.Now}
}

// admit decides whether a login attempt from ip may try a password; if
// not, it returns how long to wait and why.
func (l *logins) admit(ip string) (wait time.Duration, why string) {
	now := l.now()
	l.mu.Lock()
	locked := l.until.Sub(now)
	l.mu.Unlock()
	switch {
	case locked > 0:
		return locked, "password login is locked after repeated wrong passwords; the operator token still works"
	case !l.allow(ip):
		return loginRefill, "too many login attempts from this address; wait and try again"
	}
	// Reserve rather than Allow, to tell the client how long to wait.
	r := l.global.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, "too many login attempts on this gateway; wait and try again"
	}
	return 0, ""
}

// failed counts a wrong password and starts a lockout every lockoutAfter.
func (l *logins) failed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
	if l.failures < lockoutAfter {
		return
	}
	l.failures = 0
	d := lockoutMax
	if l.lockouts < 16 { // beyond, the shift would overflow long before
		d = min(lockoutMax, lockoutBase<<l.lockouts)
	}
	l.lockouts++
	l.until = l.now().Add(d)
}

// succeeded ends the run of failures.
func (l *logins) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures, l.lockouts = 0, 0
}

// allow takes one attempt from ip's bucket; false means too many.
func (l *logins) allow(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.clients[ip]
	if !ok {
		if len(l.clients) >= maxClients {
			l.forgetFullClients(now)
		}
		b = &bucket{tokens: loginBurst, last: now}
		l.clients[ip] = b
	}
	b.tokens = min(loginBurst, b.tokens+now.Sub(b.last).Seconds()/loginRefill.Seconds())
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// forgetFullClients drops the clients whose buckets have refilled (they
// lose nothing), or all of them if that is not enough, to bound memory.
func (l *logins) forgetFullClients(now time.Time) {
	for ip, b := range l.clients {
		if b.tokens+now.Sub(b.last).Seconds()/loginRefill.Seconds() >= loginBurst {
			delete(l.clients, ip)
		}
	}
	if len(l.clients) >= maxClients {
		clear(l.clients)
	}
}

// newSession returns a fresh session token and its expiry.
func (l *logins) newSession() (string, time.Time, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("session token: %w", err)
	}
	token := hex.EncodeToString(raw[:])
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for k, exp := range l.sessions {
		if !now.Before(exp) {
			delete(l.sessions, k)
		}
	}
	if len(l.sessions) >= maxSessions {
		// Evict the session closest to its end rather than refuse a login.
		var oldest string
		for k, exp := range l.sessions {
			if oldest == "" || exp.Before(l.sessions[oldest]) {
				oldest = k
			}
		}
		delete(l.sessions, oldest)
	}
	exp := now.Add(SessionTTL)
	l.sessions[hashToken(token)] = exp
	return token, exp, nil
}

// valid reports whether token is a live session token.
func (l *logins) valid(token string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok := l.sessions[hashToken(token)]
	return ok && l.now().Before(exp)
}

// revokeAll ends every session: a new password must lock out whoever
// logged in with the old one.
func (l *logins) revokeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.sessions)
}

type loginRequest struct {
	Password string `json:"password"`
}

type loginResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// routeLogin adds the login and password endpoints.
func (s *server) routeLogin() {
	s.handle(loginPattern, scopeOpen, s.login)
	s.handle(passwordPattern, scopeOperator, s.setPassword)
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if wait, why := s.logins.admit(clientIP(r)); wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
		writeError(w, http.StatusTooManyRequests, why)
		return
	}
	var req loginRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var stored passwordHash
	switch err := s.cfg.DB.Get(store.Meta, passwordKey, &stored); {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusUnauthorized, "no operator password is set (paradrop password); use the operator token")
		return
	case err != nil:
		fail(w, fmt.Errorf("read operator password: %w", err))
		return
	}
	s.logins.hashing.Lock()
	ok := req.Password != "" && stored.matches(req.Password)
	s.logins.hashing.Unlock()
	if !ok {
		s.logins.failed()
		select {
		case <-time.After(loginFailDelay):
		case <-r.Context().Done():
			return
		}
		writeError(w, http.StatusUnauthorized, "wrong password")
		return
	}
	s.logins.succeeded()
	token, exp, err := s.logins.newSession()
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, loginResponse{Token: token, Expires: exp.UTC()})
}

// setPassword sets the operator password. Only the operator token may: a
// session token (from a password) must not be able to replace the password.
func (s *server) setPassword(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.isSession(r) {
		writeError(w, http.StatusForbidden, "only the operator token can set the password")
		return
	}
	var req loginRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := checkPassword(req.Password); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.logins.hashing.Lock()
	h, err := newPasswordHash(req.Password)
	s.logins.hashing.Unlock()
	if err != nil {
		fail(w, err)
		return
	}
	if err := s.cfg.DB.Put(store.Meta, passwordKey, h); err != nil {
		fail(w, fmt.Errorf("store operator password: %w", err))
		return
	}
	s.logins.revokeAll()
	writeJSON(w, http.StatusOK, map[string]string{"status": "password set; earlier sessions ended"})
}

// checkPassword refuses passwords too short to resist guessing; there is no
// default or empty password.
func checkPassword(p string) error {
	n := utf8.RuneCountInString(p)
	switch {
	case strings.TrimSpace(p) == "":
		return errors.New("password is empty")
	case n < MinPasswordLen:
		return fmt.Errorf("password is %d characters; want at least %d", n, MinPasswordLen)
	case len(p) > maxPasswordLen:
		return fmt.Errorf("password is longer than %d bytes", maxPasswordLen)
	}
	return nil
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4*maxPasswordLen))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: want JSON {\"password\": \"...\"}: %w", err)
	}
	return nil
}

// clientIP is the address the rate limit counts by. The daemon is reached
// directly on the gateway, so RemoteAddr is the client, not a proxy.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// isSession reports whether the request's bearer token is a session token.
func (s *server) isSession(r *http.Request) bool {
	_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	return token != "" && s.logins.valid(token)
}
