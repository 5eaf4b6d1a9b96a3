package ofp

// Queue configuration: QUEUE_GET_CONFIG request/reply and queue properties.

// Queue property types.
const (
	QueuePropTypeMinRate      = 1
	QueuePropTypeMaxRate      = 2
	QueuePropTypeExperimenter = 0xffff
)

// QueueProp is a property of a queue. Properties are always pointers.
type QueueProp interface {
	MarshalJSON() ([]byte, error)
	appendTo(w *writer)
}

// QueuePropRate is a min-rate or max-rate property (Property says which),
// in 1/10 of a percent.
type QueuePropRate struct {
	Property uint16 `json:"property"`
	Rate     uint16 `json:"rate"`
}

func (p *QueuePropRate) appendTo(w *writer) {
	w.u16(p.Property)
	w.u16(16)
	w.pad(4)
	w.u16(p.Rate)
	w.pad(6)
}

func (p *QueuePropRate) MarshalJSON() ([]byte, error) {
	type plain QueuePropRate
	name := "OFPQueuePropMinRate"
	if p.Property == QueuePropTypeMaxRate {
		name = "OFPQueuePropMaxRate"
	}
	return object(name, (*plain)(p), "len", 16)
}

// QueuePropExperimenter is an experimenter property, kept raw.
type QueuePropExperimenter struct {
	Experimenter uint32
	Data         []byte
}

func (p *QueuePropExperimenter) appendTo(w *writer) {
	start := len(w.b)
	w.u16(QueuePropTypeExperimenter)
	at := w.mark()
	w.pad(4)
	w.u32(p.Experimenter)
	w.pad(4)
	w.bytes(p.Data)
	w.fill(at, start, "queue property")
}

func (p *QueuePropExperimenter) MarshalJSON() ([]byte, error) {
	return object("OFPQueuePropExperimenter", nil, "property", QueuePropTypeExperimenter,
		"len", 16+len(p.Data), "experimenter", p.Experimenter, "data", byteList(p.Data))
}

// QueuePropUnknown is a property of another type, kept raw after its
// 8-byte header.
type QueuePropUnknown struct {
	Property uint16 `json:"property"`
	Data     []byte `json:"data"`
}

func (p *QueuePropUnknown) appendTo(w *writer) {
	start := len(w.b)
	w.u16(p.Property)
	at := w.mark()
	w.pad(4)
	w.bytes(p.Data)
	w.fill(at, start, "queue property")
}

func (p *QueuePropUnknown) MarshalJSON() ([]byte, error) {
	type plain QueuePropUnknown
	return object("OFPQueuePropUnknown", (*plain)(p), "len", 8+len(p.Data))
}

// PacketQueue describes one queue of a port (ofp_packet_queue).
type PacketQueue struct {
	QueueID    uint32      `json:"queue_id"`
	Port       uint32      `json:"port"`
	Properties []QueueProp `json:"properties"`
}

func (q *PacketQueue) appendTo(w *writer) {
	start := len(w.b)
	w.u32(q.QueueID)
	w.u32(q.Port)
	at := w.mark()
	w.pad(6)
	for _, p := range q.Properties {
		p.appendTo(w)
	}
	w.fill(at, start, "queue")
}

func (q *PacketQueue) MarshalJSON() ([]byte, error) {
	type plain PacketQueue
	p := *(*plain)(q)
	if p.Properties == nil {
		p.Properties = []QueueProp{}
	}
	return object("OFPPacketQueue", &p, "len", encodedLen(q))
}

func decodeQueue(r *reader) PacketQueue {
	q := PacketQueue{QueueID: r.u32(), Port: r.u32(), Properties: []QueueProp{}}
	n := int(r.u16())
	if r.ok() && n < 16 {
		r.fail("queue", ErrBadLength, "length %d below 16", n)
		return q
	}
	r.skip(6)
	p := r.sub("queue", n-16)
	for p.ok() && p.len() > 0 {
		typ := p.u16()
		pn := int(p.u16())
		if p.ok() && pn < 8 {
			p.fail("queue property", ErrBadLength, "length %d below 8", pn)
			break
		}
		pr := p.sub("queue property", pn-4)
		pr.skip(4)
		var prop QueueProp
		switch typ {
		case QueuePropTypeMinRate, QueuePropTypeMaxRate:
			prop = &QueuePropRate{Property: typ, Rate: pr.u16()}
			pr.skip(6)
		case QueuePropTypeExperimenter:
			e := &QueuePropExperimenter{Experimenter: pr.u32()}
			pr.skip(4)
			e.Data = pr.rest()
			prop = e
		default:
			prop = &QueuePropUnknown{Property: typ, Data: pr.rest()}
		}
		if pr.ok() && pr.len() != 0 {
			pr.fail("queue property", ErrBadLength, "type %d: %d bytes beyond its fields", typ, pr.len())
		}
		q.Properties = append(q.Properties, prop)
	}
	return q
}

// QueueGetConfigRequest asks for the queues of a port (PortAny for all).
type QueueGetConfigRequest struct {
	Header
	Port uint32 `json:"port"`
}

func (m *QueueGetConfigRequest) msgType() uint8                 { return TypeQueueGetConfigRequest }
func (m *QueueGetConfigRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *QueueGetConfigRequest) appendBody(w *writer) {
	w.u32(m.Port)
	w.pad(4)
}

func (m *QueueGetConfigRequest) decodeBody(r *reader) {
	m.Port = r.u32()
	r.skip(4)
}

func (m *QueueGetConfigRequest) MarshalJSON() ([]byte, error) {
	type plain QueueGetConfigRequest
	return object("OFPQueueGetConfigRequest", (*plain)(m))
}

// QueueGetConfigReply answers QueueGetConfigRequest.
type QueueGetConfigReply struct {
	Header
	Port   uint32        `json:"port"`
	Queues []PacketQueue `json:"queues"`
}

func (m *QueueGetConfigReply) msgType() uint8                 { return TypeQueueGetConfigReply }
func (m *QueueGetConfigReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *QueueGetConfigReply) appendBody(w *writer) {
	w.u32(m.Port)
	w.pad(4)
	for i := range m.Queues {
		m.Queues[i].appendTo(w)
	}
}

func (m *QueueGetConfigReply) decodeBody(r *reader) {
	m.Port = r.u32()
	r.skip(4)
	m.Queues = []PacketQueue{}
	for r.ok() && r.len() > 0 {
		m.Queues = append(m.Queues, decodeQueue(r))
	}
}

func (m *QueueGetConfigReply) MarshalJSON() ([]byte, error) {
	type plain QueueGetConfigReply
	p := *(*plain)(m)
	if p.Queues == nil {
		p.Queues = []PacketQueue{}
	}
	return object("OFPQueueGetConfigReply", &p)
}
