package ofp

// Flow statistics: the flow entries, or their totals, that match a
// filter (multipart MPFlow and MPAggregate).

// FlowStatsRequest asks for the flow entries matching the filter.
// AggregateStatsRequest has the same filter.
type FlowStatsRequest struct {
	Header
	Flags      uint16 `json:"flags"`
	TableID    uint8  `json:"table_id"`
	OutPort    uint32 `json:"out_port"`
	OutGroup   uint32 `json:"out_group"`
	Cookie     uint64 `json:"cookie"`
	CookieMask uint64 `json:"cookie_mask"`
	Match      Match  `json:"match"`
}

func (m *FlowStatsRequest) appendFilter(w *writer, typ uint16) {
	mpHead(w, typ, m.Flags)
	w.u8(m.TableID)
	w.pad(3)
	w.u32(m.OutPort)
	w.u32(m.OutGroup)
	w.pad(4)
	w.u64(m.Cookie)
	w.u64(m.CookieMask)
	m.Match.appendTo(w)
}

func (m *FlowStatsRequest) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.TableID = r.u8()
	r.skip(3)
	m.OutPort = r.u32()
	m.OutGroup = r.u32()
	r.skip(4)
	m.Cookie = r.u64()
	m.CookieMask = r.u64()
	m.Match = decodeMatch(r)
}

func (m *FlowStatsRequest) msgType() uint8                 { return TypeMultipartRequest }
func (m *FlowStatsRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *FlowStatsRequest) appendBody(w *writer)           { m.appendFilter(w, MPFlow) }
func (m *FlowStatsRequest) MarshalJSON() ([]byte, error) {
	type plain FlowStatsRequest
	return object("OFPFlowStatsRequest", (*plain)(m), "type", MPFlow)
}

// AggregateStatsRequest asks for totals over the flow entries matching
// the filter.
type AggregateStatsRequest struct {
	FlowStatsRequest
}

func (m *AggregateStatsRequest) appendBody(w *writer)           { m.appendFilter(w, MPAggregate) }
func (m *AggregateStatsRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *AggregateStatsRequest) MarshalJSON() ([]byte, error) {
	type plain FlowStatsRequest
	return object("OFPAggregateStatsRequest", (*plain)(&m.FlowStatsRequest), "type", MPAggregate)
}

// FlowStats is one flow entry of a FlowStatsReply.
type FlowStats struct {
	TableID      uint8         `json:"table_id"`
	DurationSec  uint32        `json:"duration_sec"`
	DurationNsec uint32        `json:"duration_nsec"`
	Priority     uint16        `json:"priority"`
	IdleTimeout  uint16        `json:"idle_timeout"`
	HardTimeout  uint16        `json:"hard_timeout"`
	Flags        uint16        `json:"flags"`
	Cookie       uint64        `json:"cookie"`
	PacketCount  uint64        `json:"packet_count"`
	ByteCount    uint64        `json:"byte_count"`
	Match        Match         `json:"match"`
	Instructions []Instruction `json:"instructions"`
}

func (s *FlowStats) appendTo(w *writer) {
	start := len(w.b)
	at := w.mark()
	w.u8(s.TableID)
	w.pad(1)
	w.u32(s.DurationSec)
	w.u32(s.DurationNsec)
	w.u16(s.Priority)
	w.u16(s.IdleTimeout)
	w.u16(s.HardTimeout)
	w.u16(s.Flags)
	w.pad(4)
	w.u64(s.Cookie)
	w.u64(s.PacketCount)
	w.u64(s.ByteCount)
	s.Match.appendTo(w)
	appendInstructions(w, s.Instructions)
	w.fill(at, start, "flow stats")
}

func (s *FlowStats) MarshalJSON() ([]byte, error) {
	type plain FlowStats
	p := *(*plain)(s)
	if p.Instructions == nil {
		p.Instructions = []Instruction{}
	}
	return object("OFPFlowStats", &p, "length", encodedLen(s))
}

// lengthPrefixed decodes a list of entries that each start with a 16-bit
// length counting the whole entry, giving decode a reader over the rest.
func lengthPrefixed(r *reader, what string, min int, decode func(p *reader)) {
	for r.ok() && r.len() > 0 {
		n := int(r.u16())
		if r.ok() && n < min {
			r.fail(what, ErrBadLength, "length %d below %d", n, min)
			return
		}
		p := r.sub(what, n-2)
		decode(p)
		if p.ok() && p.len() != 0 {
			p.fail(what, ErrBadLength, "%d bytes beyond its fields", p.len())
		}
	}
}

// FlowStatsReply answers a FlowStatsRequest.
type FlowStatsReply struct {
	Header
	Flags uint16      `json:"flags"`
	Body  []FlowStats `json:"body"`
}

func (m *FlowStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *FlowStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *FlowStatsReply) appendBody(w *writer) {
	mpHead(w, MPFlow, m.Flags)
	for i := range m.Body {
		m.Body[i].appendTo(w)
	}
}

func (m *FlowStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = []FlowStats{}
	lengthPrefixed(r, "flow stats", 56, func(p *reader) {
		s := FlowStats{TableID: p.u8()}
		p.skip(1)
		s.DurationSec = p.u32()
		s.DurationNsec = p.u32()
		s.Priority = p.u16()
		s.IdleTimeout = p.u16()
		s.HardTimeout = p.u16()
		s.Flags = p.u16()
		p.skip(4)
		s.Cookie = p.u64()
		s.PacketCount = p.u64()
		s.ByteCount = p.u64()
		s.Match = decodeMatch(p)
		s.Instructions = decodeInstructions(p)
		m.Body = append(m.Body, s)
	})
}

func (m *FlowStatsReply) MarshalJSON() ([]byte, error) {
	type plain FlowStatsReply
	p := *(*plain)(m)
	if p.Body == nil {
		p.Body = []FlowStats{}
	}
	return object("OFPFlowStatsReply", &p, "type", MPFlow)
}

// AggregateStats totals the flow entries an AggregateStatsRequest matched.
type AggregateStats struct {
	PacketCount uint64 `json:"packet_count"`
	ByteCount   uint64 `json:"byte_count"`
	FlowCount   uint32 `json:"flow_count"`
}

func (s AggregateStats) MarshalJSON() ([]byte, error) {
	type plain AggregateStats
	return object("OFPAggregateStats", plain(s))
}

// AggregateStatsReply answers an AggregateStatsRequest.
type AggregateStatsReply struct {
	Header
	Flags uint16         `json:"flags"`
	Body  AggregateStats `json:"body"`
}

func (m *AggregateStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *AggregateStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *AggregateStatsReply) appendBody(w *writer) {
	mpHead(w, MPAggregate, m.Flags)
	w.u64(m.Body.PacketCount)
	w.u64(m.Body.ByteCount)
	w.u32(m.Body.FlowCount)
	w.pad(4)
}

func (m *AggregateStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = AggregateStats{PacketCount: r.u64(), ByteCount: r.u64(), FlowCount: r.u32()}
	r.skip(4)
}

func (m *AggregateStatsReply) MarshalJSON() ([]byte, error) {
	type plain AggregateStatsReply
	return object("OFPAggregateStatsReply", (*plain)(m), "type", MPAggregate)
}
