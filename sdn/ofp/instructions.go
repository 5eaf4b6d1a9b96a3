package ofp

import "encoding/json"

// Instruction is one instruction of a flow entry (ofp_instruction_*).
// Instructions are always pointers.
type Instruction interface {
	json.Marshaler
	appendTo(w *writer)
}

// Instruction types (ofp_instruction_type).
const (
	InstructionTypeGotoTable     = 1
	InstructionTypeWriteMetadata = 2
	InstructionTypeWriteActions  = 3
	InstructionTypeApplyActions  = 4
	InstructionTypeClearActions  = 5
	InstructionTypeMeter         = 6
	InstructionTypeExperimenter  = 0xffff
)

// InstructionGotoTable continues processing in a later table.
type InstructionGotoTable struct {
	TableID uint8 `json:"table_id"`
}

func (i *InstructionGotoTable) appendTo(w *writer) {
	w.u16(InstructionTypeGotoTable)
	w.u16(8)
	w.u8(i.TableID)
	w.pad(3)
}

func (i *InstructionGotoTable) MarshalJSON() ([]byte, error) {
	type plain InstructionGotoTable
	return object("OFPInstructionGotoTable", (*plain)(i), "type", InstructionTypeGotoTable, "len", 8)
}

// InstructionWriteMetadata sets the metadata bits selected by MetadataMask.
type InstructionWriteMetadata struct {
	Metadata     uint64 `json:"metadata"`
	MetadataMask uint64 `json:"metadata_mask"`
}

func (i *InstructionWriteMetadata) appendTo(w *writer) {
	w.u16(InstructionTypeWriteMetadata)
	w.u16(24)
	w.pad(4)
	w.u64(i.Metadata)
	w.u64(i.MetadataMask)
}

func (i *InstructionWriteMetadata) MarshalJSON() ([]byte, error) {
	type plain InstructionWriteMetadata
	return object("OFPInstructionWriteMetadata", (*plain)(i), "type", InstructionTypeWriteMetadata, "len", 24)
}

// InstructionActions is a write-actions, apply-actions or clear-actions
// instruction, as Type says; build one with ApplyActions, WriteActions or
// ClearActions.
type InstructionActions struct {
	Type    uint16   `json:"type"`
	Actions []Action `json:"actions"`
}

// ApplyActions applies the actions immediately, in order.
func ApplyActions(as ...Action) *InstructionActions {
	return &InstructionActions{Type: InstructionTypeApplyActions, Actions: as}
}

// WriteActions merges the actions into the action set.
func WriteActions(as ...Action) *InstructionActions {
	return &InstructionActions{Type: InstructionTypeWriteActions, Actions: as}
}

// ClearActions empties the action set.
func ClearActions() *InstructionActions {
	return &InstructionActions{Type: InstructionTypeClearActions}
}

func (i *InstructionActions) appendTo(w *writer) {
	start := len(w.b)
	w.u16(i.Type)
	at := w.mark()
	w.pad(4)
	appendActions(w, i.Actions)
	w.fill(at, start, "actions instruction")
}

func (i *InstructionActions) MarshalJSON() ([]byte, error) {
	type plain InstructionActions
	p := *(*plain)(i)
	if p.Actions == nil {
		p.Actions = []Action{}
	}
	return object("OFPInstructionActions", &p, "len", encodedLen(i))
}

// InstructionMeter applies a meter.
type InstructionMeter struct {
	MeterID uint32 `json:"meter_id"`
}

func (i *InstructionMeter) appendTo(w *writer) {
	w.u16(InstructionTypeMeter)
	w.u16(8)
	w.u32(i.MeterID)
}

func (i *InstructionMeter) MarshalJSON() ([]byte, error) {
	type plain InstructionMeter
	return object("OFPInstructionMeter", (*plain)(i), "type", InstructionTypeMeter, "len", 8)
}

// InstructionExperimenter is an experimenter instruction, kept raw.
type InstructionExperimenter struct {
	Experimenter uint32 `json:"experimenter"`
	Data         []byte `json:"data"`
}

func (i *InstructionExperimenter) appendTo(w *writer) {
	start := len(w.b)
	w.u16(InstructionTypeExperimenter)
	at := w.mark()
	w.u32(i.Experimenter)
	w.bytes(i.Data)
	w.fill(at, start, "experimenter instruction")
}

func (i *InstructionExperimenter) MarshalJSON() ([]byte, error) {
	type plain InstructionExperimenter
	return object("OFPInstructionExperimenter", (*plain)(i), "type", InstructionTypeExperimenter, "len", encodedLen(i))
}

// InstructionUnknown is an instruction of a type OpenFlow 1.3 does not
// define, kept raw.
type InstructionUnknown struct {
	Type uint16 `json:"type"`
	Data []byte `json:"data"`
}

func (i *InstructionUnknown) appendTo(w *writer) {
	start := len(w.b)
	w.u16(i.Type)
	at := w.mark()
	w.bytes(i.Data)
	w.fill(at, start, "instruction")
}

func (i *InstructionUnknown) MarshalJSON() ([]byte, error) {
	type plain InstructionUnknown
	return object("OFPInstructionUnknown", (*plain)(i), "len", encodedLen(i))
}

func appendInstructions(w *writer, is []Instruction) {
	for _, i := range is {
		i.appendTo(w)
	}
}

func decodeInstructions(r *reader) []Instruction {
	is := []Instruction{}
	for r.ok() && r.len() > 0 {
		is = append(is, decodeInstruction(r))
	}
	return is
}

func decodeInstruction(r *reader) Instruction {
	typ := r.u16()
	n := int(r.u16())
	if r.ok() && n < 4 {
		r.fail("instruction", ErrBadLength, "length %d below 4", n)
		return nil
	}
	p := r.sub("instruction", n-4)
	var i Instruction
	switch typ {
	case InstructionTypeGotoTable:
		i = &InstructionGotoTable{TableID: p.u8()}
		p.skip(3)
	case InstructionTypeWriteMetadata:
		p.skip(4)
		i = &InstructionWriteMetadata{Metadata: p.u64(), MetadataMask: p.u64()}
	case InstructionTypeWriteActions, InstructionTypeApplyActions, InstructionTypeClearActions:
		p.skip(4)
		i = &InstructionActions{Type: typ, Actions: decodeActions(p)}
	case InstructionTypeMeter:
		i = &InstructionMeter{MeterID: p.u32()}
	case InstructionTypeExperimenter:
		i = &InstructionExperimenter{Experimenter: p.u32(), Data: p.rest()}
	default:
		i = &InstructionUnknown{Type: typ, Data: p.rest()}
	}
	if p.ok() && p.len() != 0 {
		p.fail("instruction", ErrBadLength, "type %d: %d bytes beyond its fields", typ, p.len())
	}
	return i
}
