package controller

import (
	"errors"
	"fmt"

	"paradrop/sdn/ofp"
)

// OFError is an OpenFlow ERROR the switch sent for one of our requests.
// Get it from Sync's error with errors.As.
type OFError struct {
	// Type and Code are ofp_error_type and its code, e.g. 3/2
	// (BAD_INSTRUCTION / BAD_TABLE_ID) for a backwards goto_table. For
	// experimenter errors Type is 0xffff and Code the exp_type.
	Type, Code   uint16
	Experimenter uint32
	// Request says which request was refused, e.g. `add flow table=1
	// priority=60 "dnat web"`.
	Request string
}

// OpenFlow 1.3 error types (ofp_error_type) that a reconcile can meet.
const (
	ErrTypeHelloFailed    = 0
	ErrTypeBadRequest     = 1
	ErrTypeBadAction      = 2
	ErrTypeBadInstruction = 3
	ErrTypeBadMatch       = 4
	ErrTypeFlowModFailed  = 5
	ErrTypeMeterModFailed = 12
)

var errTypeNames = []string{
	"HELLO_FAILED", "BAD_REQUEST", "BAD_ACTION", "BAD_INSTRUCTION", "BAD_MATCH",
	"FLOW_MOD_FAILED", "GROUP_MOD_FAILED", "PORT_MOD_FAILED", "TABLE_MOD_FAILED",
	"QUEUE_OP_FAILED", "SWITCH_CONFIG_FAILED", "ROLE_REQUEST_FAILED",
	"METER_MOD_FAILED", "TABLE_FEATURES_FAILED",
}

func (e *OFError) Error() string {
	var what string
	switch {
	case e.Type == ofp.ErrorTypeExperimenter:
		what = fmt.Sprintf("experimenter %#x error %d", e.Experimenter, e.Code)
	case int(e.Type) < len(errTypeNames):
		what = fmt.Sprintf("%s code %d", errTypeNames[e.Type], e.Code)
	default:
		what = fmt.Sprintf("error type %d code %d", e.Type, e.Code)
	}
	return fmt.Sprintf("switch refused %s: %s", e.Request, what)
}

func newOFError(m *ofp.ErrorMsg, request string) *OFError {
	e := &OFError{Type: m.ErrType, Code: m.Code, Request: request}
	if m.ErrType == ofp.ErrorTypeExperimenter {
		e.Code, e.Experimenter = m.ExpType, m.Experimenter
	}
	return e
}

// maxJoined bounds how many refusals one error carries: a bad flow
// generator can make thousands, and the first few tell the story.
const maxJoined = 10

func joinRefusals(errs []error) error {
	if len(errs) > maxJoined {
		more := fmt.Errorf("and %d more refusals", len(errs)-maxJoined)
		errs = append(errs[:maxJoined:maxJoined], more)
	}
	return errors.Join(errs...)
}
