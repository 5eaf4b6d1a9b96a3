package ofp

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
)

// Version is the OpenFlow wire version this package speaks (1.3).
const Version = 4

// HeaderLen is the size of the common header that starts every message.
const HeaderLen = 8

// Message types (ofp_type).
const (
	TypeHello                 = 0
	TypeError                 = 1
	TypeEchoRequest           = 2
	TypeEchoReply             = 3
	TypeExperimenter          = 4
	TypeFeaturesRequest       = 5
	TypeFeaturesReply         = 6
	TypeGetConfigRequest      = 7
	TypeGetConfigReply        = 8
	TypeSetConfig             = 9
	TypePacketIn              = 10
	TypeFlowRemoved           = 11
	TypePortStatus            = 12
	TypePacketOut             = 13
	TypeFlowMod               = 14
	TypeGroupMod              = 15
	TypePortMod               = 16
	TypeTableMod              = 17
	TypeMultipartRequest      = 18
	TypeMultipartReply        = 19
	TypeBarrierRequest        = 20
	TypeBarrierReply          = 21
	TypeQueueGetConfigRequest = 22
	TypeQueueGetConfigReply   = 23
	TypeRoleRequest           = 24
	TypeRoleReply             = 25
	TypeGetAsyncRequest       = 26
	TypeGetAsyncReply         = 27
	TypeSetAsync              = 28
	TypeMeterMod              = 29
)

// Header is the common message header (ofp_header). Messages embed it, so
// m.Xid is the transaction id of any message.
type Header struct {
	// Version is the wire version; zero means Version on encode. Only
	// HELLO and ERROR may carry another version, for version negotiation.
	Version uint8 `json:"-"`
	// Type is the message type as decoded; on encode the Go type decides.
	Type uint8 `json:"-"`
	// Length is the length as decoded; on encode it is computed.
	Length uint16 `json:"-"`
	Xid    uint32 `json:"-"`
}

// MsgHeader gives access to the header of any Message.
func (h *Header) MsgHeader() *Header { return h }

// Message is one OpenFlow 1.3 message. Every message type of this package
// implements it, always as a pointer.
type Message interface {
	MsgHeader() *Header
	// MarshalBinary encodes the message, computing lengths and padding.
	MarshalBinary() ([]byte, error)
	// MarshalJSON gives os-ken's layout: {"OFPFlowMod": {...}}.
	json.Marshaler

	msgType() uint8
	appendBody(w *writer)
	decodeBody(r *reader)
}

// marshal frames a message's body with its header.
func marshal(m Message) ([]byte, error) {
	h := m.MsgHeader()
	v := h.Version
	if v == 0 {
		v = Version
	}
	// Room for a typical flow_mod (match and instructions) in one allocation.
	w := &writer{b: make([]byte, 0, 256)}
	w.u8(v)
	w.u8(m.msgType())
	at := w.mark()
	w.u32(h.Xid)
	m.appendBody(w)
	w.fill(at, 0, "message")
	if w.err != nil {
		return nil, w.err
	}
	return w.b, nil
}

// Decode decodes exactly one message; b must hold the whole message and
// nothing more. It never panics and never reads beyond b.
func Decode(b []byte) (Message, error) {
	if len(b) < HeaderLen {
		return nil, &DecodeError{What: "header", Err: ErrTruncated, Msg: "need 8 bytes"}
	}
	h := Header{Version: b[0], Type: b[1], Length: binary.BigEndian.Uint16(b[2:]), Xid: binary.BigEndian.Uint32(b[4:])}
	switch {
	case h.Length < HeaderLen:
		return nil, &DecodeError{What: "header", Err: ErrBadLength, Msg: "length below 8"}
	case len(b) < int(h.Length):
		return nil, &DecodeError{What: "message", Err: ErrTruncated, Msg: "shorter than its header's length"}
	case len(b) > int(h.Length):
		return nil, &DecodeError{What: "message", Err: ErrBadLength, Msg: "bytes after the length its header gives"}
	case h.Version != Version && h.Type != TypeHello && h.Type != TypeError:
		return nil, &DecodeError{What: "header", Err: ErrUnsupported, Msg: "not OpenFlow 1.3"}
	}
	body := b[HeaderLen:]
	m := newMessage(h.Type, body)
	if m == nil {
		return nil, &DecodeError{What: "header", Err: ErrUnsupported, Msg: "unknown message type"}
	}
	r := newReader(body)
	m.decodeBody(r)
	if r.ok() && r.len() != 0 {
		r.fail("message", ErrBadLength, "%d bytes left over after the body", r.len())
	}
	if err := *r.err; err != nil {
		return nil, err
	}
	*m.MsgHeader() = h
	return m, nil
}

// ReadMessage reads one message from r: the header, then exactly as many
// bytes as it announces, so a connection stays in step for the next read.
// A stream that ends cleanly between messages yields io.EOF.
func ReadMessage(r io.Reader) (Message, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, streamErr(err)
	}
	n := int(binary.BigEndian.Uint16(hdr[2:]))
	if n < HeaderLen {
		return nil, &DecodeError{What: "header", Err: ErrBadLength, Msg: "length below 8"}
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(r, b[HeaderLen:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, streamErr(err)
	}
	return Decode(b)
}

func streamErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &DecodeError{What: "message", Err: ErrTruncated, Msg: "stream ended inside a message"}
	}
	return err
}

// newMessage returns an empty message of the given type; multipart messages
// are chosen by the multipart type at the start of body.
func newMessage(t uint8, body []byte) Message {
	switch t {
	case TypeHello:
		return &Hello{}
	case TypeError:
		return &ErrorMsg{}
	case TypeEchoRequest:
		return &EchoRequest{}
	case TypeEchoReply:
		return &EchoReply{}
	case TypeExperimenter:
		return &Experimenter{}
	case TypeFeaturesRequest:
		return &FeaturesRequest{}
	case TypeFeaturesReply:
		return &FeaturesReply{}
	case TypeGetConfigRequest:
		return &GetConfigRequest{}
	case TypeGetConfigReply:
		return &GetConfigReply{}
	case TypeSetConfig:
		return &SetConfig{}
	case TypePacketIn:
		return &PacketIn{}
	case TypeFlowRemoved:
		return &FlowRemoved{}
	case TypePortStatus:
		return &PortStatus{}
	case TypePacketOut:
		return &PacketOut{}
	case TypeFlowMod:
		return &FlowMod{}
	case TypeGroupMod:
		return &GroupMod{}
	case TypePortMod:
		return &PortMod{}
	case TypeTableMod:
		return &TableMod{}
	case TypeMultipartRequest, TypeMultipartReply:
		return newMultipart(t == TypeMultipartReply, body)
	case TypeBarrierRequest:
		return &BarrierRequest{}
	case TypeBarrierReply:
		return &BarrierReply{}
	case TypeQueueGetConfigRequest:
		return &QueueGetConfigRequest{}
	case TypeQueueGetConfigReply:
		return &QueueGetConfigReply{}
	case TypeRoleRequest:
		return &RoleRequest{}
	case TypeRoleReply:
		return &RoleReply{}
	case TypeGetAsyncRequest:
		return &GetAsyncRequest{}
	case TypeGetAsyncReply:
		return &GetAsyncReply{}
	case TypeSetAsync:
		return &SetAsync{}
	case TypeMeterMod:
		return &MeterMod{}
	}
	return nil
}
