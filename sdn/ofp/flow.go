package ofp

// This file holds the flow-table messages: FLOW_MOD, FLOW_REMOVED,
// PACKET_IN and PACKET_OUT.

// Flow mod commands (ofp_flow_mod_command).
const (
	FlowAdd          = 0
	FlowModify       = 1
	FlowModifyStrict = 2
	FlowDelete       = 3
	FlowDeleteStrict = 4
)

// Flow mod flags (ofp_flow_mod_flags).
const (
	FlowFlagSendFlowRem  = 1 << 0
	FlowFlagCheckOverlap = 1 << 1
	FlowFlagResetCounts  = 1 << 2
	FlowFlagNoPktCounts  = 1 << 3
	FlowFlagNoBytCounts  = 1 << 4
)

// FlowMod adds, changes or deletes flow entries. For an add, set BufferID
// to NoBuffer and, unless deleting, OutPort/OutGroup to PortAny/GroupAny
// (NewFlowMod does both).
type FlowMod struct {
	Header
	Cookie       uint64        `json:"cookie"`
	CookieMask   uint64        `json:"cookie_mask"`
	TableID      uint8         `json:"table_id"`
	Command      uint8         `json:"command"`
	IdleTimeout  uint16        `json:"idle_timeout"`
	HardTimeout  uint16        `json:"hard_timeout"`
	Priority     uint16        `json:"priority"`
	BufferID     uint32        `json:"buffer_id"`
	OutPort      uint32        `json:"out_port"`
	OutGroup     uint32        `json:"out_group"`
	Flags        uint16        `json:"flags"`
	Match        Match         `json:"match"`
	Instructions []Instruction `json:"instructions"`
}

// NewFlowMod is an ADD of a flow entry with the usual wildcards for the
// fields an add ignores.
func NewFlowMod(table uint8, priority uint16, m Match, is ...Instruction) *FlowMod {
	return &FlowMod{
		Command: FlowAdd, TableID: table, Priority: priority,
		BufferID: NoBuffer, OutPort: PortAny, OutGroup: GroupAny,
		Match: m, Instructions: is,
	}
}

func (m *FlowMod) msgType() uint8                 { return TypeFlowMod }
func (m *FlowMod) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *FlowMod) appendBody(w *writer) {
	w.u64(m.Cookie)
	w.u64(m.CookieMask)
	w.u8(m.TableID)
	w.u8(m.Command)
	w.u16(m.IdleTimeout)
	w.u16(m.HardTimeout)
	w.u16(m.Priority)
	w.u32(m.BufferID)
	w.u32(m.OutPort)
	w.u32(m.OutGroup)
	w.u16(m.Flags)
	w.pad(2)
	m.Match.appendTo(w)
	appendInstructions(w, m.Instructions)
}

func (m *FlowMod) decodeBody(r *reader) {
	m.Cookie = r.u64()
	m.CookieMask = r.u64()
	m.TableID = r.u8()
	m.Command = r.u8()
	m.IdleTimeout = r.u16()
	m.HardTimeout = r.u16()
	m.Priority = r.u16()
	m.BufferID = r.u32()
	m.OutPort = r.u32()
	m.OutGroup = r.u32()
	m.Flags = r.u16()
	r.skip(2)
	m.Match = decodeMatch(r)
	m.Instructions = decodeInstructions(r)
}

func (m *FlowMod) MarshalJSON() ([]byte, error) {
	type plain FlowMod
	p := *(*plain)(m)
	if p.Instructions == nil {
		p.Instructions = []Instruction{}
	}
	return object("OFPFlowMod", &p)
}

// FlowRemoved reports a flow entry that expired or was deleted, when the
// entry had FlowFlagSendFlowRem.
type FlowRemoved struct {
	Header
	Cookie       uint64 `json:"cookie"`
	Priority     uint16 `json:"priority"`
	Reason       uint8  `json:"reason"`
	TableID      uint8  `json:"table_id"`
	DurationSec  uint32 `json:"duration_sec"`
	DurationNsec uint32 `json:"duration_nsec"`
	IdleTimeout  uint16 `json:"idle_timeout"`
	HardTimeout  uint16 `json:"hard_timeout"`
	PacketCount  uint64 `json:"packet_count"`
	ByteCount    uint64 `json:"byte_count"`
	Match        Match  `json:"match"`
}

func (m *FlowRemoved) msgType() uint8                 { return TypeFlowRemoved }
func (m *FlowRemoved) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *FlowRemoved) appendBody(w *writer) {
	w.u64(m.Cookie)
	w.u16(m.Priority)
	w.u8(m.Reason)
	w.u8(m.TableID)
	w.u32(m.DurationSec)
	w.u32(m.DurationNsec)
	w.u16(m.IdleTimeout)
	w.u16(m.HardTimeout)
	w.u64(m.PacketCount)
	w.u64(m.ByteCount)
	m.Match.appendTo(w)
}

func (m *FlowRemoved) decodeBody(r *reader) {
	m.Cookie = r.u64()
	m.Priority = r.u16()
	m.Reason = r.u8()
	m.TableID = r.u8()
	m.DurationSec = r.u32()
	m.DurationNsec = r.u32()
	m.IdleTimeout = r.u16()
	m.HardTimeout = r.u16()
	m.PacketCount = r.u64()
	m.ByteCount = r.u64()
	m.Match = decodeMatch(r)
}

func (m *FlowRemoved) MarshalJSON() ([]byte, error) {
	type plain FlowRemoved
	return object("OFPFlowRemoved", (*plain)(m))
}

// Packet-in reasons (ofp_packet_in_reason).
const (
	PacketInNoMatch    = 0
	PacketInAction     = 1
	PacketInInvalidTTL = 2
)

// PacketIn carries a packet (or its first bytes) to the controller. The
// match holds the pipeline fields, in_port first of all.
type PacketIn struct {
	Header
	BufferID uint32 `json:"buffer_id"`
	TotalLen uint16 `json:"total_len"`
	Reason   uint8  `json:"reason"`
	TableID  uint8  `json:"table_id"`
	Cookie   uint64 `json:"cookie"`
	Match    Match  `json:"match"`
	Data     []byte `json:"data"`
}

func (m *PacketIn) msgType() uint8                 { return TypePacketIn }
func (m *PacketIn) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *PacketIn) appendBody(w *writer) {
	w.u32(m.BufferID)
	w.u16(m.TotalLen)
	w.u8(m.Reason)
	w.u8(m.TableID)
	w.u64(m.Cookie)
	m.Match.appendTo(w)
	w.pad(2) // aligns the Ethernet payload's IP header
	w.bytes(m.Data)
}

func (m *PacketIn) decodeBody(r *reader) {
	m.BufferID = r.u32()
	m.TotalLen = r.u16()
	m.Reason = r.u8()
	m.TableID = r.u8()
	m.Cookie = r.u64()
	m.Match = decodeMatch(r)
	r.skip(2)
	m.Data = r.rest()
}

// InPort is the packet's in_port match field, if present.
func (m *PacketIn) InPort() (uint32, bool) {
	for _, f := range m.Match.Fields {
		if f.ID == FieldInPort && len(f.Value) == 4 && f.Mask == nil {
			return uint32(f.Value[0])<<24 | uint32(f.Value[1])<<16 | uint32(f.Value[2])<<8 | uint32(f.Value[3]), true
		}
	}
	return 0, false
}

func (m *PacketIn) MarshalJSON() ([]byte, error) {
	type plain PacketIn
	return object("OFPPacketIn", (*plain)(m))
}

// PacketOut sends a packet (Data, or the buffered BufferID) through
// Actions; InPort is the port it is deemed to come from (PortController
// if none).
type PacketOut struct {
	Header
	BufferID uint32   `json:"buffer_id"`
	InPort   uint32   `json:"in_port"`
	Actions  []Action `json:"actions"`
	Data     []byte   `json:"data"`
}

func (m *PacketOut) msgType() uint8                 { return TypePacketOut }
func (m *PacketOut) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *PacketOut) appendBody(w *writer) {
	w.u32(m.BufferID)
	w.u32(m.InPort)
	at := w.mark()
	w.pad(6)
	start := len(w.b)
	appendActions(w, m.Actions)
	w.fill(at, start, "packet_out actions")
	w.bytes(m.Data)
}

func (m *PacketOut) decodeBody(r *reader) {
	m.BufferID = r.u32()
	m.InPort = r.u32()
	n := int(r.u16())
	r.skip(6)
	m.Actions = decodeActions(r.sub("packet_out actions", n))
	m.Data = r.rest()
}

func (m *PacketOut) MarshalJSON() ([]byte, error) {
	type plain PacketOut
	w := &writer{}
	appendActions(w, m.Actions)
	p := *(*plain)(m)
	if p.Actions == nil {
		p.Actions = []Action{}
	}
	return object("OFPPacketOut", &p, "actions_len", len(w.b))
}
