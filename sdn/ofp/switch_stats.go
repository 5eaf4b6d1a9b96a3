package ofp

// The switch's own description and its tables' lookup counters
// (multipart MPDesc and MPTable).

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
