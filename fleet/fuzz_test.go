package fleet

import (
	"testing"

	"paradrop/usp/codec"
	"paradrop/usp/mqttmtp"
)

// Whatever a client on the broker sends the controller's topic, it is
// read without a panic.
func FuzzControllerHandle(f *testing.F) {
	rec, _ := codec.ConnectRecord("os::gw", "self::ctl", "usp/agents/gw")
	f.Add(rec)
	notify, _ := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "n", MsgType: codec.Header_NOTIFY},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Notify{Notify: &codec.Notify{
			SendResp: true, Notification: &codec.Notify_OperComplete{OperComplete: &codec.Notify_OperationComplete{CommandKey: "k"}}}}}}}}, "os::gw", "self::ctl")
	f.Add(notify)
	f.Add([]byte{})
	mtp, err := mqttmtp.New(mqttmtp.Config{Broker: "tcp://127.0.0.1:1", ClientID: "self::ctl", Topic: "usp/controllers/ctl"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewController(ControllerConfig{EndpointID: "self::ctl", MTP: mtp, Seen: func(string, string, bool) {}})
		c.complete["os::gw\x00k"] = make(chan *codec.Notify_OperationComplete, 1)
		c.pending["n"] = make(chan *codec.Msg, 1)
		c.handle(t.Context(), mqttmtp.Message{ReplyTo: "usp/agents/gw", Payload: b})
	})
}

// Whatever is retained under the prefix, the state reads it without a
// panic.
func FuzzRetainedReceive(f *testing.F) {
	f.Add("paradrop/fleet/rollouts/r1/results/os::gw", []byte(`{"state":"succeeded"}`))
	f.Add("paradrop/fleet/rollouts/r1", []byte(`{"spec":{"id":"r1","targets":["a"]}}`))
	f.Add("paradrop/fleet/gateways/g", []byte(`{"id":"g","chutes":[{}]}`))
	f.Add("paradrop/fleet/packages/x/meta", []byte(`null`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		s := &Retained{cfg: RetainedConfig{Prefix: DefaultPrefix, Logf: func(string, ...any) {}}, gateways: map[string]Gateway{},
			rollouts: map[string]Status{}, results: map[string]map[string]Result{}, controls: map[string]string{},
			controllers: map[string]bool{}, packages: map[string]PackageMeta{}, changed: make(chan struct{}), sync: map[string]chan struct{}{}}
		s.receive(topic, payload)
		s.Gateways()
		s.Rollouts()
		for _, st := range s.Rollouts() {
			s.Rollout(st.Spec.ID)
		}
	})
}
