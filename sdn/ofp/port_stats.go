package ofp

// Port statistics: counters and descriptions of ports (multipart
// MPPortStats and MPPortDesc).

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
