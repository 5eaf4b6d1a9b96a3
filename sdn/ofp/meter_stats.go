package ofp

// Meter statistics: counters, configuration and features of meters
// (multipart MPMeter, MPMeterConfig and MPMeterFeatures).

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
