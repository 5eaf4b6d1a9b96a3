package usp

import "sync"

// maxRecent bounds the Operate message IDs remembered: enough for the
// redeliveries of a QoS 1 session, whose broker resends within minutes.
const maxRecent = 1024

// recent remembers the answers to the last requests, by sender and message
// ID, forgetting the oldest first.
type recent struct {
	mu      sync.Mutex
	answers map[string][]byte
	order   []string // a ring of the keys, oldest at next
	next    int
}

func newRecent(max int) *recent {
	return &recent{answers: make(map[string][]byte, max), order: make([]string, 0, max)}
}

// get returns the answer recorded for key (nil for a request that wanted
// none) and whether there is one.
func (r *recent) get(key string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, ok := r.answers[key]
	return out, ok
}

// put records answer under key, and returns the key it forgot to make
// room, if any.
func (r *recent) put(key string, answer []byte) (evicted string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.answers[key]; ok {
		return "", false
	}
	if len(r.order) < cap(r.order) {
		r.order = append(r.order, key)
	} else {
		evicted, ok = r.order[r.next], true
		delete(r.answers, evicted)
		r.order[r.next] = key
		r.next = (r.next + 1) % len(r.order)
	}
	r.answers[key] = answer
	return evicted, ok
}
