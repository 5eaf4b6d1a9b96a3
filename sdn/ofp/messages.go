package ofp

import (
	"encoding/json"
	"net"
)

// This file holds the small fixed-layout messages of the connection's
// life cycle and of switch configuration.

// Hello opens a connection. Elements advertise supported versions.
type Hello struct {
	Header
	Elements []HelloElem `json:"elements"`
}

// NewHello is a HELLO offering exactly the given versions.
func NewHello(versions ...uint8) *Hello {
	bm := &HelloElemVersionBitmap{}
	for _, v := range versions {
		for int(v/32) >= len(bm.Bitmaps) {
			bm.Bitmaps = append(bm.Bitmaps, 0)
		}
		bm.Bitmaps[v/32] |= 1 << (v % 32)
	}
	return &Hello{Header: Header{Version: Version}, Elements: []HelloElem{bm}}
}

// HelloElem is an element of a HELLO.
type HelloElem interface {
	json.Marshaler
	appendTo(w *writer)
}

const helloElemVersionBitmap = 1

// HelloElemVersionBitmap lists versions as a bitmap: bit v%32 of word v/32.
type HelloElemVersionBitmap struct {
	Bitmaps []uint32
}

// Versions lists the versions the bitmap offers.
func (e *HelloElemVersionBitmap) Versions() []uint8 {
	vs := []uint8{}
	for i, w := range e.Bitmaps {
		for b := 0; b < 32; b++ {
			if w&(1<<b) != 0 && i*32+b < 256 {
				vs = append(vs, uint8(i*32+b))
			}
		}
	}
	return vs
}

func (e *HelloElemVersionBitmap) appendTo(w *writer) {
	start := len(w.b)
	w.u16(helloElemVersionBitmap)
	at := w.mark()
	for _, b := range e.Bitmaps {
		w.u32(b)
	}
	w.fill(at, start, "hello element")
	w.padTo8(start)
}

func (e *HelloElemVersionBitmap) MarshalJSON() ([]byte, error) {
	vs := []int{} // not []uint8, which encoding/json would write as base64
	for _, v := range e.Versions() {
		vs = append(vs, int(v))
	}
	return object("OFPHelloElemVersionBitmap", nil, "type", helloElemVersionBitmap,
		"length", 4+4*len(e.Bitmaps), "versions", vs)
}

// HelloElemUnknown is a HELLO element of another type, kept raw.
type HelloElemUnknown struct {
	Type uint16 `json:"type"`
	Data []byte `json:"data"`
}

func (e *HelloElemUnknown) appendTo(w *writer) {
	start := len(w.b)
	w.u16(e.Type)
	at := w.mark()
	w.bytes(e.Data)
	w.fill(at, start, "hello element")
	w.padTo8(start)
}

func (e *HelloElemUnknown) MarshalJSON() ([]byte, error) {
	type plain HelloElemUnknown
	return object("OFPHelloElemUnknown", (*plain)(e), "length", 4+len(e.Data))
}

func (m *Hello) msgType() uint8                 { return TypeHello }
func (m *Hello) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *Hello) appendBody(w *writer) {
	for _, e := range m.Elements {
		e.appendTo(w)
	}
}

func (m *Hello) decodeBody(r *reader) {
	m.Elements = []HelloElem{}
	for r.ok() && r.len() > 0 {
		typ := r.u16()
		n := int(r.u16())
		if r.ok() && n < 4 {
			r.fail("hello element", ErrBadLength, "length %d below 4", n)
			return
		}
		p := r.sub("hello element", n-4)
		r.skip(pad8(n))
		if typ != helloElemVersionBitmap {
			m.Elements = append(m.Elements, &HelloElemUnknown{Type: typ, Data: p.rest()})
			continue
		}
		if p.len()%4 != 0 {
			r.fail("hello element", ErrBadLength, "bitmap of %d bytes", p.len())
			return
		}
		e := &HelloElemVersionBitmap{Bitmaps: []uint32{}}
		for p.ok() && p.len() > 0 {
			e.Bitmaps = append(e.Bitmaps, p.u32())
		}
		m.Elements = append(m.Elements, e)
	}
}

func (m *Hello) MarshalJSON() ([]byte, error) {
	type plain Hello
	return object("OFPHello", (*plain)(m))
}

// ErrorTypeExperimenter is the error type of experimenter errors, which
// carry ExpType and Experimenter instead of Code.
const ErrorTypeExperimenter = 0xffff

// ErrorMsg reports a failure, usually of the request whose xid it carries;
// Data holds (the start of) the offending request.
type ErrorMsg struct {
	Header
	ErrType      uint16
	Code         uint16
	ExpType      uint16
	Experimenter uint32
	Data         []byte
}

func (m *ErrorMsg) msgType() uint8                 { return TypeError }
func (m *ErrorMsg) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *ErrorMsg) appendBody(w *writer) {
	w.u16(m.ErrType)
	if m.ErrType == ErrorTypeExperimenter {
		w.u16(m.ExpType)
		w.u32(m.Experimenter)
	} else {
		w.u16(m.Code)
	}
	w.bytes(m.Data)
}

func (m *ErrorMsg) decodeBody(r *reader) {
	m.ErrType = r.u16()
	if m.ErrType == ErrorTypeExperimenter {
		m.ExpType = r.u16()
		m.Experimenter = r.u32()
	} else {
		m.Code = r.u16()
	}
	m.Data = r.rest()
}

func (m *ErrorMsg) MarshalJSON() ([]byte, error) {
	if m.ErrType == ErrorTypeExperimenter {
		return object("OFPErrorMsg", nil, "type", m.ErrType, "code", nil,
			"exp_type", m.ExpType, "experimenter", m.Experimenter, "data", m.Data)
	}
	return object("OFPErrorMsg", nil, "type", m.ErrType, "code", m.Code, "data", m.Data)
}

// EchoRequest is a keepalive; answer with an EchoReply with the same xid
// and data.
type EchoRequest struct {
	Header
	Data []byte `json:"data"`
}

// EchoReply answers an EchoRequest.
type EchoReply struct {
	Header
	Data []byte `json:"data"`
}

func (m *EchoRequest) msgType() uint8                 { return TypeEchoRequest }
func (m *EchoRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *EchoRequest) appendBody(w *writer)           { w.bytes(m.Data) }
func (m *EchoRequest) decodeBody(r *reader)           { m.Data = r.rest() }
func (m *EchoRequest) MarshalJSON() ([]byte, error) {
	type plain EchoRequest
	return object("OFPEchoRequest", (*plain)(m))
}

func (m *EchoReply) msgType() uint8                 { return TypeEchoReply }
func (m *EchoReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *EchoReply) appendBody(w *writer)           { w.bytes(m.Data) }
func (m *EchoReply) decodeBody(r *reader)           { m.Data = r.rest() }
func (m *EchoReply) MarshalJSON() ([]byte, error) {
	type plain EchoReply
	return object("OFPEchoReply", (*plain)(m))
}

// Experimenter is an experimenter (vendor) message, kept raw.
type Experimenter struct {
	Header
	Experimenter uint32 `json:"experimenter"`
	ExpType      uint32 `json:"exp_type"`
	Data         []byte `json:"data"`
}

func (m *Experimenter) msgType() uint8                 { return TypeExperimenter }
func (m *Experimenter) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *Experimenter) appendBody(w *writer) {
	w.u32(m.Experimenter)
	w.u32(m.ExpType)
	w.bytes(m.Data)
}

func (m *Experimenter) decodeBody(r *reader) {
	m.Experimenter = r.u32()
	m.ExpType = r.u32()
	m.Data = r.rest()
}

func (m *Experimenter) MarshalJSON() ([]byte, error) {
	type plain Experimenter
	return object("OFPExperimenter", (*plain)(m))
}

// Messages without a body.
type (
	FeaturesRequest  struct{ Header }
	GetConfigRequest struct{ Header }
	BarrierRequest   struct{ Header }
	BarrierReply     struct{ Header }
	GetAsyncRequest  struct{ Header }
)

func (m *FeaturesRequest) msgType() uint8                  { return TypeFeaturesRequest }
func (m *FeaturesRequest) MarshalBinary() ([]byte, error)  { return marshal(m) }
func (m *FeaturesRequest) appendBody(*writer)              {}
func (m *FeaturesRequest) decodeBody(*reader)              {}
func (m *FeaturesRequest) MarshalJSON() ([]byte, error)    { return object("OFPFeaturesRequest", nil) }
func (m *GetConfigRequest) msgType() uint8                 { return TypeGetConfigRequest }
func (m *GetConfigRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *GetConfigRequest) appendBody(*writer)             {}
func (m *GetConfigRequest) decodeBody(*reader)             {}
func (m *GetConfigRequest) MarshalJSON() ([]byte, error)   { return object("OFPGetConfigRequest", nil) }
func (m *BarrierRequest) msgType() uint8                   { return TypeBarrierRequest }
func (m *BarrierRequest) MarshalBinary() ([]byte, error)   { return marshal(m) }
func (m *BarrierRequest) appendBody(*writer)               {}
func (m *BarrierRequest) decodeBody(*reader)               {}
func (m *BarrierRequest) MarshalJSON() ([]byte, error)     { return object("OFPBarrierRequest", nil) }
func (m *BarrierReply) msgType() uint8                     { return TypeBarrierReply }
func (m *BarrierReply) MarshalBinary() ([]byte, error)     { return marshal(m) }
func (m *BarrierReply) appendBody(*writer)                 {}
func (m *BarrierReply) decodeBody(*reader)                 {}
func (m *BarrierReply) MarshalJSON() ([]byte, error)       { return object("OFPBarrierReply", nil) }
func (m *GetAsyncRequest) msgType() uint8                  { return TypeGetAsyncRequest }
func (m *GetAsyncRequest) MarshalBinary() ([]byte, error)  { return marshal(m) }
func (m *GetAsyncRequest) appendBody(*writer)              {}
func (m *GetAsyncRequest) decodeBody(*reader)              {}
func (m *GetAsyncRequest) MarshalJSON() ([]byte, error)    { return object("OFPGetAsyncRequest", nil) }

// FeaturesReply describes the switch (os-ken's OFPSwitchFeatures).
type FeaturesReply struct {
	Header
	DatapathID   uint64 `json:"datapath_id"`
	NBuffers     uint32 `json:"n_buffers"`
	NTables      uint8  `json:"n_tables"`
	AuxiliaryID  uint8  `json:"auxiliary_id"`
	Capabilities uint32 `json:"capabilities"`
	Reserved     uint32 `json:"-"`
}

func (m *FeaturesReply) msgType() uint8                 { return TypeFeaturesReply }
func (m *FeaturesReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *FeaturesReply) appendBody(w *writer) {
	w.u64(m.DatapathID)
	w.u32(m.NBuffers)
	w.u8(m.NTables)
	w.u8(m.AuxiliaryID)
	w.pad(2)
	w.u32(m.Capabilities)
	w.u32(m.Reserved)
}

func (m *FeaturesReply) decodeBody(r *reader) {
	m.DatapathID = r.u64()
	m.NBuffers = r.u32()
	m.NTables = r.u8()
	m.AuxiliaryID = r.u8()
	r.skip(2)
	m.Capabilities = r.u32()
	m.Reserved = r.u32()
}

func (m *FeaturesReply) MarshalJSON() ([]byte, error) {
	type plain FeaturesReply
	return object("OFPSwitchFeatures", (*plain)(m))
}

// Switch configuration flags (ofp_config_flags), for SetConfig.Flags.
const (
	ConfigFragNormal = 0
	ConfigFragDrop   = 1
	ConfigFragReasm  = 2
)

// SwitchConfig is the body of GET_CONFIG_REPLY and SET_CONFIG.
type SwitchConfig struct {
	Flags uint16 `json:"flags"`
	// MissSendLen is how many bytes of a table-miss packet go to the
	// controller; MaxLenNoBuffer for all.
	MissSendLen uint16 `json:"miss_send_len"`
}

func (c *SwitchConfig) appendBody(w *writer) {
	w.u16(c.Flags)
	w.u16(c.MissSendLen)
}

func (c *SwitchConfig) decodeBody(r *reader) {
	c.Flags = r.u16()
	c.MissSendLen = r.u16()
}

// GetConfigReply answers GetConfigRequest.
type GetConfigReply struct {
	Header
	SwitchConfig
}

// SetConfig sets the switch configuration.
type SetConfig struct {
	Header
	SwitchConfig
}

func (m *GetConfigReply) msgType() uint8                 { return TypeGetConfigReply }
func (m *GetConfigReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *GetConfigReply) MarshalJSON() ([]byte, error) {
	return object("OFPGetConfigReply", &m.SwitchConfig)
}
func (m *SetConfig) msgType() uint8                 { return TypeSetConfig }
func (m *SetConfig) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *SetConfig) MarshalJSON() ([]byte, error) {
	return object("OFPSetConfig", &m.SwitchConfig)
}

// Controller roles (ofp_controller_role).
const (
	RoleNoChange = 0
	RoleEqual    = 1
	RoleMaster   = 2
	RoleSlave    = 3
)

// RoleBody is the body of ROLE_REQUEST and ROLE_REPLY.
type RoleBody struct {
	Role         uint32 `json:"role"`
	GenerationID uint64 `json:"generation_id"`
}

func (b *RoleBody) appendBody(w *writer) {
	w.u32(b.Role)
	w.pad(4)
	w.u64(b.GenerationID)
}

func (b *RoleBody) decodeBody(r *reader) {
	b.Role = r.u32()
	r.skip(4)
	b.GenerationID = r.u64()
}

// RoleRequest asks for a controller role.
type RoleRequest struct {
	Header
	RoleBody
}

// RoleReply answers RoleRequest.
type RoleReply struct {
	Header
	RoleBody
}

func (m *RoleRequest) msgType() uint8                 { return TypeRoleRequest }
func (m *RoleRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *RoleRequest) MarshalJSON() ([]byte, error)   { return object("OFPRoleRequest", &m.RoleBody) }
func (m *RoleReply) msgType() uint8                   { return TypeRoleReply }
func (m *RoleReply) MarshalBinary() ([]byte, error)   { return marshal(m) }
func (m *RoleReply) MarshalJSON() ([]byte, error)     { return object("OFPRoleReply", &m.RoleBody) }

// AsyncConfig is the body of GET_ASYNC_REPLY and SET_ASYNC: for each
// asynchronous message, bitmaps of the reasons sent to a controller in
// [master/equal role, slave role].
type AsyncConfig struct {
	PacketInMask    [2]uint32 `json:"packet_in_mask"`
	PortStatusMask  [2]uint32 `json:"port_status_mask"`
	FlowRemovedMask [2]uint32 `json:"flow_removed_mask"`
}

func (c *AsyncConfig) appendBody(w *writer) {
	for _, m := range [][2]uint32{c.PacketInMask, c.PortStatusMask, c.FlowRemovedMask} {
		w.u32(m[0])
		w.u32(m[1])
	}
}

func (c *AsyncConfig) decodeBody(r *reader) {
	for _, m := range []*[2]uint32{&c.PacketInMask, &c.PortStatusMask, &c.FlowRemovedMask} {
		m[0] = r.u32()
		m[1] = r.u32()
	}
}

// GetAsyncReply answers GetAsyncRequest.
type GetAsyncReply struct {
	Header
	AsyncConfig
}

// SetAsync sets which asynchronous messages this controller receives.
type SetAsync struct {
	Header
	AsyncConfig
}

func (m *GetAsyncReply) msgType() uint8                 { return TypeGetAsyncReply }
func (m *GetAsyncReply) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *GetAsyncReply) MarshalJSON() ([]byte, error) {
	return object("OFPGetAsyncReply", &m.AsyncConfig)
}
func (m *SetAsync) msgType() uint8                 { return TypeSetAsync }
func (m *SetAsync) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *SetAsync) MarshalJSON() ([]byte, error)   { return object("OFPSetAsync", &m.AsyncConfig) }

// MAC is an Ethernet address in a fixed-size message field; it marshals
// to JSON as "aa:bb:cc:dd:ee:ff".
type MAC [6]byte

func (a MAC) String() string { return net.HardwareAddr(a[:]).String() }

func (a MAC) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

func (r *reader) mac() MAC {
	var a MAC
	copy(a[:], r.take("address", 6))
	return a
}

// Port describes a switch port (ofp_port).
type Port struct {
	PortNo     uint32 `json:"port_no"`
	HWAddr     MAC    `json:"hw_addr"`
	Name       string `json:"name"`
	Config     uint32 `json:"config"`
	State      uint32 `json:"state"`
	Curr       uint32 `json:"curr"`
	Advertised uint32 `json:"advertised"`
	Supported  uint32 `json:"supported"`
	Peer       uint32 `json:"peer"`
	CurrSpeed  uint32 `json:"curr_speed"`
	MaxSpeed   uint32 `json:"max_speed"`
}

func (p *Port) appendTo(w *writer) {
	w.u32(p.PortNo)
	w.pad(4)
	w.bytes(p.HWAddr[:])
	w.pad(2)
	w.str(p.Name, 16)
	for _, v := range []uint32{p.Config, p.State, p.Curr, p.Advertised, p.Supported, p.Peer, p.CurrSpeed, p.MaxSpeed} {
		w.u32(v)
	}
}

func decodePort(r *reader) Port {
	var p Port
	p.PortNo = r.u32()
	r.skip(4)
	p.HWAddr = r.mac()
	r.skip(2)
	p.Name = r.str(16)
	for _, v := range []*uint32{&p.Config, &p.State, &p.Curr, &p.Advertised, &p.Supported, &p.Peer, &p.CurrSpeed, &p.MaxSpeed} {
		*v = r.u32()
	}
	return p
}

func (p Port) MarshalJSON() ([]byte, error) {
	type plain Port
	return object("OFPPort", plain(p))
}

// Port status reasons (ofp_port_reason).
const (
	PortReasonAdd    = 0
	PortReasonDelete = 1
	PortReasonModify = 2
)

// PortStatus reports a port added, removed or changed.
type PortStatus struct {
	Header
	Reason uint8 `json:"reason"`
	Desc   Port  `json:"desc"`
}

func (m *PortStatus) msgType() uint8                 { return TypePortStatus }
func (m *PortStatus) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *PortStatus) appendBody(w *writer) {
	w.u8(m.Reason)
	w.pad(7)
	m.Desc.appendTo(w)
}

func (m *PortStatus) decodeBody(r *reader) {
	m.Reason = r.u8()
	r.skip(7)
	m.Desc = decodePort(r)
}

func (m *PortStatus) MarshalJSON() ([]byte, error) {
	type plain PortStatus
	return object("OFPPortStatus", (*plain)(m))
}

// PortMod changes the config bits of a port selected by Mask.
type PortMod struct {
	Header
	PortNo    uint32 `json:"port_no"`
	HWAddr    MAC    `json:"hw_addr"`
	Config    uint32 `json:"config"`
	Mask      uint32 `json:"mask"`
	Advertise uint32 `json:"advertise"`
}

func (m *PortMod) msgType() uint8                 { return TypePortMod }
func (m *PortMod) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *PortMod) appendBody(w *writer) {
	w.u32(m.PortNo)
	w.pad(4)
	w.bytes(m.HWAddr[:])
	w.pad(2)
	w.u32(m.Config)
	w.u32(m.Mask)
	w.u32(m.Advertise)
	w.pad(4)
}

func (m *PortMod) decodeBody(r *reader) {
	m.PortNo = r.u32()
	r.skip(4)
	m.HWAddr = r.mac()
	r.skip(2)
	m.Config = r.u32()
	m.Mask = r.u32()
	m.Advertise = r.u32()
	r.skip(4)
}

func (m *PortMod) MarshalJSON() ([]byte, error) {
	type plain PortMod
	return object("OFPPortMod", (*plain)(m))
}

// TableAll as a table id means every table.
const TableAll = 0xff

// TableMod configures a table.
type TableMod struct {
	Header
	TableID uint8  `json:"table_id"`
	Config  uint32 `json:"config"`
}

func (m *TableMod) msgType() uint8                 { return TypeTableMod }
func (m *TableMod) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *TableMod) appendBody(w *writer) {
	w.u8(m.TableID)
	w.pad(3)
	w.u32(m.Config)
}

func (m *TableMod) decodeBody(r *reader) {
	m.TableID = r.u8()
	r.skip(3)
	m.Config = r.u32()
}

func (m *TableMod) MarshalJSON() ([]byte, error) {
	type plain TableMod
	return object("OFPTableMod", (*plain)(m))
}
