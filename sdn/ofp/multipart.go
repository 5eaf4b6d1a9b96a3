package ofp

// Multipart (statistics) requests and replies. Each request/reply pair has
// its own Go types; bodies of types not modelled here (table features)
// are kept raw in MultipartRequestRaw/MultipartReplyRaw.

// Multipart types (ofp_multipart_type).
const (
	MPDesc          = 0
	MPFlow          = 1
	MPAggregate     = 2
	MPTable         = 3
	MPPortStats     = 4
	MPQueue         = 5
	MPGroup         = 6
	MPGroupDesc     = 7
	MPGroupFeatures = 8
	MPMeter         = 9
	MPMeterConfig   = 10
	MPMeterFeatures = 11
	MPTableFeatures = 12
	MPPortDesc      = 13
	MPExperimenter  = 0xffff
)

// MultipartFlagMore (in Flags) says more replies of the same xid follow.
const MultipartFlagMore = 1

func newMultipart(reply bool, body []byte) Message {
	if len(body) < 2 {
		// Let decodeBody report the truncation.
		if reply {
			return &MultipartReplyRaw{}
		}
		return &MultipartRequestRaw{}
	}
	t := uint16(body[0])<<8 | uint16(body[1])
	if reply {
		switch t {
		case MPDesc:
			return &DescStatsReply{}
		case MPFlow:
			return &FlowStatsReply{}
		case MPAggregate:
			return &AggregateStatsReply{}
		case MPTable:
			return &TableStatsReply{}
		case MPPortStats:
			return &PortStatsReply{}
		case MPQueue:
			return &QueueStatsReply{}
		case MPGroup:
			return &GroupStatsReply{}
		case MPGroupDesc:
			return &GroupDescStatsReply{}
		case MPGroupFeatures:
			return &GroupFeaturesStatsReply{}
		case MPMeter:
			return &MeterStatsReply{}
		case MPMeterConfig:
			return &MeterConfigStatsReply{}
		case MPMeterFeatures:
			return &MeterFeaturesStatsReply{}
		case MPPortDesc:
			return &PortDescStatsReply{}
		case MPExperimenter:
			return &ExperimenterStatsReply{}
		}
		return &MultipartReplyRaw{}
	}
	switch t {
	case MPDesc, MPTable, MPGroupDesc, MPGroupFeatures, MPMeterFeatures, MPPortDesc:
		return &StatsRequest{}
	case MPFlow:
		return &FlowStatsRequest{}
	case MPAggregate:
		return &AggregateStatsRequest{}
	case MPPortStats:
		return &PortStatsRequest{}
	case MPQueue:
		return &QueueStatsRequest{}
	case MPGroup:
		return &GroupStatsRequest{}
	case MPMeter, MPMeterConfig:
		return &MeterStatsRequest{}
	case MPExperimenter:
		return &ExperimenterStatsRequest{}
	}
	return &MultipartRequestRaw{}
}

// mpHead writes the multipart header that precedes every body.
func mpHead(w *writer, typ, flags uint16) {
	w.u16(typ)
	w.u16(flags)
	w.pad(4)
}

// readMPHead reads the multipart header, returning type and flags.
func readMPHead(r *reader) (uint16, uint16) {
	t, f := r.u16(), r.u16()
	r.skip(4)
	return t, f
}

// --- requests ---

// StatsRequest is a multipart request without a body: MPDesc, MPTable,
// MPGroupDesc, MPGroupFeatures, MPMeterFeatures or MPPortDesc.
type StatsRequest struct {
	Header
	MPType uint16
	Flags  uint16
}

var emptyRequestNames = map[uint16]string{
	MPDesc:          "OFPDescStatsRequest",
	MPTable:         "OFPTableStatsRequest",
	MPGroupDesc:     "OFPGroupDescStatsRequest",
	MPGroupFeatures: "OFPGroupFeaturesStatsRequest",
	MPMeterFeatures: "OFPMeterFeaturesStatsRequest",
	MPPortDesc:      "OFPPortDescStatsRequest",
}

func (m *StatsRequest) msgType() uint8                 { return TypeMultipartRequest }
func (m *StatsRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *StatsRequest) appendBody(w *writer)           { mpHead(w, m.MPType, m.Flags) }
func (m *StatsRequest) decodeBody(r *reader)           { m.MPType, m.Flags = readMPHead(r) }
func (m *StatsRequest) MarshalJSON() ([]byte, error) {
	name, ok := emptyRequestNames[m.MPType]
	if !ok {
		name = "OFPMultipartRequest"
	}
	return object(name, nil, "type", m.MPType, "flags", m.Flags)
}

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

// PortStatsRequest asks for the counters of a port (PortAny for all).
type PortStatsRequest struct {
	Header
	Flags  uint16 `json:"flags"`
	PortNo uint32 `json:"port_no"`
}

func (m *PortStatsRequest) msgType() uint8                 { return TypeMultipartRequest }
func (m *PortStatsRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *PortStatsRequest) appendBody(w *writer) {
	mpHead(w, MPPortStats, m.Flags)
	w.u32(m.PortNo)
	w.pad(4)
}

func (m *PortStatsRequest) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.PortNo = r.u32()
	r.skip(4)
}

func (m *PortStatsRequest) MarshalJSON() ([]byte, error) {
	type plain PortStatsRequest
	return object("OFPPortStatsRequest", (*plain)(m), "type", MPPortStats)
}

// QueueStatsRequest asks for queue counters (PortAny / QueueAll for all).
type QueueStatsRequest struct {
	Header
	Flags   uint16 `json:"flags"`
	PortNo  uint32 `json:"port_no"`
	QueueID uint32 `json:"queue_id"`
}

// QueueAll as a queue id means every queue.
const QueueAll = 0xffffffff

func (m *QueueStatsRequest) msgType() uint8                 { return TypeMultipartRequest }
func (m *QueueStatsRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *QueueStatsRequest) appendBody(w *writer) {
	mpHead(w, MPQueue, m.Flags)
	w.u32(m.PortNo)
	w.u32(m.QueueID)
}

func (m *QueueStatsRequest) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.PortNo = r.u32()
	m.QueueID = r.u32()
}

func (m *QueueStatsRequest) MarshalJSON() ([]byte, error) {
	type plain QueueStatsRequest
	return object("OFPQueueStatsRequest", (*plain)(m), "type", MPQueue)
}

// GroupStatsRequest asks for group counters (GroupAll for all).
type GroupStatsRequest struct {
	Header
	Flags   uint16 `json:"flags"`
	GroupID uint32 `json:"group_id"`
}

func (m *GroupStatsRequest) msgType() uint8                 { return TypeMultipartRequest }
func (m *GroupStatsRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *GroupStatsRequest) appendBody(w *writer) {
	mpHead(w, MPGroup, m.Flags)
	w.u32(m.GroupID)
	w.pad(4)
}

func (m *GroupStatsRequest) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.GroupID = r.u32()
	r.skip(4)
}

func (m *GroupStatsRequest) MarshalJSON() ([]byte, error) {
	type plain GroupStatsRequest
	return object("OFPGroupStatsRequest", (*plain)(m), "type", MPGroup)
}

// MeterStatsRequest asks for meter counters (MPType MPMeter) or meter
// configuration (MPMeterConfig) of a meter, MeterAll for all.
type MeterStatsRequest struct {
	Header
	MPType  uint16 `json:"-"`
	Flags   uint16 `json:"flags"`
	MeterID uint32 `json:"meter_id"`
}

func (m *MeterStatsRequest) msgType() uint8                 { return TypeMultipartRequest }
func (m *MeterStatsRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *MeterStatsRequest) appendBody(w *writer) {
	mpHead(w, m.MPType, m.Flags)
	w.u32(m.MeterID)
	w.pad(4)
}

func (m *MeterStatsRequest) decodeBody(r *reader) {
	m.MPType, m.Flags = readMPHead(r)
	m.MeterID = r.u32()
	r.skip(4)
}

func (m *MeterStatsRequest) MarshalJSON() ([]byte, error) {
	type plain MeterStatsRequest
	name := "OFPMeterStatsRequest"
	if m.MPType == MPMeterConfig {
		name = "OFPMeterConfigStatsRequest"
	}
	return object(name, (*plain)(m), "type", m.MPType)
}

// ExperimenterStatsRequest is an experimenter multipart request, kept raw.
type ExperimenterStatsRequest struct {
	Header
	Flags        uint16 `json:"flags"`
	Experimenter uint32 `json:"experimenter"`
	ExpType      uint32 `json:"exp_type"`
	Data         []byte `json:"data"`
}

func (m *ExperimenterStatsRequest) msgType() uint8                 { return TypeMultipartRequest }
func (m *ExperimenterStatsRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *ExperimenterStatsRequest) appendBody(w *writer) {
	mpHead(w, MPExperimenter, m.Flags)
	w.u32(m.Experimenter)
	w.u32(m.ExpType)
	w.bytes(m.Data)
}

func (m *ExperimenterStatsRequest) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Experimenter = r.u32()
	m.ExpType = r.u32()
	m.Data = r.rest()
}

func (m *ExperimenterStatsRequest) MarshalJSON() ([]byte, error) {
	type plain ExperimenterStatsRequest
	return object("OFPExperimenterStatsRequest", (*plain)(m), "type", MPExperimenter)
}

// MultipartRequestRaw is a multipart request whose body this package does
// not model (such as table features), kept raw.
type MultipartRequestRaw struct {
	Header
	MPType uint16 `json:"type"`
	Flags  uint16 `json:"flags"`
	Body   []byte `json:"body"`
}

func (m *MultipartRequestRaw) msgType() uint8                 { return TypeMultipartRequest }
func (m *MultipartRequestRaw) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *MultipartRequestRaw) appendBody(w *writer) {
	mpHead(w, m.MPType, m.Flags)
	w.bytes(m.Body)
}

func (m *MultipartRequestRaw) decodeBody(r *reader) {
	m.MPType, m.Flags = readMPHead(r)
	m.Body = r.rest()
}

func (m *MultipartRequestRaw) MarshalJSON() ([]byte, error) {
	type plain MultipartRequestRaw
	return object("OFPMultipartRequest", (*plain)(m))
}

// --- replies ---

// MultipartReplyRaw is a multipart reply whose body this package does not
// model (such as table features), kept raw.
type MultipartReplyRaw struct {
	Header
	MPType uint16 `json:"type"`
	Flags  uint16 `json:"flags"`
	Body   []byte `json:"body"`
}

func (m *MultipartReplyRaw) msgType() uint8                 { return TypeMultipartReply }
func (m *MultipartReplyRaw) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *MultipartReplyRaw) appendBody(w *writer) {
	mpHead(w, m.MPType, m.Flags)
	w.bytes(m.Body)
}

func (m *MultipartReplyRaw) decodeBody(r *reader) {
	m.MPType, m.Flags = readMPHead(r)
	m.Body = r.rest()
}

func (m *MultipartReplyRaw) MarshalJSON() ([]byte, error) {
	type plain MultipartReplyRaw
	return object("OFPMultipartReply", (*plain)(m))
}

// DescStats describes the switch (ofp_desc).
type DescStats struct {
	MfrDesc   string `json:"mfr_desc"`
	HWDesc    string `json:"hw_desc"`
	SWDesc    string `json:"sw_desc"`
	SerialNum string `json:"serial_num"`
	DPDesc    string `json:"dp_desc"`
}

func (d DescStats) MarshalJSON() ([]byte, error) {
	type plain DescStats
	return object("OFPDescStats", plain(d))
}

// DescStatsReply answers an MPDesc request.
type DescStatsReply struct {
	Header
	Flags uint16    `json:"flags"`
	Body  DescStats `json:"body"`
}

func (m *DescStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *DescStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *DescStatsReply) appendBody(w *writer) {
	mpHead(w, MPDesc, m.Flags)
	d := &m.Body
	w.str(d.MfrDesc, 256)
	w.str(d.HWDesc, 256)
	w.str(d.SWDesc, 256)
	w.str(d.SerialNum, 32)
	w.str(d.DPDesc, 256)
}

func (m *DescStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = DescStats{MfrDesc: r.str(256), HWDesc: r.str(256), SWDesc: r.str(256), SerialNum: r.str(32), DPDesc: r.str(256)}
}

func (m *DescStatsReply) MarshalJSON() ([]byte, error) {
	type plain DescStatsReply
	return object("OFPDescStatsReply", (*plain)(m), "type", MPDesc)
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

// TableStats counts lookups in one table.
type TableStats struct {
	TableID      uint8  `json:"table_id"`
	ActiveCount  uint32 `json:"active_count"`
	LookupCount  uint64 `json:"lookup_count"`
	MatchedCount uint64 `json:"matched_count"`
}

func (s TableStats) MarshalJSON() ([]byte, error) {
	type plain TableStats
	return object("OFPTableStats", plain(s))
}

// TableStatsReply answers an MPTable request.
type TableStatsReply struct {
	Header
	Flags uint16       `json:"flags"`
	Body  []TableStats `json:"body"`
}

func (m *TableStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *TableStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *TableStatsReply) appendBody(w *writer) {
	mpHead(w, MPTable, m.Flags)
	for _, s := range m.Body {
		w.u8(s.TableID)
		w.pad(3)
		w.u32(s.ActiveCount)
		w.u64(s.LookupCount)
		w.u64(s.MatchedCount)
	}
}

func (m *TableStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = []TableStats{}
	for r.ok() && r.len() > 0 {
		s := TableStats{TableID: r.u8()}
		r.skip(3)
		s.ActiveCount = r.u32()
		s.LookupCount = r.u64()
		s.MatchedCount = r.u64()
		m.Body = append(m.Body, s)
	}
}

func (m *TableStatsReply) MarshalJSON() ([]byte, error) {
	type plain TableStatsReply
	return object("OFPTableStatsReply", (*plain)(m), "type", MPTable)
}

// PortStats holds the counters of one port.
type PortStats struct {
	PortNo       uint32 `json:"port_no"`
	RxPackets    uint64 `json:"rx_packets"`
	TxPackets    uint64 `json:"tx_packets"`
	RxBytes      uint64 `json:"rx_bytes"`
	TxBytes      uint64 `json:"tx_bytes"`
	RxDropped    uint64 `json:"rx_dropped"`
	TxDropped    uint64 `json:"tx_dropped"`
	RxErrors     uint64 `json:"rx_errors"`
	TxErrors     uint64 `json:"tx_errors"`
	RxFrameErr   uint64 `json:"rx_frame_err"`
	RxOverErr    uint64 `json:"rx_over_err"`
	RxCRCErr     uint64 `json:"rx_crc_err"`
	Collisions   uint64 `json:"collisions"`
	DurationSec  uint32 `json:"duration_sec"`
	DurationNsec uint32 `json:"duration_nsec"`
}

func (s *PortStats) counters() []*uint64 {
	return []*uint64{&s.RxPackets, &s.TxPackets, &s.RxBytes, &s.TxBytes, &s.RxDropped, &s.TxDropped,
		&s.RxErrors, &s.TxErrors, &s.RxFrameErr, &s.RxOverErr, &s.RxCRCErr, &s.Collisions}
}

func (s PortStats) MarshalJSON() ([]byte, error) {
	type plain PortStats
	return object("OFPPortStats", plain(s))
}

// PortStatsReply answers a PortStatsRequest.
type PortStatsReply struct {
	Header
	Flags uint16      `json:"flags"`
	Body  []PortStats `json:"body"`
}

func (m *PortStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *PortStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *PortStatsReply) appendBody(w *writer) {
	mpHead(w, MPPortStats, m.Flags)
	for i := range m.Body {
		s := &m.Body[i]
		w.u32(s.PortNo)
		w.pad(4)
		for _, c := range s.counters() {
			w.u64(*c)
		}
		w.u32(s.DurationSec)
		w.u32(s.DurationNsec)
	}
}

func (m *PortStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = []PortStats{}
	for r.ok() && r.len() > 0 {
		s := PortStats{PortNo: r.u32()}
		r.skip(4)
		for _, c := range s.counters() {
			*c = r.u64()
		}
		s.DurationSec = r.u32()
		s.DurationNsec = r.u32()
		m.Body = append(m.Body, s)
	}
}

func (m *PortStatsReply) MarshalJSON() ([]byte, error) {
	type plain PortStatsReply
	return object("OFPPortStatsReply", (*plain)(m), "type", MPPortStats)
}

// QueueStats holds the counters of one queue.
type QueueStats struct {
	PortNo       uint32 `json:"port_no"`
	QueueID      uint32 `json:"queue_id"`
	TxBytes      uint64 `json:"tx_bytes"`
	TxPackets    uint64 `json:"tx_packets"`
	TxErrors     uint64 `json:"tx_errors"`
	DurationSec  uint32 `json:"duration_sec"`
	DurationNsec uint32 `json:"duration_nsec"`
}

func (s QueueStats) MarshalJSON() ([]byte, error) {
	type plain QueueStats
	return object("OFPQueueStats", plain(s))
}

// QueueStatsReply answers a QueueStatsRequest.
type QueueStatsReply struct {
	Header
	Flags uint16       `json:"flags"`
	Body  []QueueStats `json:"body"`
}

func (m *QueueStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *QueueStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *QueueStatsReply) appendBody(w *writer) {
	mpHead(w, MPQueue, m.Flags)
	for _, s := range m.Body {
		w.u32(s.PortNo)
		w.u32(s.QueueID)
		w.u64(s.TxBytes)
		w.u64(s.TxPackets)
		w.u64(s.TxErrors)
		w.u32(s.DurationSec)
		w.u32(s.DurationNsec)
	}
}

func (m *QueueStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = []QueueStats{}
	for r.ok() && r.len() > 0 {
		m.Body = append(m.Body, QueueStats{PortNo: r.u32(), QueueID: r.u32(), TxBytes: r.u64(),
			TxPackets: r.u64(), TxErrors: r.u64(), DurationSec: r.u32(), DurationNsec: r.u32()})
	}
}

func (m *QueueStatsReply) MarshalJSON() ([]byte, error) {
	type plain QueueStatsReply
	return object("OFPQueueStatsReply", (*plain)(m), "type", MPQueue)
}

// Counter is a packet and byte count pair (of a bucket or meter band).
type Counter struct {
	PacketCount uint64
	ByteCount   uint64
}

// GroupStats holds the counters of one group.
type GroupStats struct {
	GroupID      uint32    `json:"group_id"`
	RefCount     uint32    `json:"ref_count"`
	PacketCount  uint64    `json:"packet_count"`
	ByteCount    uint64    `json:"byte_count"`
	DurationSec  uint32    `json:"duration_sec"`
	DurationNsec uint32    `json:"duration_nsec"`
	BucketStats  []Counter `json:"-"`
}

func (s *GroupStats) appendTo(w *writer) {
	start := len(w.b)
	at := w.mark()
	w.pad(2)
	w.u32(s.GroupID)
	w.u32(s.RefCount)
	w.pad(4)
	w.u64(s.PacketCount)
	w.u64(s.ByteCount)
	w.u32(s.DurationSec)
	w.u32(s.DurationNsec)
	for _, c := range s.BucketStats {
		w.u64(c.PacketCount)
		w.u64(c.ByteCount)
	}
	w.fill(at, start, "group stats")
}

func (s *GroupStats) MarshalJSON() ([]byte, error) {
	type plain GroupStats
	bs := []any{}
	for _, c := range s.BucketStats {
		bs = append(bs, map[string]any{"OFPBucketCounter": map[string]uint64{"packet_count": c.PacketCount, "byte_count": c.ByteCount}})
	}
	return object("OFPGroupStats", (*plain)(s), "length", encodedLen(s), "bucket_stats", bs)
}

// GroupStatsReply answers a GroupStatsRequest.
type GroupStatsReply struct {
	Header
	Flags uint16       `json:"flags"`
	Body  []GroupStats `json:"body"`
}

func (m *GroupStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *GroupStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *GroupStatsReply) appendBody(w *writer) {
	mpHead(w, MPGroup, m.Flags)
	for i := range m.Body {
		m.Body[i].appendTo(w)
	}
}

func (m *GroupStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = []GroupStats{}
	lengthPrefixed(r, "group stats", 40, func(p *reader) {
		p.skip(2)
		s := GroupStats{GroupID: p.u32(), RefCount: p.u32()}
		p.skip(4)
		s.PacketCount = p.u64()
		s.ByteCount = p.u64()
		s.DurationSec = p.u32()
		s.DurationNsec = p.u32()
		for p.ok() && p.len() > 0 {
			s.BucketStats = append(s.BucketStats, Counter{PacketCount: p.u64(), ByteCount: p.u64()})
		}
		m.Body = append(m.Body, s)
	})
}

func (m *GroupStatsReply) MarshalJSON() ([]byte, error) {
	type plain GroupStatsReply
	return object("OFPGroupStatsReply", (*plain)(m), "type", MPGroup)
}

// GroupDesc describes one group.
type GroupDesc struct {
	GroupType uint8    `json:"type"`
	GroupID   uint32   `json:"group_id"`
	Buckets   []Bucket `json:"buckets"`
}

func (d *GroupDesc) appendTo(w *writer) {
	start := len(w.b)
	at := w.mark()
	w.u8(d.GroupType)
	w.pad(1)
	w.u32(d.GroupID)
	appendBuckets(w, d.Buckets)
	w.fill(at, start, "group desc")
}

func (d *GroupDesc) MarshalJSON() ([]byte, error) {
	type plain GroupDesc
	return object("OFPGroupDescStats", (*plain)(d), "length", encodedLen(d))
}

// GroupDescStatsReply answers an MPGroupDesc request.
type GroupDescStatsReply struct {
	Header
	Flags uint16      `json:"flags"`
	Body  []GroupDesc `json:"body"`
}

func (m *GroupDescStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *GroupDescStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *GroupDescStatsReply) appendBody(w *writer) {
	mpHead(w, MPGroupDesc, m.Flags)
	for i := range m.Body {
		m.Body[i].appendTo(w)
	}
}

func (m *GroupDescStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = []GroupDesc{}
	lengthPrefixed(r, "group desc", 8, func(p *reader) {
		d := GroupDesc{GroupType: p.u8()}
		p.skip(1)
		d.GroupID = p.u32()
		d.Buckets = decodeBuckets(p)
		m.Body = append(m.Body, d)
	})
}

func (m *GroupDescStatsReply) MarshalJSON() ([]byte, error) {
	type plain GroupDescStatsReply
	return object("OFPGroupDescStatsReply", (*plain)(m), "type", MPGroupDesc)
}

// GroupFeatures describes the switch's group support.
type GroupFeatures struct {
	Types        uint32    `json:"types"`
	Capabilities uint32    `json:"capabilities"`
	MaxGroups    [4]uint32 `json:"max_groups"`
	Actions      [4]uint32 `json:"actions"`
}

func (f GroupFeatures) MarshalJSON() ([]byte, error) {
	type plain GroupFeatures
	return object("OFPGroupFeaturesStats", plain(f))
}

// GroupFeaturesStatsReply answers an MPGroupFeatures request.
type GroupFeaturesStatsReply struct {
	Header
	Flags uint16        `json:"flags"`
	Body  GroupFeatures `json:"body"`
}

func (m *GroupFeaturesStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *GroupFeaturesStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *GroupFeaturesStatsReply) appendBody(w *writer) {
	mpHead(w, MPGroupFeatures, m.Flags)
	w.u32(m.Body.Types)
	w.u32(m.Body.Capabilities)
	for _, v := range append(m.Body.MaxGroups[:], m.Body.Actions[:]...) {
		w.u32(v)
	}
}

func (m *GroupFeaturesStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body.Types = r.u32()
	m.Body.Capabilities = r.u32()
	for i := range m.Body.MaxGroups {
		m.Body.MaxGroups[i] = r.u32()
	}
	for i := range m.Body.Actions {
		m.Body.Actions[i] = r.u32()
	}
}

func (m *GroupFeaturesStatsReply) MarshalJSON() ([]byte, error) {
	type plain GroupFeaturesStatsReply
	return object("OFPGroupFeaturesStatsReply", (*plain)(m), "type", MPGroupFeatures)
}

// MeterStats holds the counters of one meter.
type MeterStats struct {
	MeterID       uint32    `json:"meter_id"`
	FlowCount     uint32    `json:"flow_count"`
	PacketInCount uint64    `json:"packet_in_count"`
	ByteInCount   uint64    `json:"byte_in_count"`
	DurationSec   uint32    `json:"duration_sec"`
	DurationNsec  uint32    `json:"duration_nsec"`
	BandStats     []Counter `json:"-"`
}

func (s *MeterStats) appendTo(w *writer) {
	start := len(w.b)
	w.u32(s.MeterID)
	at := w.mark()
	w.pad(6)
	w.u32(s.FlowCount)
	w.u64(s.PacketInCount)
	w.u64(s.ByteInCount)
	w.u32(s.DurationSec)
	w.u32(s.DurationNsec)
	for _, c := range s.BandStats {
		w.u64(c.PacketCount)
		w.u64(c.ByteCount)
	}
	w.fill(at, start, "meter stats")
}

func (s *MeterStats) MarshalJSON() ([]byte, error) {
	type plain MeterStats
	bs := []any{}
	for _, c := range s.BandStats {
		bs = append(bs, map[string]any{"OFPMeterBandStats": map[string]uint64{"packet_band_count": c.PacketCount, "byte_band_count": c.ByteCount}})
	}
	return object("OFPMeterStats", (*plain)(s), "len", encodedLen(s), "band_stats", bs)
}

// MeterStatsReply answers a MeterStatsRequest of type MPMeter.
type MeterStatsReply struct {
	Header
	Flags uint16       `json:"flags"`
	Body  []MeterStats `json:"body"`
}

func (m *MeterStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *MeterStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *MeterStatsReply) appendBody(w *writer) {
	mpHead(w, MPMeter, m.Flags)
	for i := range m.Body {
		m.Body[i].appendTo(w)
	}
}

func (m *MeterStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = []MeterStats{}
	for r.ok() && r.len() > 0 {
		s := MeterStats{MeterID: r.u32()}
		n := int(r.u16())
		if r.ok() && n < 40 {
			r.fail("meter stats", ErrBadLength, "length %d below 40", n)
			return
		}
		p := r.sub("meter stats", n-6)
		p.skip(6)
		s.FlowCount = p.u32()
		s.PacketInCount = p.u64()
		s.ByteInCount = p.u64()
		s.DurationSec = p.u32()
		s.DurationNsec = p.u32()
		for p.ok() && p.len() > 0 {
			s.BandStats = append(s.BandStats, Counter{PacketCount: p.u64(), ByteCount: p.u64()})
		}
		m.Body = append(m.Body, s)
	}
}

func (m *MeterStatsReply) MarshalJSON() ([]byte, error) {
	type plain MeterStatsReply
	return object("OFPMeterStatsReply", (*plain)(m), "type", MPMeter)
}

// MeterConfig is the configuration of one meter.
type MeterConfig struct {
	Flags   uint16      `json:"flags"`
	MeterID uint32      `json:"meter_id"`
	Bands   []MeterBand `json:"bands"`
}

func (c *MeterConfig) appendTo(w *writer) {
	start := len(w.b)
	at := w.mark()
	w.u16(c.Flags)
	w.u32(c.MeterID)
	appendBands(w, c.Bands)
	w.fill(at, start, "meter config")
}

func (c *MeterConfig) MarshalJSON() ([]byte, error) {
	type plain MeterConfig
	return object("OFPMeterConfigStats", (*plain)(c), "length", encodedLen(c))
}

// MeterConfigStatsReply answers a MeterStatsRequest of type MPMeterConfig.
type MeterConfigStatsReply struct {
	Header
	Flags uint16        `json:"flags"`
	Body  []MeterConfig `json:"body"`
}

func (m *MeterConfigStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *MeterConfigStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *MeterConfigStatsReply) appendBody(w *writer) {
	mpHead(w, MPMeterConfig, m.Flags)
	for i := range m.Body {
		m.Body[i].appendTo(w)
	}
}

func (m *MeterConfigStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = []MeterConfig{}
	lengthPrefixed(r, "meter config", 8, func(p *reader) {
		m.Body = append(m.Body, MeterConfig{Flags: p.u16(), MeterID: p.u32(), Bands: decodeBands(p)})
	})
}

func (m *MeterConfigStatsReply) MarshalJSON() ([]byte, error) {
	type plain MeterConfigStatsReply
	return object("OFPMeterConfigStatsReply", (*plain)(m), "type", MPMeterConfig)
}

// MeterFeatures describes the switch's meter support.
type MeterFeatures struct {
	MaxMeter     uint32 `json:"max_meter"`
	BandTypes    uint32 `json:"band_types"`
	Capabilities uint32 `json:"capabilities"`
	MaxBands     uint8  `json:"max_bands"`
	MaxColor     uint8  `json:"max_color"`
}

// MeterFeaturesStatsReply answers an MPMeterFeatures request.
type MeterFeaturesStatsReply struct {
	Header
	Flags uint16        `json:"flags"`
	Body  MeterFeatures `json:"-"`
}

func (m *MeterFeaturesStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *MeterFeaturesStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *MeterFeaturesStatsReply) appendBody(w *writer) {
	mpHead(w, MPMeterFeatures, m.Flags)
	w.u32(m.Body.MaxMeter)
	w.u32(m.Body.BandTypes)
	w.u32(m.Body.Capabilities)
	w.u8(m.Body.MaxBands)
	w.u8(m.Body.MaxColor)
	w.pad(2)
}

func (m *MeterFeaturesStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = MeterFeatures{MaxMeter: r.u32(), BandTypes: r.u32(), Capabilities: r.u32(), MaxBands: r.u8(), MaxColor: r.u8()}
	r.skip(2)
}

// MarshalJSON gives the body as a one-element list, as os-ken does.
func (m *MeterFeaturesStatsReply) MarshalJSON() ([]byte, error) {
	type plain MeterFeaturesStatsReply
	return object("OFPMeterFeaturesStatsReply", (*plain)(m), "type", MPMeterFeatures,
		"body", []any{map[string]any{"OFPMeterFeaturesStats": m.Body}})
}

// PortDescStatsReply answers an MPPortDesc request: every port.
type PortDescStatsReply struct {
	Header
	Flags uint16 `json:"flags"`
	Body  []Port `json:"body"`
}

func (m *PortDescStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *PortDescStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *PortDescStatsReply) appendBody(w *writer) {
	mpHead(w, MPPortDesc, m.Flags)
	for i := range m.Body {
		m.Body[i].appendTo(w)
	}
}

func (m *PortDescStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Body = []Port{}
	for r.ok() && r.len() > 0 {
		m.Body = append(m.Body, decodePort(r))
	}
}

func (m *PortDescStatsReply) MarshalJSON() ([]byte, error) {
	type plain PortDescStatsReply
	return object("OFPPortDescStatsReply", (*plain)(m), "type", MPPortDesc)
}

// ExperimenterStatsReply is an experimenter multipart reply, kept raw.
type ExperimenterStatsReply struct {
	Header
	Flags        uint16 `json:"flags"`
	Experimenter uint32 `json:"-"`
	ExpType      uint32 `json:"-"`
	Data         []byte `json:"-"`
}

func (m *ExperimenterStatsReply) msgType() uint8                 { return TypeMultipartReply }
func (m *ExperimenterStatsReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *ExperimenterStatsReply) appendBody(w *writer) {
	mpHead(w, MPExperimenter, m.Flags)
	w.u32(m.Experimenter)
	w.u32(m.ExpType)
	w.bytes(m.Data)
}

func (m *ExperimenterStatsReply) decodeBody(r *reader) {
	_, m.Flags = readMPHead(r)
	m.Experimenter = r.u32()
	m.ExpType = r.u32()
	m.Data = r.rest()
}

func (m *ExperimenterStatsReply) MarshalJSON() ([]byte, error) {
	type plain ExperimenterStatsReply
	body := map[string]any{"OFPExperimenterMultipart": map[string]any{
		"experimenter": m.Experimenter, "exp_type": m.ExpType, "data": m.Data}}
	return object("OFPExperimenterStatsReply", (*plain)(m), "type", MPExperimenter, "body", body)
}
