package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// errCredentialEnded is the cause with which a request under way is cut
// when the token it was made with stops being good: revoked, expired, its
// developer deleted, or a chute's token replaced by a restart or dropped
// by a stop or removal. Such a request answers 401 if it has not answered
// yet; a followed log ends.
var errCredentialEnded = errors.New("the token of this request was revoked or has expired")

// liveCheck is how often the requests under way are checked against their
// tokens: the bound on how long one goes on after its token ended without
// the API knowing (a chute's, which the manager rotates). A revocation or
// a deletion made through the API cuts them before it answers, and an
// expiring token cuts them when it expires.
const liveCheck = time.Second

// cutRepeat is how often a cut request's connection is told again to stop
// reading.
const cutRepeat = 100 * time.Millisecond

// liveReq is a request under way made by a developer or a chute.
type liveReq struct {
	token  string
	id     identity
	cancel context.CancelCauseFunc
}

// live holds the requests under way of the identities whose rights can
// end while they run; the operator's are not held.
type live struct {
	mu       sync.Mutex
	reqs     map[*liveReq]struct{}
	watching bool // a watch goroutine runs
}

// track makes r one that ends when token stops being id's (or at expires
// if not nil), and returns it with the function that ends the tracking.
// The body of r then fails to read once that happens, even while a read
// waits for the client.
func (s *server) track(w http.ResponseWriter, r *http.Request, token string, id identity, expires *time.Time) (*http.Request, func()) {
	ctx, cancel := context.WithCancelCause(r.Context())
	stopDeadline := context.CancelFunc(func() {})
	if expires != nil {
		ctx, stopDeadline = context.WithDeadlineCause(ctx, *expires, errCredentialEnded)
	}
	rc := http.NewResponseController(w)
	done := make(chan struct{})
	stopCut := context.AfterFunc(ctx, func() {
		if !ended(ctx) {
			return
		}
		// Wakes a read of the body that waits for the client; again
		// until the request ends, as the progress rule (server.go) sets
		// the deadline of each read it makes.
		t := time.NewTicker(cutRepeat)
		defer t.Stop()
		for {
			_ = rc.SetReadDeadline(time.Now())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	lr := &liveReq{token: token, id: id, cancel: cancel}
	s.live.mu.Lock()
	if s.live.reqs == nil {
		s.live.reqs = map[*liveReq]struct{}{}
	}
	s.live.reqs[lr] = struct{}{}
	if !s.live.watching {
		s.live.watching = true
		go s.watch()
	}
	s.live.mu.Unlock()
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = liveBody{ReadCloser: r.Body, ctx: ctx}
	}
	return r.WithContext(ctx), func() {
		close(done)
		stopCut()
		s.live.mu.Lock()
		delete(s.live.reqs, lr)
		s.live.mu.Unlock()
		stopDeadline()
		cancel(nil)
	}
}

// ended reports whether ctx was cut because its token ended.
func ended(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errCredentialEnded)
}

// watch checks the requests under way every liveCheck while there are any.
func (s *server) watch() {
	t := time.NewTicker(liveCheck)
	defer t.Stop()
	for range t.C {
		s.live.mu.Lock()
		if len(s.live.reqs) == 0 {
			s.live.watching = false
			s.live.mu.Unlock()
			return
		}
		s.live.mu.Unlock()
		s.recheck()
	}
}

// recheck cuts the requests under way whose token is no longer good, or no
// longer who it was.
func (s *server) recheck() {
	s.live.mu.Lock()
	reqs := make([]*liveReq, 0, len(s.live.reqs))
	for lr := range s.live.reqs {
		reqs = append(reqs, lr)
	}
	s.live.mu.Unlock()
	for _, lr := range reqs {
		if id, _, err := s.identify(lr.token); err != nil || id != lr.id {
			lr.cancel(errCredentialEnded)
		}
	}
}

// liveBody is a request body that fails with errCredentialEnded once the
// request's token has ended.
type liveBody struct {
	io.ReadCloser
	ctx context.Context
}

func (b liveBody) Read(p []byte) (int, error) {
	if ended(b.ctx) {
		return 0, errCredentialEnded
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && ended(b.ctx) {
		err = errCredentialEnded
	}
	return n, err
}
