package ofp

import "encoding/json"

// Meter mod commands and flags.
const (
	MeterAdd    = 0
	MeterModify = 1
	MeterDelete = 2

	MeterFlagKbps  = 1 << 0
	MeterFlagPktps = 1 << 1
	MeterFlagBurst = 1 << 2
	MeterFlagStats = 1 << 3
)

// Meter band types.
const (
	MeterBandTypeDrop         = 1
	MeterBandTypeDSCPRemark   = 2
	MeterBandTypeExperimenter = 0xffff
)

// MeterBand is one band of a meter. Bands are always pointers.
type MeterBand interface {
	json.Marshaler
	appendTo(w *writer)
}

// MeterBandDrop drops packets above Rate.
type MeterBandDrop struct {
	Rate      uint32 `json:"rate"`
	BurstSize uint32 `json:"burst_size"`
}

func (b *MeterBandDrop) appendTo(w *writer) {
	w.u16(MeterBandTypeDrop)
	w.u16(16)
	w.u32(b.Rate)
	w.u32(b.BurstSize)
	w.pad(4)
}

func (b *MeterBandDrop) MarshalJSON() ([]byte, error) {
	type plain MeterBandDrop
	return object("OFPMeterBandDrop", (*plain)(b), "type", MeterBandTypeDrop, "len", 16)
}

// MeterBandDSCPRemark raises the drop precedence of packets above Rate.
type MeterBandDSCPRemark struct {
	Rate      uint32 `json:"rate"`
	BurstSize uint32 `json:"burst_size"`
	PrecLevel uint8  `json:"prec_level"`
}

func (b *MeterBandDSCPRemark) appendTo(w *writer) {
	w.u16(MeterBandTypeDSCPRemark)
	w.u16(16)
	w.u32(b.Rate)
	w.u32(b.BurstSize)
	w.u8(b.PrecLevel)
	w.pad(3)
}

func (b *MeterBandDSCPRemark) MarshalJSON() ([]byte, error) {
	type plain MeterBandDSCPRemark
	return object("OFPMeterBandDscpRemark", (*plain)(b), "type", MeterBandTypeDSCPRemark, "len", 16)
}

// MeterBandExperimenter is an experimenter band; Data follows the
// experimenter id.
type MeterBandExperimenter struct {
	Rate         uint32 `json:"rate"`
	BurstSize    uint32 `json:"burst_size"`
	Experimenter uint32 `json:"experimenter"`
	Data         []byte `json:"data,omitempty"`
}

func (b *MeterBandExperimenter) appendTo(w *writer) {
	start := len(w.b)
	w.u16(MeterBandTypeExperimenter)
	at := w.mark()
	w.u32(b.Rate)
	w.u32(b.BurstSize)
	w.u32(b.Experimenter)
	w.bytes(b.Data)
	w.fill(at, start, "meter band")
}

func (b *MeterBandExperimenter) MarshalJSON() ([]byte, error) {
	type plain MeterBandExperimenter
	return object("OFPMeterBandExperimenter", (*plain)(b), "type", MeterBandTypeExperimenter, "len", encodedLen(b))
}

// MeterBandUnknown is a band of a type OpenFlow 1.3 does not define, kept
// raw after its type and length.
type MeterBandUnknown struct {
	Type uint16 `json:"type"`
	Data []byte `json:"data"`
}

func (b *MeterBandUnknown) appendTo(w *writer) {
	start := len(w.b)
	w.u16(b.Type)
	at := w.mark()
	w.bytes(b.Data)
	w.fill(at, start, "meter band")
}

func (b *MeterBandUnknown) MarshalJSON() ([]byte, error) {
	type plain MeterBandUnknown
	return object("OFPMeterBandUnknown", (*plain)(b), "len", encodedLen(b))
}

func appendBands(w *writer, bs []MeterBand) {
	for _, b := range bs {
		b.appendTo(w)
	}
}

func decodeBands(r *reader) []MeterBand {
	bs := []MeterBand{}
	for r.ok() && r.len() > 0 {
		typ := r.u16()
		n := int(r.u16())
		if r.ok() && n < 4 {
			r.fail("meter band", ErrBadLength, "length %d below 4", n)
			break
		}
		p := r.sub("meter band", n-4)
		var b MeterBand
		switch typ {
		case MeterBandTypeDrop:
			b = &MeterBandDrop{Rate: p.u32(), BurstSize: p.u32()}
			p.skip(4)
		case MeterBandTypeDSCPRemark:
			b = &MeterBandDSCPRemark{Rate: p.u32(), BurstSize: p.u32(), PrecLevel: p.u8()}
			p.skip(3)
		case MeterBandTypeExperimenter:
			e := &MeterBandExperimenter{Rate: p.u32(), BurstSize: p.u32(), Experimenter: p.u32()}
			if p.len() > 0 {
				e.Data = p.rest()
			}
			b = e
		default:
			b = &MeterBandUnknown{Type: typ, Data: p.rest()}
		}
		if p.ok() && p.len() != 0 {
			p.fail("meter band", ErrBadLength, "type %d: %d bytes beyond its fields", typ, p.len())
		}
		bs = append(bs, b)
	}
	return bs
}

// MeterAll as a meter id means every meter.
const MeterAll = 0xffffffff

// MeterMod adds, changes or deletes a meter.
type MeterMod struct {
	Header
	Command uint16      `json:"command"`
	Flags   uint16      `json:"flags"`
	MeterID uint32      `json:"meter_id"`
	Bands   []MeterBand `json:"bands"`
}

func (m *MeterMod) msgType() uint8                 { return TypeMeterMod }
func (m *MeterMod) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *MeterMod) appendBody(w *writer) {
	w.u16(m.Command)
	w.u16(m.Flags)
	w.u32(m.MeterID)
	appendBands(w, m.Bands)
}

func (m *MeterMod) decodeBody(r *reader) {
	m.Command = r.u16()
	m.Flags = r.u16()
	m.MeterID = r.u32()
	m.Bands = decodeBands(r)
}

func (m *MeterMod) MarshalJSON() ([]byte, error) {
	type plain MeterMod
	p := *(*plain)(m)
	if p.Bands == nil {
		p.Bands = []MeterBand{}
	}
	return object("OFPMeterMod", &p)
}
