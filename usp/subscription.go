package usp

import (
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits on the subscriptions a controller may make: each is evaluated
// while the agent runs.
const (
	maxSubscriptions = 32 // per controller
	maxReferences    = 16 // paths in one ReferenceList
	maxSubID         = 64
)

// notifTypes are the NotifType values the agent sends.
var notifTypes = []string{"ValueChange", "OperationComplete", "Event", "ObjectCreation", "ObjectDeletion"}

// subscription is a Device.LocalAgent.Subscription.{i}.: a controller's
// wish to be told of something. One made Persistent is kept in the
// daemon's store, under its instance number, and outlives a restart of
// the agent; the others live while it runs: a controller subscribes again
// on the agent's Boot!.
type subscription struct {
	num     uint32
	from    string // the controller that made it, its recipient
	id      string
	typ     string
	refs    []string
	enable  bool
	retry   bool // NotifRetry: send_resp, and resend until answered
	persist bool // Persistent
	created time.Time
	// last holds the values a ValueChange subscription saw last;
	// nil until it first looks.
	last map[string]string
}

// subscriptions are the subscriptions of all controllers.
type subscriptions struct {
	mu    sync.Mutex
	next  uint32
	all   map[uint32]*subscription
	state *state // keeps the persistent ones; nil: none kept
	logf  func(string, ...any)
}

func newSubscriptions(st *state, logf func(string, ...any)) *subscriptions {
	return &subscriptions{all: map[uint32]*subscription{}, state: st, logf: logf}
}

// savedSubscription is a persistent subscription as kept.
type savedSubscription struct {
	From    string    `json:"from"`
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Refs    []string  `json:"refs"`
	Enable  bool      `json:"enable"`
	Retry   bool      `json:"retry"`
	Created time.Time `json:"created"`
}

func subscriptionKey(num uint32) string { return fmt.Sprintf("%s%010d", subscriptionPrefix, num) }

// keep writes s to the store if persistent, or deletes it from there.
// Called with ss.mu held.
func (ss *subscriptions) keep(s *subscription, gone bool) {
	var err error
	if s.persist && !gone {
		err = ss.state.put(subscriptionKey(s.num), savedSubscription{From: s.from, ID: s.id, Type: s.typ, Refs: s.refs,
			Enable: s.enable, Retry: s.retry, Created: s.created})
	} else {
		err = ss.state.drop(subscriptionKey(s.num))
	}
	if err != nil {
		ss.logf("usp: subscription %d: %v", s.num, err)
	}
}

// restore takes back the persistent subscriptions of the controllers the
// agent still has, keeping their instance numbers (R-ARC.8); those of
// others go.
func (ss *subscriptions) restore(controllers map[string]Controller) error {
	saved, err := ss.state.subscriptions()
	if err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for num, v := range saved {
		s := &subscription{num: num, from: v.From, id: v.ID, typ: v.Type, refs: v.Refs, enable: v.Enable, retry: v.Retry,
			persist: true, created: v.Created}
		if _, ok := controllers[v.From]; !ok {
			ss.keep(s, true)
			continue
		}
		ss.all[num] = s
		ss.next = max(ss.next, num)
	}
	return nil
}

// values are the parameters of s as Get shows them.
func (s *subscription) values(recipient string) map[string]string {
	return map[string]string{
		"ID": s.id, "Enable": strconv.FormatBool(s.enable), "NotifType": s.typ,
		"ReferenceList": strings.Join(s.refs, ","), "Recipient": recipient,
		"NotifRetry": strconv.FormatBool(s.retry), "Persistent": strconv.FormatBool(s.persist),
		"CreationDate": s.created.UTC().Format(time.RFC3339),
	}
}

// writable are the parameters a controller sets; the others are read-only.
var writable = []string{"ID", "Enable", "NotifType", "ReferenceList", "NotifRetry", "Persistent"}

// paramError is a parameter that could not be set.
type paramError struct {
	param string
	code  uint32
	msg   string
}

// apply sets the parameters of s, all or none: it changes a copy and
// returns it with the parameters that failed.
func (s subscription) apply(settings map[string]string) (subscription, []paramError) {
	var errs []paramError
	for _, p := range slices.Sorted(maps.Keys(settings)) {
		v := settings[p]
		bad := func(code uint32, format string, args ...any) {
			errs = append(errs, paramError{p, code, fmt.Sprintf(format, args...)})
		}
		switch p {
		case "ID":
			if v == "" || len(v) > maxSubID || strings.ContainsAny(v, ",\x00") {
				bad(codeInvalidValue, "ID: 1 to %d characters, no comma", maxSubID)
				continue
			}
			s.id = v
		case "Enable", "NotifRetry", "Persistent":
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(codeInvalidValue, "%s: want true or false", p)
				continue
			}
			switch p {
			case "Enable":
				s.enable = b
			case "NotifRetry":
				s.retry = b
			default:
				s.persist = b
			}
		case "NotifType":
			if !slices.Contains(notifTypes, v) {
				bad(codeInvalidValue, "NotifType %.40q: this agent sends %s", v, strings.Join(notifTypes, ", "))
				continue
			}
			s.typ = v
		case "ReferenceList":
			refs, err := parseReferences(v)
			if err != nil {
				bad(codeInvalidValue, "ReferenceList: %v", err)
				continue
			}
			s.refs = refs
		case "Recipient", "CreationDate":
			bad(codeNotWritable, "%s is read-only", p)
		default:
			bad(codeUnknownParam, "%.60q is not a parameter of Subscription", p)
		}
	}
	return s, errs
}

// parseReferences reads a ReferenceList: paths of the data model, of
// parameters, objects, events (Name!) or commands (Name()), separated by
// commas.
func parseReferences(v string) ([]string, error) {
	var refs []string
	for r := range strings.SplitSeq(v, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		p := r
		if strings.HasSuffix(r, "!") || strings.HasSuffix(r, "()") {
			p = r[:strings.LastIndexByte(r, '.')+1]
		}
		if _, err := ParsePath(p); err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	if len(refs) > maxReferences {
		return nil, fmt.Errorf("more than %d paths", maxReferences)
	}
	return refs, nil
}

// add makes a subscription of from with the settings, unless it would
// break a rule; its ID is made when not given.
func (ss *subscriptions) add(from string, settings map[string]string) (*subscription, []paramError, error) {
	s, errs := subscription{from: from, enable: false, created: time.Now()}.apply(settings)
	if len(errs) > 0 {
		return nil, errs, nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 0
	for _, o := range ss.all {
		if o.from != from {
			continue
		}
		n++
		if s.id != "" && o.id == s.id {
			return nil, []paramError{{"ID", codeDuplicateKey, fmt.Sprintf("ID %q is taken", s.id)}}, nil
		}
	}
	if n >= maxSubscriptions {
		return nil, nil, fmt.Errorf("%d subscriptions already, at most %d", n, maxSubscriptions)
	}
	if s.typ == "" || len(s.refs) == 0 {
		return nil, []paramError{{"NotifType", codeInvalidValue, "a subscription needs NotifType and ReferenceList"}}, nil
	}
	ss.next++
	s.num = ss.next
	if s.id == "" {
		s.id = strconv.FormatUint(uint64(s.num), 10) + "-" + rand.Text()[:8]
	}
	ss.all[s.num] = &s
	ss.keep(&s, false)
	return &s, nil, nil
}

// set changes subscription num of from.
func (ss *subscriptions) set(from string, num uint32, settings map[string]string) (map[string]string, []paramError, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	old, ok := ss.all[num]
	if !ok || old.from != from {
		return nil, nil, false
	}
	s, errs := old.apply(settings)
	for _, o := range ss.all {
		if o != old && o.from == from && o.id == s.id {
			errs = append(errs, paramError{"ID", codeDuplicateKey, fmt.Sprintf("ID %q is taken", s.id)})
		}
	}
	if len(errs) > 0 {
		return nil, errs, true
	}
	if s.typ != old.typ || !slices.Equal(s.refs, old.refs) {
		s.last = nil // what it watches changed: look afresh
	}
	*old = s
	ss.keep(old, false)
	return settings, nil, true
}

// get is a copy of subscription num of from (the zero one if none).
func (ss *subscriptions) get(from string, num uint32) subscription {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s, ok := ss.all[num]; ok && s.from == from {
		return *s
	}
	return subscription{}
}

// remove deletes subscription num of from.
func (ss *subscriptions) remove(from string, num uint32) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.all[num]
	if !ok || s.from != from {
		return false
	}
	delete(ss.all, num)
	ss.keep(s, true)
	return true
}

// instances are the subscriptions from sees: its own.
func (ss *subscriptions) instances(from, recipient string) []instance {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []instance
	for _, n := range slices.Sorted(maps.Keys(ss.all)) {
		if s := ss.all[n]; s.from == from {
			out = append(out, at(subscriptionObj, s.values(recipient), strconv.FormatUint(uint64(n), 10)))
		}
	}
	return out
}

// matching is the enabled subscription of from, of type typ, whose
// ReferenceList names path (or an object above it); nil if none.
func (ss *subscriptions) matching(from, typ, path string) *subscription {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, n := range slices.Sorted(maps.Keys(ss.all)) {
		s := ss.all[n]
		if s.from != from || !s.enable || s.typ != typ {
			continue
		}
		for _, r := range s.refs {
			if refMatches(r, path) {
				c := *s
				return &c
			}
		}
	}
	return nil
}

// valueChange are copies of the enabled ValueChange subscriptions.
func (ss *subscriptions) valueChange() []subscription {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []subscription
	for _, n := range slices.Sorted(maps.Keys(ss.all)) {
		if s := ss.all[n]; s.enable && s.typ == "ValueChange" {
			out = append(out, *s)
		}
	}
	return out
}

// saw records the values subscription s (a copy) saw, unless what it
// watches changed meanwhile.
func (ss *subscriptions) saw(s subscription, values map[string]string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if cur, ok := ss.all[s.num]; ok && slices.Equal(cur.refs, s.refs) && cur.typ == s.typ {
		cur.last = values
	}
}

// refMatches says whether a ReferenceList path names path (an event's or
// a command's): the same, or an object above it; "*" stands for any
// instance number.
func refMatches(ref, path string) bool {
	rs, ps := strings.Split(ref, "."), strings.Split(path, ".")
	object := strings.HasSuffix(ref, ".")
	if object {
		rs = rs[:len(rs)-1]
	}
	if len(rs) > len(ps) || (!object && len(rs) != len(ps)) {
		return false
	}
	for i, r := range rs {
		if r != ps[i] && (r != "*" || !instanceNumber(ps[i])) {
			return false
		}
	}
	return true
}
