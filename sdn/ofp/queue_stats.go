package ofp

// Queue statistics: counters of queues (multipart MPQueue).

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
