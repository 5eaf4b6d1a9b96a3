// Package codec is USP's wire format (TR-369 1.4): the Record and Msg
// protobuf messages, generated from the .proto files beside this one, and
// the helpers that wrap a Msg in a Record and unwrap one strictly. The
// agent (usp) and a controller share it.
package codec

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
)

// Version is the USP version of the Records this package makes.
const Version = "1.4"

// Versions are the USP versions whose Records this package reads, as
// GetSupportedProtocolResp lists them: 1.4's messages are a superset of
// the earlier ones on the wire.
var Versions = []string{"1.0", "1.1", "1.2", "1.3", "1.4"}

// MaxMsgID bounds a message ID: it is echoed in the answer.
const MaxMsgID = 256

// Errors callers branch on. A RecordError is answered with an Error
// message when the Msg it carries could be read; these are not.
var (
	ErrTooLarge = errors.New("usp: record larger than the limit")
	// ErrNotForUs: a Record for another endpoint is ignored (R-E2E.1).
	ErrNotForUs = errors.New("usp: record not addressed to this endpoint")
	// ErrNoMsg: a Record without a Msg (connect, disconnect) or whose
	// Msg has no header or ID cannot be answered.
	ErrNoMsg = errors.New("usp: record carries no message to answer")
)

// The Record error codes of TR-369 (7100-7199).
const (
	CodeRecordNotParsed  = 7100
	CodeSecureSessionReq = 7101
	CodeSecureSessionNS  = 7102
	CodeSARNotSupported  = 7103
	CodeInvalidRecord    = 7104
	CodeSessionNotAllow  = 7106
)

// RecordError is a Record this endpoint will not process, with the code
// TR-369 gives the reason.
type RecordError struct {
	Code   uint32
	Reason string
}

func (e *RecordError) Error() string { return fmt.Sprintf("usp record: %s (%d)", e.Reason, e.Code) }

var unmarshal = proto.UnmarshalOptions{DiscardUnknown: true}

// Wrap encodes msg in a Record from one endpoint to another, without a
// session context and in plaintext (the MTP's TLS protects it).
func Wrap(msg *Msg, from, to string) ([]byte, error) {
	payload, err := proto.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("usp: encode message: %w", err)
	}
	rec := &Record{
		Version:         Version,
		ToId:            to,
		FromId:          from,
		PayloadSecurity: Record_PLAINTEXT,
		RecordType:      &Record_NoSessionContext{NoSessionContext: &NoSessionContextRecord{Payload: payload}},
	}
	b, err := proto.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("usp: encode record: %w", err)
	}
	return b, nil
}

// ConnectRecord is the MQTT Connect Record an endpoint sends a peer once
// connected (R-MTP.6): it names the topic where the sender is subscribed.
func ConnectRecord(from, to, topic string) ([]byte, error) {
	b, err := proto.Marshal(&Record{
		Version: Version, ToId: to, FromId: from, PayloadSecurity: Record_PLAINTEXT,
		RecordType: &Record_MqttConnect{MqttConnect: &MQTTConnectRecord{
			Version: MQTTConnectRecord_V3_1_1, SubscribedTopic: topic,
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("usp: encode connect record: %w", err)
	}
	return b, nil
}

// Unwrap decodes a Record of at most max bytes addressed to self and the
// Msg it carries. It returns what it could read with the error: a
// *RecordError comes with the Record and, when its payload is a Msg with
// an ID, the Msg, so that the caller may answer with an Error message
// (R-MTP.5); the other errors come with nothing worth answering.
func Unwrap(data []byte, self string, max int) (*Record, *Msg, error) {
	if len(data) > max {
		return nil, nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), max)
	}
	rec := new(Record)
	if err := unmarshal.Unmarshal(data, rec); err != nil {
		return nil, nil, &RecordError{CodeRecordNotParsed, "record could not be parsed"}
	}
	if rec.ToId != self {
		return rec, nil, ErrNotForUs
	}
	var payload []byte
	switch t := rec.RecordType.(type) {
	case *Record_NoSessionContext:
		payload = t.NoSessionContext.GetPayload()
	case *Record_SessionContext:
		return rec, nil, &RecordError{CodeSessionNotAllow, "session context is not supported"}
	default:
		return rec, nil, ErrNoMsg
	}
	msg := new(Msg)
	if err := unmarshal.Unmarshal(payload, msg); err != nil {
		return rec, nil, &RecordError{CodeRecordNotParsed, "payload is not a USP message"}
	}
	if id := msg.GetHeader().GetMsgId(); id == "" || len(id) > MaxMsgID || msg.GetBody() == nil {
		return rec, nil, ErrNoMsg
	}
	if !readable(rec.Version) {
		return rec, msg, &RecordError{CodeInvalidRecord, fmt.Sprintf("USP version %q is not 1.x", rec.Version)}
	}
	if rec.PayloadSecurity != Record_PLAINTEXT {
		return rec, msg, &RecordError{CodeSecureSessionNS, "only plaintext payloads are supported"}
	}
	if rec.FromId == "" {
		return rec, msg, &RecordError{CodeInvalidRecord, "from_id is empty"}
	}
	return rec, msg, nil
}

// readable says whether a Record of version v can be read: any 1.x, as a
// later minor version only adds messages and fields, which are answered
// 7001 or ignored (TR-369 asks to handle them gracefully).
func readable(v string) bool {
	minor, ok := strings.CutPrefix(v, "1.")
	if !ok || minor == "" || len(minor) > 3 {
		return false
	}
	for _, c := range minor {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
