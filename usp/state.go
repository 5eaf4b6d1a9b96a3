package usp

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"paradrop/store"
)

// What the agent keeps in the daemon's store (Config.DB, bucket store.USP),
// so that a gateway restarted, even killed, keeps its word to its
// controllers:
//   - answer/SEQ: the answer to each request that changed something, by
//     sender and message ID (the last maxRecent), so that one delivered
//     again after the restart runs once still;
//   - request/SEQ: each async command running (Device.LocalAgent.Request),
//     with the chute change it queued once known, until its
//     OperationComplete has been handed to the broker: a command the
//     restart interrupted gets one on the next start (recover.go);
//   - subscription/NUM: the subscriptions made with Persistent=true;
//   - numbers: the chutes' DU and EU instance numbers, and the last given.
const (
	answerPrefix       = "answer/"
	requestPrefix      = "request/"
	subscriptionPrefix = "subscription/"
	numbersKey         = "numbers"
)

// savedNumbers are the chutes' instance numbers.
type savedNumbers struct {
	Next uint32            `json:"next"`
	Nums map[string]uint32 `json:"nums"`
}

// keepNumbers writes the instance numbers; called with a.mu held.
func (a *Agent) keepNumbers() {
	if err := a.state.put(numbersKey, savedNumbers{Next: a.next, Nums: a.nums}); err != nil {
		a.cfg.Logf("usp: instance numbers: %v", err)
	}
}

// numbers are the instance numbers kept (none: zero).
func (s *state) numbers() (savedNumbers, error) {
	var v savedNumbers
	if s == nil {
		return v, nil
	}
	err := s.db.Get(store.USP, numbersKey, &v)
	if errors.Is(err, store.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return v, fmt.Errorf("usp state: %w", err)
	}
	return v, nil
}

// savedAnswer is an answer kept: Key is the sender's endpoint ID and the
// message ID (recent's key).
type savedAnswer struct {
	Key    string `json:"key"`
	Answer []byte `json:"answer"`
}

// savedRequest is an async command as kept while it runs.
type savedRequest struct {
	From    string    `json:"from"`
	Obj     string    `json:"obj"`     // the object it runs on, Device.SoftwareModules.DeploymentUnit.3.
	Command string    `json:"command"` // InstallDU()
	Key     string    `json:"key"`     // its CommandKey
	Chute   string    `json:"chute,omitempty"`
	Started time.Time `json:"started"`
	// Change is the chute manager's change it queued (0: none yet).
	Change uint64 `json:"change,omitempty"`
	// Done is how it ended, once it has: kept until the notification
	// saying so is sent.
	Done *savedOutcome `json:"done,omitempty"`
}

// savedOutcome is a command's end as OperationComplete tells it.
type savedOutcome struct {
	Out  map[string]string `json:"out,omitempty"`
	Code uint32            `json:"code,omitempty"`
	Msg  string            `json:"msg,omitempty"`
}

// state is the agent's part of the store; a nil *state keeps nothing (an
// agent without Config.DB: simulations, tests).
type state struct {
	db *store.DB
	mu sync.Mutex
	// answers maps recent's keys to their store keys.
	answers map[string]string
}

func newState(db *store.DB) *state {
	if db == nil {
		return nil
	}
	return &state{db: db, answers: map[string]string{}}
}

// seqKey is prefix and the bucket's next sequence number, in numeric order.
func seqKey(tx *store.Tx, prefix string) (string, error) {
	n, err := tx.NextID(store.USP)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%020d", prefix, n), nil
}

// load returns what a previous run left: the answers (oldest first) and
// the commands it was running, by store key.
func (s *state) load() ([]savedAnswer, map[string]savedRequest, error) {
	if s == nil {
		return nil, nil, nil
	}
	var answers []savedAnswer
	requests := map[string]savedRequest{}
	err := s.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.USP, func(k string, raw []byte) error {
			switch {
			case strings.HasPrefix(k, answerPrefix):
				var a savedAnswer
				if json.Unmarshal(raw, &a) == nil {
					answers = append(answers, a)
					s.answers[a.Key] = k
				}
			case strings.HasPrefix(k, requestPrefix):
				var r savedRequest
				if json.Unmarshal(raw, &r) == nil {
					requests[k] = r
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("usp state: %w", err)
	}
	return answers, requests, nil
}

// commit keeps, in one transaction, the answer to a request (under key)
// and the commands it starts, setting each one's store key; the answer
// recent forgot (evicted, if not "") goes. Until it returns, no command
// runs: a restart finds either the answer and the commands, or neither.
func (s *state) commit(key string, answer []byte, evicted string, started []*launch) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var answerKey string
	err := s.db.Update(func(tx *store.Tx) error {
		var err error
		if evicted != "" {
			if old, ok := s.answers[evicted]; ok {
				if err := tx.Delete(store.USP, old); err != nil {
					return err
				}
			}
		}
		if answerKey, err = seqKey(tx, answerPrefix); err != nil {
			return err
		}
		if err := tx.Put(store.USP, answerKey, savedAnswer{Key: key, Answer: answer}); err != nil {
			return err
		}
		for _, l := range started {
			if l.key, err = seqKey(tx, requestPrefix); err != nil {
				return err
			}
			if err := tx.Put(store.USP, l.key, l.saved); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, l := range started {
			l.key = ""
		}
		return fmt.Errorf("usp state: %w", err)
	}
	if evicted != "" {
		delete(s.answers, evicted)
	}
	s.answers[key] = answerKey
	return nil
}

// put writes v at key (nothing for an empty key: not kept).
func (s *state) put(key string, v any) error {
	if s == nil || key == "" {
		return nil
	}
	if err := s.db.Put(store.USP, key, v); err != nil {
		return fmt.Errorf("usp state: %w", err)
	}
	return nil
}

// drop deletes key.
func (s *state) drop(key string) error {
	if s == nil || key == "" {
		return nil
	}
	if err := s.db.Update(func(tx *store.Tx) error { return tx.Delete(store.USP, key) }); err != nil {
		return fmt.Errorf("usp state: %w", err)
	}
	return nil
}

// subscriptions are the persistent subscriptions kept, by instance number.
func (s *state) subscriptions() (map[uint32]savedSubscription, error) {
	out := map[uint32]savedSubscription{}
	if s == nil {
		return out, nil
	}
	err := s.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.USP, func(k string, raw []byte) error {
			num, ok := strings.CutPrefix(k, subscriptionPrefix)
			if !ok {
				return nil
			}
			n, err := strconv.ParseUint(num, 10, 32)
			var v savedSubscription
			if err == nil && json.Unmarshal(raw, &v) == nil {
				out[uint32(n)] = v
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("usp state: %w", err)
	}
	return out, nil
}
