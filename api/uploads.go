package api

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
)

// uploads caps the package uploads being read at once, per client address
// and in all: each holds a connection, descriptors and a staging directory
// growing on the data filesystem.
type uploads struct {
	max, perClient int

	mu       sync.Mutex
	all      int
	byClient map[string]int
}

func newUploads(lim Limits) *uploads {
	return &uploads{max: lim.MaxUploads, perClient: lim.MaxUploadsPerClient, byClient: map[string]int{}}
}

// uploadRetry is the Retry-After of a refused upload, in seconds.
const uploadRetry = 10

// begin takes a slot for r's upload, or answers 429 (this client has too
// many) or 503 (the gateway has too many) and returns false. A true
// return must be followed by end.
func (u *uploads) begin(w http.ResponseWriter, r *http.Request) bool {
	client := clientIP(r)
	u.mu.Lock()
	var code int
	var msg string
	switch {
	case u.byClient[client] >= u.perClient:
		code, msg = http.StatusTooManyRequests, fmt.Sprintf("this client already has %d package uploads in progress; wait for one to end", u.perClient)
	case u.all >= u.max:
		code, msg = http.StatusServiceUnavailable, fmt.Sprintf("the gateway already has %d package uploads in progress; try again later", u.max)
	default:
		u.all++
		u.byClient[client]++
	}
	u.mu.Unlock()
	if code != 0 {
		w.Header().Set("Retry-After", strconv.Itoa(uploadRetry))
		// Hang up rather than read the refused package to its end.
		w.Header().Set("Connection", "close")
		writeError(w, code, msg)
		return false
	}
	return true
}

func (u *uploads) end(r *http.Request) {
	client := clientIP(r)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.all--
	if u.byClient[client]--; u.byClient[client] <= 0 {
		delete(u.byClient, client)
	}
}
