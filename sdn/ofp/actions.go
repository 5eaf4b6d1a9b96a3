package ofp

import (
	"encoding/json"
)

// Action is one action of an action list or set (ofp_action_*, or an
// experimenter action such as Nicira's ct). Actions are always pointers.
type Action interface {
	json.Marshaler
	appendTo(w *writer)
}

// Action types (ofp_action_type).
const (
	ActionTypeOutput       = 0
	ActionTypeCopyTTLOut   = 11
	ActionTypeCopyTTLIn    = 12
	ActionTypeSetMPLSTTL   = 15
	ActionTypeDecMPLSTTL   = 16
	ActionTypePushVLAN     = 17
	ActionTypePopVLAN      = 18
	ActionTypePushMPLS     = 19
	ActionTypePopMPLS      = 20
	ActionTypeSetQueue     = 21
	ActionTypeGroup        = 22
	ActionTypeSetNwTTL     = 23
	ActionTypeDecNwTTL     = 24
	ActionTypeSetField     = 25
	ActionTypePushPBB      = 26
	ActionTypePopPBB       = 27
	ActionTypeExperimenter = 0xffff
)

// Reserved port numbers (ofp_port_no) and other special ids.
const (
	PortMax        = 0xffffff00
	PortInPort     = 0xfffffff8
	PortTable      = 0xfffffff9
	PortNormal     = 0xfffffffa
	PortFlood      = 0xfffffffb
	PortAll        = 0xfffffffc
	PortController = 0xfffffffd
	PortLocal      = 0xfffffffe
	PortAny        = 0xffffffff

	GroupAll = 0xfffffffc
	GroupAny = 0xffffffff

	// NoBuffer in buffer_id: the packet is not buffered in the switch.
	NoBuffer = 0xffffffff
	// MaxLenNoBuffer as an output max_len sends whole packets to the controller.
	MaxLenNoBuffer = 0xffff
)

// ActionOutput sends the packet to a port (or a reserved port such as
// PortController, where MaxLen bytes are sent).
type ActionOutput struct {
	Port   uint32 `json:"port"`
	MaxLen uint16 `json:"max_len"`
}

func (a *ActionOutput) appendTo(w *writer) {
	w.u16(ActionTypeOutput)
	w.u16(16)
	w.u32(a.Port)
	w.u16(a.MaxLen)
	w.pad(6)
}

func (a *ActionOutput) MarshalJSON() ([]byte, error) {
	type plain ActionOutput
	return object("OFPActionOutput", (*plain)(a), "type", ActionTypeOutput, "len", 16)
}

// Actions without arguments.
type (
	ActionCopyTTLOut struct{}
	ActionCopyTTLIn  struct{}
	ActionDecMPLSTTL struct{}
	ActionPopVLAN    struct{}
	ActionDecNwTTL   struct{}
	ActionPopPBB     struct{}
)

func appendBare(w *writer, typ uint16) {
	w.u16(typ)
	w.u16(8)
	w.pad(4)
}

func bareJSON(name string, typ uint16) ([]byte, error) {
	return object(name, nil, "type", typ, "len", 8)
}

func (*ActionCopyTTLOut) appendTo(w *writer) { appendBare(w, ActionTypeCopyTTLOut) }
func (*ActionCopyTTLIn) appendTo(w *writer)  { appendBare(w, ActionTypeCopyTTLIn) }
func (*ActionDecMPLSTTL) appendTo(w *writer) { appendBare(w, ActionTypeDecMPLSTTL) }
func (*ActionPopVLAN) appendTo(w *writer)    { appendBare(w, ActionTypePopVLAN) }
func (*ActionDecNwTTL) appendTo(w *writer)   { appendBare(w, ActionTypeDecNwTTL) }
func (*ActionPopPBB) appendTo(w *writer)     { appendBare(w, ActionTypePopPBB) }

func (*ActionCopyTTLOut) MarshalJSON() ([]byte, error) {
	return bareJSON("OFPActionCopyTtlOut", ActionTypeCopyTTLOut)
}
func (*ActionCopyTTLIn) MarshalJSON() ([]byte, error) {
	return bareJSON("OFPActionCopyTtlIn", ActionTypeCopyTTLIn)
}
func (*ActionDecMPLSTTL) MarshalJSON() ([]byte, error) {
	return bareJSON("OFPActionDecMplsTtl", ActionTypeDecMPLSTTL)
}
func (*ActionPopVLAN) MarshalJSON() ([]byte, error) {
	return bareJSON("OFPActionPopVlan", ActionTypePopVLAN)
}
func (*ActionDecNwTTL) MarshalJSON() ([]byte, error) {
	return bareJSON("OFPActionDecNwTtl", ActionTypeDecNwTTL)
}
func (*ActionPopPBB) MarshalJSON() ([]byte, error) {
	return bareJSON("OFPActionPopPbb", ActionTypePopPBB)
}

// Actions that push or pop a header with the given ethertype.
type (
	ActionPushVLAN struct {
		EtherType uint16 `json:"ethertype"`
	}
	ActionPushMPLS struct {
		EtherType uint16 `json:"ethertype"`
	}
	ActionPushPBB struct {
		EtherType uint16 `json:"ethertype"`
	}
	// ActionPopMPLS's EtherType is that of the payload after the pop.
	ActionPopMPLS struct {
		EtherType uint16 `json:"ethertype"`
	}
)

func appendEtherType(w *writer, typ, et uint16) {
	w.u16(typ)
	w.u16(8)
	w.u16(et)
	w.pad(2)
}

func (a *ActionPushVLAN) appendTo(w *writer) { appendEtherType(w, ActionTypePushVLAN, a.EtherType) }
func (a *ActionPushMPLS) appendTo(w *writer) { appendEtherType(w, ActionTypePushMPLS, a.EtherType) }
func (a *ActionPushPBB) appendTo(w *writer)  { appendEtherType(w, ActionTypePushPBB, a.EtherType) }
func (a *ActionPopMPLS) appendTo(w *writer)  { appendEtherType(w, ActionTypePopMPLS, a.EtherType) }

func (a *ActionPushVLAN) MarshalJSON() ([]byte, error) {
	type plain ActionPushVLAN
	return object("OFPActionPushVlan", (*plain)(a), "type", ActionTypePushVLAN, "len", 8)
}
func (a *ActionPushMPLS) MarshalJSON() ([]byte, error) {
	type plain ActionPushMPLS
	return object("OFPActionPushMpls", (*plain)(a), "type", ActionTypePushMPLS, "len", 8)
}
func (a *ActionPushPBB) MarshalJSON() ([]byte, error) {
	type plain ActionPushPBB
	return object("OFPActionPushPbb", (*plain)(a), "type", ActionTypePushPBB, "len", 8)
}
func (a *ActionPopMPLS) MarshalJSON() ([]byte, error) {
	type plain ActionPopMPLS
	return object("OFPActionPopMpls", (*plain)(a), "type", ActionTypePopMPLS, "len", 8)
}

// ActionSetMPLSTTL sets the MPLS TTL.
type ActionSetMPLSTTL struct {
	MPLSTTL uint8 `json:"mpls_ttl"`
}

func (a *ActionSetMPLSTTL) appendTo(w *writer) {
	w.u16(ActionTypeSetMPLSTTL)
	w.u16(8)
	w.u8(a.MPLSTTL)
	w.pad(3)
}

func (a *ActionSetMPLSTTL) MarshalJSON() ([]byte, error) {
	type plain ActionSetMPLSTTL
	return object("OFPActionSetMplsTtl", (*plain)(a), "type", ActionTypeSetMPLSTTL, "len", 8)
}

// ActionSetNwTTL sets the IP TTL.
type ActionSetNwTTL struct {
	NwTTL uint8 `json:"nw_ttl"`
}

func (a *ActionSetNwTTL) appendTo(w *writer) {
	w.u16(ActionTypeSetNwTTL)
	w.u16(8)
	w.u8(a.NwTTL)
	w.pad(3)
}

func (a *ActionSetNwTTL) MarshalJSON() ([]byte, error) {
	type plain ActionSetNwTTL
	return object("OFPActionSetNwTtl", (*plain)(a), "type", ActionTypeSetNwTTL, "len", 8)
}

// ActionSetQueue sets the queue for output.
type ActionSetQueue struct {
	QueueID uint32 `json:"queue_id"`
}

func (a *ActionSetQueue) appendTo(w *writer) {
	w.u16(ActionTypeSetQueue)
	w.u16(8)
	w.u32(a.QueueID)
}

func (a *ActionSetQueue) MarshalJSON() ([]byte, error) {
	type plain ActionSetQueue
	return object("OFPActionSetQueue", (*plain)(a), "type", ActionTypeSetQueue, "len", 8)
}

// ActionGroup processes the packet through a group.
type ActionGroup struct {
	GroupID uint32 `json:"group_id"`
}

func (a *ActionGroup) appendTo(w *writer) {
	w.u16(ActionTypeGroup)
	w.u16(8)
	w.u32(a.GroupID)
}

func (a *ActionGroup) MarshalJSON() ([]byte, error) {
	type plain ActionGroup
	return object("OFPActionGroup", (*plain)(a), "type", ActionTypeGroup, "len", 8)
}

// ActionSetField rewrites a header field; Field.Mask must be nil.
type ActionSetField struct {
	Field OXM `json:"field"`
}

func (a *ActionSetField) appendTo(w *writer) {
	start := len(w.b)
	w.u16(ActionTypeSetField)
	at := w.mark()
	a.Field.appendTo(w)
	w.padTo8(start)
	w.fill(at, start, "set_field action")
}

func (a *ActionSetField) MarshalJSON() ([]byte, error) {
	type plain ActionSetField
	return object("OFPActionSetField", (*plain)(a), "type", ActionTypeSetField, "len", encodedLen(a))
}

// ActionExperimenter is an experimenter action this package does not
// model, kept as its raw payload.
type ActionExperimenter struct {
	Experimenter uint32 `json:"experimenter"`
	Data         []byte `json:"data"`
}

func (a *ActionExperimenter) appendTo(w *writer) {
	start := len(w.b)
	w.u16(ActionTypeExperimenter)
	at := w.mark()
	w.u32(a.Experimenter)
	w.bytes(a.Data)
	w.fill(at, start, "experimenter action")
}

func (a *ActionExperimenter) MarshalJSON() ([]byte, error) {
	type plain ActionExperimenter
	return object("OFPActionExperimenterUnknown", (*plain)(a), "type", ActionTypeExperimenter, "len", encodedLen(a))
}

// ActionUnknown is an action of a type OpenFlow 1.3 does not define (for
// instance from a later version), kept as its raw payload.
type ActionUnknown struct {
	Type uint16 `json:"type"`
	Data []byte `json:"data"`
}

func (a *ActionUnknown) appendTo(w *writer) {
	start := len(w.b)
	w.u16(a.Type)
	at := w.mark()
	w.bytes(a.Data)
	w.fill(at, start, "action")
}

func (a *ActionUnknown) MarshalJSON() ([]byte, error) {
	type plain ActionUnknown
	return object("OFPActionUnknown", (*plain)(a), "len", encodedLen(a))
}

// encodedLen is the encoded size of an action or instruction, for the
// "len" fields of JSON.
func encodedLen(a interface{ appendTo(*writer) }) int {
	w := &writer{}
	a.appendTo(w)
	return len(w.b)
}

func appendActions(w *writer, as []Action) {
	for _, a := range as {
		a.appendTo(w)
	}
}

// decodeActions decodes actions until r is exhausted.
func decodeActions(r *reader) []Action {
	as := []Action{}
	for r.ok() && r.len() > 0 {
		as = append(as, decodeAction(r))
	}
	return as
}

func decodeAction(r *reader) Action {
	typ := r.u16()
	n := int(r.u16())
	if r.ok() && n < 8 {
		r.fail("action", ErrBadLength, "length %d below 8", n)
		return nil
	}
	p := r.sub("action", n-4)
	var a Action
	switch typ {
	case ActionTypeOutput:
		a = &ActionOutput{Port: p.u32(), MaxLen: p.u16()}
		p.skip(6)
	case ActionTypeCopyTTLOut:
		a = &ActionCopyTTLOut{}
		p.skip(4)
	case ActionTypeCopyTTLIn:
		a = &ActionCopyTTLIn{}
		p.skip(4)
	case ActionTypeDecMPLSTTL:
		a = &ActionDecMPLSTTL{}
		p.skip(4)
	case ActionTypePopVLAN:
		a = &ActionPopVLAN{}
		p.skip(4)
	case ActionTypeDecNwTTL:
		a = &ActionDecNwTTL{}
		p.skip(4)
	case ActionTypePopPBB:
		a = &ActionPopPBB{}
		p.skip(4)
	case ActionTypePushVLAN:
		a = &ActionPushVLAN{EtherType: p.u16()}
		p.skip(2)
	case ActionTypePushMPLS:
		a = &ActionPushMPLS{EtherType: p.u16()}
		p.skip(2)
	case ActionTypePushPBB:
		a = &ActionPushPBB{EtherType: p.u16()}
		p.skip(2)
	case ActionTypePopMPLS:
		a = &ActionPopMPLS{EtherType: p.u16()}
		p.skip(2)
	case ActionTypeSetMPLSTTL:
		a = &ActionSetMPLSTTL{MPLSTTL: p.u8()}
		p.skip(3)
	case ActionTypeSetNwTTL:
		a = &ActionSetNwTTL{NwTTL: p.u8()}
		p.skip(3)
	case ActionTypeSetQueue:
		a = &ActionSetQueue{QueueID: p.u32()}
	case ActionTypeGroup:
		a = &ActionGroup{GroupID: p.u32()}
	case ActionTypeSetField:
		if p.len() < 4 {
			p.fail("set_field action", ErrTruncated, "no OXM header")
			return nil
		}
		f := decodeOXM(p)
		a = &ActionSetField{Field: f}
		// Padding must be exactly what an encoder adds, so that the
		// action re-encodes to the same length.
		if want := pad8(n - p.len()); p.ok() && p.len() != want {
			p.fail("set_field action", ErrBadLength, "%d bytes of padding, want %d", p.len(), want)
		}
		p.rest()
	case ActionTypeExperimenter:
		exp := p.u32()
		if exp == nxExperimenter {
			a = decodeNXAction(p)
		} else {
			a = &ActionExperimenter{Experimenter: exp, Data: p.rest()}
		}
	default:
		a = &ActionUnknown{Type: typ, Data: p.rest()}
	}
	if p.ok() && p.len() != 0 {
		p.fail("action", ErrBadLength, "type %d: %d bytes beyond its fields", typ, p.len())
	}
	return a
}
