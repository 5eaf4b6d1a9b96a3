package ofp

// Group statistics: counters, descriptions and features of groups
// (multipart MPGroup, MPGroupDesc and MPGroupFeatures).

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
