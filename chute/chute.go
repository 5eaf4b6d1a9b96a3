// Package chute owns the chutes' lifecycle: installing, updating with
// rollback, starting, supervising and removing them, one serialized change
// at a time per chute, with every state transition of a chute persisted in
// the store, and each change when queued and when ended.
package chute

import (
	"errors"
	"strings"
	"time"

	"paradrop/sdn"
)

// State is where a chute is in its lifecycle.
type State string

// The states a chute can be in.
const (
	Installing State = "installing"
	Stopped    State = "stopped"
	Starting   State = "starting"
	Running    State = "running"
	Stopping   State = "stopping"
	Updating   State = "updating"
	Failed     State = "failed"
)

// Errors callers branch on (the API maps them to HTTP statuses).
var (
	ErrNotFound = errors.New("no such chute")
	ErrExists   = errors.New("chute already exists")
	ErrInvalid  = errors.New("invalid request")
	ErrTooLarge = errors.New("package too large")
	ErrConflict = errors.New("conflict")
	// ErrRefused is a migration's target that answered no: it keeps
	// nothing of the chute.
	ErrRefused = errors.New("refused")
	// ErrNameTaken is an ErrExists: the name is another's chute, of which
	// nothing more is told.
	ErrNameTaken error = &kindError{msg: "not available: another chute has it", kind: ErrExists}
	// ErrNoChange is an ErrNotFound: no change has the id.
	ErrNoChange error = &kindError{msg: "no such change", kind: ErrNotFound}
)

// Owner is the developer a chute belongs to, by name; the operator's
// chutes have none ("").
type Owner string

// Actor is who asks for a change, as the audit names it: "operator",
// "developer:NAME", "chute:NAME". It is also whose rights the manager
// checks: a change asked by a developer may only touch that developer's
// chutes, checked under the manager's lock together with the change, so
// that a chute removed and installed again under the same name by someone
// else between the API's check and the call is not reached.
type Actor string

// MayAct reports whether a may act on the chute name of owner: a developer
// on its own chutes, a chute on itself, the operator ("operator", or ""
// for the daemon's own work) on every chute. Any other actor on none.
func (a Actor) MayAct(name string, owner Owner) bool {
	kind, who, _ := strings.Cut(string(a), ":")
	switch {
	case a == "" || a == "operator":
		return true
	case kind == "developer":
		return who != "" && Owner(who) == owner
	case kind == "chute":
		return who != "" && who == name
	}
	return false
}

// Info is what the API shows of a chute.
type Info struct {
	Name      string     `json:"name"`
	Owner     Owner      `json:"owner,omitempty"`
	Version   string     `json:"version"`
	State     State      `json:"state"`
	Desired   State      `json:"desired"`
	Pid       int        `json:"pid,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	Restarts  int        `json:"restarts"`
	LastExit  string     `json:"last_exit,omitempty"`
	Error     string     `json:"error,omitempty"`
	Manifest  any        `json:"manifest"`
	IP        string     `json:"ip,omitempty"`
	IPv6      string     `json:"ipv6,omitempty"`
	MAC       string     `json:"mac,omitempty"`
	// IPv6Global is its global IPv6 address, with a delegated prefix.
	IPv6Global string `json:"ipv6_global,omitempty"`
	// SignedBy is the minisign key ID whose signature of the installed
	// package was verified; empty for an unsigned package.
	SignedBy string `json:"signed_by,omitempty"`
	// Installed is when this chute of the name was installed (absent for
	// chutes installed before it was recorded).
	Installed *time.Time `json:"installed,omitempty"`
	// Traffic is what the switch counted for the chute, in its flows'
	// statistics; only Get asks the switch for it.
	Traffic *sdn.Counters `json:"traffic,omitempty"`
	// Migration is the migration that brought the chute here; while
	// Unconfirmed, its source has not been told it runs here, and the
	// chute goes if the source leaves (migrate_phase.go).
	Migration   string `json:"migration,omitempty"`
	Unconfirmed bool   `json:"unconfirmed,omitempty"`
}

// ChangeState is where a change is.
type ChangeState string

// The states of a change.
const (
	Queued      ChangeState = "queued"
	ChangeRun   ChangeState = "running"
	ChangeDone  ChangeState = "done"
	ChangeError ChangeState = "failed"
)

// Step is one line of a change's progress.
type Step struct {
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

// Change is one operation on one chute, recorded with its progress.
type Change struct {
	ID      uint64      `json:"id"`
	Chute   string      `json:"chute"`
	Owner   Owner       `json:"owner,omitempty"` // the chute's, when the change was made
	Actor   Actor       `json:"actor,omitempty"` // who asked for it
	Action  string      `json:"action"`
	State   ChangeState `json:"state"`
	Steps   []Step      `json:"steps"`
	Error   string      `json:"error,omitempty"`
	Created time.Time   `json:"created"`
	Ended   *time.Time  `json:"ended,omitempty"`
}

// Done reports whether the change has ended, well or badly.
func (c Change) Done() bool { return c.State == ChangeDone || c.State == ChangeError }
