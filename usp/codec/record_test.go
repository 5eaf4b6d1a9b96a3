package codec

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

func getMsg(id string) *Msg {
	return &Msg{
		Header: &Header{MsgId: id, MsgType: Header_GET},
		Body: &Body{MsgBody: &Body_Request{Request: &Request{
			ReqType: &Request_Get{Get: &Get{ParamPaths: []string{"Device.DeviceInfo."}}},
		}}},
	}
}

func record(t testing.TB, edit func(*Record), msg *Msg) []byte {
	t.Helper()
	payload, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &Record{Version: "1.4", ToId: "os::agent", FromId: "self::ctrl",
		RecordType: &Record_NoSessionContext{NoSessionContext: &NoSessionContextRecord{Payload: payload}}}
	if edit != nil {
		edit(rec)
	}
	b, err := proto.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWrapUnwrap(t *testing.T) {
	b, err := Wrap(getMsg("m1"), "self::ctrl", "os::agent")
	if err != nil {
		t.Fatal(err)
	}
	rec, msg, err := Unwrap(b, "os::agent", 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Version != Version || rec.FromId != "self::ctrl" || rec.PayloadSecurity != Record_PLAINTEXT {
		t.Errorf("record %v", rec)
	}
	if !proto.Equal(msg, getMsg("m1")) {
		t.Errorf("message %v", msg)
	}
	// A later minor version is read (TR-369: handled gracefully).
	if _, _, err := Unwrap(record(t, func(r *Record) { r.Version = "1.7" }, getMsg("m")), "os::agent", 1<<16); err != nil {
		t.Errorf("version 1.7: %v", err)
	}
}

func TestUnwrapRefuses(t *testing.T) {
	long := strings.Repeat("x", MaxMsgID+1)
	for _, tc := range []struct {
		name    string
		data    []byte
		want    error // a sentinel, or nil for a RecordError
		code    uint32
		withMsg bool // the Msg comes back: the caller may answer
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, nil, CodeRecordNotParsed, false},
		{"too large", record(t, func(r *Record) { r.SenderCert = make([]byte, 1<<16) }, getMsg("m")), ErrTooLarge, 0, false},
		{"other endpoint", record(t, func(r *Record) { r.ToId = "os::other" }, getMsg("m")), ErrNotForUs, 0, false},
		{"session context", record(t, func(r *Record) {
			r.RecordType = &Record_SessionContext{SessionContext: &SessionContextRecord{SessionId: 2}}
		}, getMsg("m")), nil, CodeSessionNotAllow, false},
		{"connect record", record(t, func(r *Record) {
			r.RecordType = &Record_MqttConnect{MqttConnect: &MQTTConnectRecord{}}
		}, getMsg("m")), ErrNoMsg, 0, false},
		{"payload garbage", record(t, func(r *Record) {
			r.RecordType = &Record_NoSessionContext{NoSessionContext: &NoSessionContextRecord{Payload: []byte{0x0a, 0xff}}}
		}, nil), nil, CodeRecordNotParsed, false},
		{"no msg id", record(t, nil, getMsg("")), ErrNoMsg, 0, false},
		{"msg id too long", record(t, nil, getMsg(long)), ErrNoMsg, 0, false},
		{"no body", record(t, nil, &Msg{Header: &Header{MsgId: "m"}}), ErrNoMsg, 0, false},
		{"version", record(t, func(r *Record) { r.Version = "2.0" }, getMsg("m")), nil, CodeInvalidRecord, true},
		{"no version", record(t, func(r *Record) { r.Version = "" }, getMsg("m")), nil, CodeInvalidRecord, true},
		{"bad version", record(t, func(r *Record) { r.Version = "1.x" }, getMsg("m")), nil, CodeInvalidRecord, true},
		{"tls payload", record(t, func(r *Record) { r.PayloadSecurity = Record_TLS12 }, getMsg("m")), nil, CodeSecureSessionNS, true},
		{"no from", record(t, func(r *Record) { r.FromId = "" }, getMsg("m")), nil, CodeInvalidRecord, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, msg, err := Unwrap(tc.data, "os::agent", 1<<16)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var re *RecordError
			if tc.want == nil && (!errors.As(err, &re) || re.Code != tc.code) {
				t.Fatalf("error %v, want code %d", err, tc.code)
			}
			if (msg != nil) != tc.withMsg {
				t.Errorf("message returned: %v, want %v", msg != nil, tc.withMsg)
			}
		})
	}
}

// FuzzUnwrap: outside bytes never panic the decoder, and what it accepts
// is addressed to us and carries an answerable message.
func FuzzUnwrap(f *testing.F) {
	f.Add(record(f, nil, getMsg("m1")))
	f.Add(record(f, func(r *Record) { r.PayloadSecurity = Record_TLS12 }, getMsg("m")))
	f.Add([]byte{0x12, 0x09, 'o', 's', ':', ':', 'a', 'g', 'e', 'n', 't'})
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, msg, err := Unwrap(data, "os::agent", 4096)
		if err != nil {
			return
		}
		if rec.ToId != "os::agent" || msg.GetHeader().GetMsgId() == "" || msg.GetBody() == nil {
			t.Fatalf("accepted %v %v", rec, msg)
		}
	})
}
