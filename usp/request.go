package usp

import (
	"maps"
	"slices"
	"strconv"
	"sync"
)

// maxOperations bounds the async commands running at once (each may hold
// a download and a staging directory), and maxPerController those of one
// controller, so that one cannot take them all.
const (
	maxOperations    = 4
	maxPerController = 2
)

// request is an async command running: Device.LocalAgent.Request.{i}.
type request struct {
	from, command, key string
}

// operations are the async commands running, by request instance number.
type operations struct {
	mu   sync.Mutex
	max  int
	next uint32
	run  map[uint32]request
}

func newOperations(max int) *operations {
	return &operations{max: max, run: map[uint32]request{}}
}

// begin records r, or returns false when max are already running.
func (o *operations) begin(r request) (uint32, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.run) >= o.max {
		return 0, false
	}
	mine := 0
	for _, q := range o.run {
		if q.from == r.from {
			mine++
		}
	}
	if mine >= maxPerController {
		return 0, false
	}
	o.next++
	o.run[o.next] = r
	return o.next, true
}

func (o *operations) end(n uint32) {
	o.mu.Lock()
	delete(o.run, n)
	o.mu.Unlock()
}

// instances are the Request objects a controller from may see: its own.
func (o *operations) instances(from string) []instance {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []instance
	for _, n := range slices.Sorted(maps.Keys(o.run)) {
		r := o.run[n]
		if r.from != from {
			continue
		}
		out = append(out, at(requestObj, map[string]string{
			"Originator": r.from, "Command": r.command, "CommandKey": r.key, "Status": "Active",
		}, strconv.FormatUint(uint64(n), 10)))
	}
	return out
}
