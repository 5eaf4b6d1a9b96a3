package fleet

import (
	"testing"

	"paradrop/usp/codec"
	"paradrop/usp/mqttmtp"
)

// What another client on the broker can claim: a Connect Record does not
// move a gateway given by configuration, and an OperationComplete is
// taken only from the agent asked, under the command key sent.
func TestControllerRefusesClaims(t *testing.T) {
	news := map[string]int{}
	c := NewController(ControllerConfig{EndpointID: "self::ctl", Agents: map[string]string{"os::pinned": "usp/agents/pinned"},
		Seen: func(agent, _ string, n bool) {
			if n {
				news[agent]++
			}
		}})
	connect := func(from, topic string) {
		rec, err := codec.ConnectRecord(from, "self::ctl", topic)
		if err != nil {
			t.Fatal(err)
		}
		c.handle(t.Context(), mqttmtp.Message{ReplyTo: "evil/topic", Payload: rec})
	}
	connect("os::pinned", "evil/topic")
	connect("os::new", "usp/agents/new")
	connect("os::bad", "usp/agents/#")
	if news["os::pinned"] != 1 || news["os::new"] != 1 {
		t.Errorf("connect records are news: %v", news)
	}
	got := c.Agents()
	if got["os::pinned"] != "usp/agents/pinned" || got["os::new"] != "usp/agents/new" || got["os::bad"] != "" {
		t.Fatalf("agents %v", got)
	}

	done := make(chan *codec.Notify_OperationComplete, 1)
	c.complete["os::pinned\x00key1"] = done
	notify := func(from, key string) {
		rec, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "n1", MsgType: codec.Header_NOTIFY},
			Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Notify{Notify: &codec.Notify{
				Notification: &codec.Notify_OperComplete{OperComplete: &codec.Notify_OperationComplete{CommandKey: key}}}}}}}}, from, "self::ctl")
		if err != nil {
			t.Fatal(err)
		}
		c.handle(t.Context(), mqttmtp.Message{ReplyTo: "x", Payload: rec})
	}
	notify("os::new", "key1")    // another agent
	notify("os::pinned", "key2") // another command
	select {
	case <-done:
		t.Fatal("a forged OperationComplete was taken")
	default:
	}
	notify("os::pinned", "key1")
	select {
	case <-done:
	default:
		t.Fatal("the agent's OperationComplete was not taken")
	}
}

// A Boot! or DUStateChange! event is news (the gateway is probed again);
// another event is not.
func TestControllerNews(t *testing.T) {
	news := map[string]int{}
	c := NewController(ControllerConfig{EndpointID: "self::ctl", Agents: map[string]string{"os::gw": "usp/agents/gw"},
		Seen: func(agent, _ string, n bool) {
			if n {
				news[agent]++
			}
		}})
	for _, ev := range []string{"Boot!", "DUStateChange!", "Periodic!"} {
		rec, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: ev, MsgType: codec.Header_NOTIFY},
			Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Notify{Notify: &codec.Notify{
				Notification: &codec.Notify_Event_{Event: &codec.Notify_Event{ObjPath: "Device.", EventName: ev}}}}}}}}, "os::gw", "self::ctl")
		if err != nil {
			t.Fatal(err)
		}
		c.handle(t.Context(), mqttmtp.Message{ReplyTo: "x", Payload: rec})
	}
	if news["os::gw"] != 2 {
		t.Fatalf("news %v", news)
	}
}
