package ofp

// Multipart (statistics) requests and replies: the framing every type
// shares, the requests without a body, and what is kept raw. Each
// request/reply pair has its own Go types, in the file of its concept
// (flow_stats.go, meter_stats.go, group_stats.go, port_stats.go,
// queue_stats.go, switch_stats.go); bodies of types not modelled
// (table features) are kept raw in MultipartRequestRaw/MultipartReplyRaw.

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

// Counter is a packet and byte count pair (of a bucket or meter band).
type Counter struct {
	PacketCount uint64
	ByteCount   uint64
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
