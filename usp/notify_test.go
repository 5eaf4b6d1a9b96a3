package usp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"paradrop/usp/codec"
	"paradrop/usp/mqttmtp"
)

// A NotifyResp that comes while its notification is being sent (the
// controller answers before the broker's PUBACK reaches the agent) ends its
// retries: the send's return does not put it back.
func TestPendingAnsweredWhileSending(t *testing.T) {
	notify := func(id string) *waiting {
		return &waiting{o: outgoing{to: "ctrl", msg: &codec.Msg{Header: &codec.Header{MsgId: id},
			Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Notify{
				Notify: &codec.Notify{SendResp: true}}}}}}}}
	}
	const retry = time.Millisecond
	for _, tc := range []struct {
		name   string
		resent bool // answered during a retry, not the first send
		failed bool
	}{{"first send", false, false}, {"retry", true, false}, {"retry that failed", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPending()
			w := notify("n1")
			if tc.resent {
				if !p.trying(w) || p.sent(w, false, retry) {
					t.Fatal("first send refused")
				}
				time.Sleep(2 * retry)
				due := p.due(time.Now())
				if len(due) != 1 {
					t.Fatalf("due %d, want the unanswered one", len(due))
				}
				w = due[0]
			}
			if !p.trying(w) {
				t.Fatal("not sent")
			}
			p.ack("ctrl", "n1")
			if p.sent(w, tc.failed, retry) {
				t.Error("given up, but it was answered")
			}
			time.Sleep(4 * retry)
			if due := p.due(time.Now()); len(due) != 0 {
				t.Errorf("answered, and %d due again", len(due))
			}
		})
	}
	// Answered between due and its send: not sent at all.
	p := newPending()
	w := notify("n2")
	p.trying(w)
	p.sent(w, false, retry)
	time.Sleep(2 * retry)
	due := p.due(time.Now())
	p.ack("ctrl", "n2")
	if len(due) != 1 || p.trying(due[0]) {
		t.Errorf("answered before its retry, sent again (%d due)", len(due))
	}
	// Not answered, it stays due.
	w = notify("n3")
	p.trying(w)
	p.sent(w, false, retry)
	time.Sleep(2 * retry)
	if due := p.due(time.Now()); len(due) != 1 {
		t.Errorf("unanswered: %d due", len(due))
	}
}

// Notifications raised while the broker is away are held, none given up
// however long it stays away, and go out in the order they were raised.
func TestNotificationsHeldWhileBrokerAway(t *testing.T) {
	a := testAgent(t, twoChutes(), func(c *Config) { c.NotifyRetry = 10 * time.Millisecond })
	c, err := mqttmtp.New(mqttmtp.Config{Broker: "tcp://127.0.0.1:1", ClientID: "x", Topic: "usp/agents/x"}) // never run: never connected
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		a.queue(ctrlID, &codec.Notify{SubscriptionId: fmt.Sprint(i)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.send(ctx, c); close(done) }()
	time.Sleep(50 * a.cfg.NotifyRetry) // far more than maxTries retries
	cancel()
	<-done
	due := a.pending.due(time.Now())
	var order []string
	for _, w := range due {
		order = append(order, w.o.msg.GetBody().GetRequest().GetNotify().GetSubscriptionId())
	}
	if strings.Join(order, ",") != "0,1,2" {
		t.Errorf("held %v, want 0,1,2", order)
	}
	for _, w := range due {
		if w.tries != 0 {
			t.Errorf("%d tries spent while the broker was away", w.tries)
		}
	}
}
